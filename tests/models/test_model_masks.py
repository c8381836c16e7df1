"""Padding never changes a result: padded boxes, padded rounds, tokens past a length,
a dialog alone or in a batch with longer items."""

import pytest
import torch
from helpers.model_batches import make_batch, select, tiny_model

from visdial_lg.models.attention import TwoWayAttention

R, O, V = 3, 4, 30
RUNS = ["v1.0-ltmi-multi", "v1.0-lg_attn_kl-multi"]


pytestmark = pytest.mark.usefixtures("one_thread")


def trained_free_model(run: str):
    return tiny_model(run, V, blocks=2).eval()


def assert_same_results(net, a: dict, b: dict, rounds=slice(None), boxes: int | None = None):
    sa, sb = net.score(a), net.score(b)
    for key in sa:
        torch.testing.assert_close(sa[key][:, rounds], sb[key][:, rounds], atol=1e-4, rtol=1e-4)
    da, db = net.region_distributions(a), net.region_distributions(b)
    for key in da:
        k = boxes or da[key].shape[-1]
        torch.testing.assert_close(da[key][:, rounds, :k], db[key][:, rounds, :k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("run", RUNS)
def test_dialog_alone_equals_dialog_in_a_batch_with_more_boxes(run):
    net = trained_free_model(run)
    batch = make_batch(2, R, O, K=7, vocab=V, num_boxes=[4, 7], seed=3)
    alone = select(batch, [0], K=4)  # the same dialog without the padded boxes
    in_batch = net.score(batch)
    for key, value in net.score(alone).items():
        torch.testing.assert_close(value[0], in_batch[key][0], atol=1e-4, rtol=1e-4)
    dist_batch = net.region_distributions(batch)
    for key, value in net.region_distributions(alone).items():
        torch.testing.assert_close(value[0], dist_batch[key][0, :, :4], atol=1e-5, rtol=1e-4)
        assert (dist_batch[key][0, :, 4:] == 0).all()


@pytest.mark.parametrize("run", RUNS)
def test_padded_rounds_do_not_change_real_rounds(run):
    net = trained_free_model(run)
    batch = make_batch(2, R, O, K=5, vocab=V, num_rounds=[2, 3], seed=4)
    noisy = {k: v.clone() for k, v in batch.items()}
    g = torch.Generator().manual_seed(0)
    for key in ("ques_tokens", "ans", "ans_in", "ans_out", "opts", "opts_in", "opts_out"):
        noisy[key][0, 2] = torch.randint(4, V, noisy[key][0, 2].shape, generator=g)
    noisy["ques_len"][0, 2], noisy["ans_len"][0, 2], noisy["gt_index"][0, 2] = 5, 3, 1
    noisy["opts_len"][0, 2] = 20
    assert_same_results(net, batch, noisy, rounds=slice(0, 2))
    net.train()  # dropout is 0: the loss is deterministic, and round 3 of dialog 0 does not count
    torch.testing.assert_close(net(batch)["loss"], net(noisy)["loss"])


@pytest.mark.parametrize("run", RUNS)
def test_tokens_past_their_length_are_ignored(run):
    net = trained_free_model(run)
    batch = make_batch(2, R, O, K=5, vocab=V, seed=5)
    noisy = {k: v.clone() for k, v in batch.items()}
    for key, length in (("ques_tokens", "ques_len"), ("hist_tokens", "hist_len"), ("opts", "opts_len"), ("ans", "ans_len")):
        tokens = noisy[key]
        past = torch.arange(tokens.shape[-1]) >= noisy[length].unsqueeze(-1)
        tokens[past] = 7
    assert_same_results(net, batch, noisy)
    net.train()
    torch.testing.assert_close(net(batch)["loss"], net(noisy)["loss"])


def test_empty_options_score_zero():
    net = trained_free_model("v1.0-ltmi-multi")
    batch = make_batch(1, R, O, K=5, vocab=V, seed=6)
    for key in ("opts", "opts_in", "opts_out", "opts_len"):
        batch[key][0, 1, 2] = 0
    scores = net.score(batch)
    assert scores["disc"][0, 1, 2] == 0 and scores["gen"][0, 1, 2] == 0


def test_two_way_attention_ignores_padded_positions():
    torch.manual_seed(0)
    attention = TwoWayAttention(8, heads=2, pad_slots=2)
    x, y = torch.randn(1, 5, 8), torch.randn(1, 6, 8)
    x_mask = torch.tensor([[True, True, True, False, False]])
    y_mask = torch.tensor([[True, True, True, True, False, False]])
    out_y, out_x = attention(x, x_mask, y, y_mask)
    x2, y2 = x.clone(), y.clone()
    x2[:, 3:], y2[:, 4:] = 100.0, -100.0
    out_y2, out_x2 = attention(x2, x_mask, y2, y_mask)
    torch.testing.assert_close(out_y[:, :4], out_y2[:, :4])
    torch.testing.assert_close(out_x[:, :3], out_x2[:, :3])
    # without pad slots and masks, a plain softmax attention over the inputs themselves
    bare = TwoWayAttention(8, heads=1, pad_slots=0)
    out_y, out_x = bare(x, torch.ones(1, 5, dtype=torch.bool), y, torch.ones(1, 6, dtype=torch.bool))
    scores = x[0] @ y[0].T  # [M, N], unscaled
    torch.testing.assert_close(out_x[0], torch.softmax(scores, dim=1) @ y[0])
    torch.testing.assert_close(out_y[0], torch.softmax(scores, dim=0).T @ x[0])


def test_masked_softmax_of_a_fully_masked_row_is_zeros():
    """Masked entries weigh exactly 0; a row without a real entry is all zeros (sum 0), not NaN."""
    from visdial_lg.models.common import masked_softmax

    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, -1.0, 0.5]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[0], torch.tensor([1.0, torch.e, 0.0]) / (1.0 + torch.e))
    assert (weights[1] == 0).all() and weights.dtype == torch.float32
    (weights * torch.arange(3.0)).sum().backward()
    assert torch.isfinite(scores.grad).all() and (scores.grad[1] == 0).all() and scores.grad[0, 2] == 0
    assert (masked_softmax(scores.detach().bfloat16(), mask)[1] == 0).all()  # the same under bf16 inputs
