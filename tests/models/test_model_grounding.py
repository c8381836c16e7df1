"""LG's prior/posterior machinery, its losses, and the inference-time grounding variants."""

import pytest
import torch
from helpers.model_batches import make_batch, tiny_model

from visdial_lg.models.grounding import cross_attend, grounding_loss, replace_distribution
from visdial_lg.models.ltmi import concat_answer
from visdial_lg.core.runs import LG_LOSSES

V = 30


pytestmark = pytest.mark.usefixtures("one_thread")


def model(run: str):
    return tiny_model(run, V)


def test_cross_attention_mixes_only_real_context_tokens():
    image, context = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    mixed = cross_attend(image, context, mask)  # Eq. 4-5
    weights = torch.softmax(image[0] @ context[0, :2].T, dim=-1)  # softmax over the 2 real tokens
    torch.testing.assert_close(mixed[0], weights @ context[0, :2])
    context[0, 2:] = 1e3
    torch.testing.assert_close(cross_attend(image, context, mask)[0], mixed[0])


def test_kl_is_posterior_weighted_log_ratio_over_real_regions_and_detached():
    prior = torch.randn(3, 4, requires_grad=True)
    posterior = torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    rounds = torch.tensor([True, True, False])
    v = torch.zeros(3, 2)
    loss = grounding_loss("attn_kl", prior, posterior, mask, v, v, rounds)
    expected = 0.0
    for i in range(2):
        g = torch.softmax(prior[i, mask[i]], -1)
        big_g = torch.softmax(posterior[i, mask[i]], -1)
        expected = expected + (big_g * (big_g / g).log()).sum()
    torch.testing.assert_close(loss, expected / 2)  # averaged over the counted rounds
    loss.backward()
    assert posterior.grad is None and prior.grad.abs().sum() > 0  # G is the (detached) target


@pytest.mark.parametrize("kind", LG_LOSSES)
def test_every_grounding_loss_is_zero_at_agreement_and_positive_otherwise(kind):
    torch.manual_seed(0)
    logits, v = torch.randn(4, 5), torch.randn(4, 6)
    mask, rounds = torch.ones(4, 5, dtype=torch.bool), torch.ones(4, dtype=torch.bool)
    assert grounding_loss(kind, logits, logits, mask, v, v, rounds).abs() < 1e-6
    other_logits, other_v = torch.randn(4, 5), torch.randn(4, 6)
    assert grounding_loss(kind, logits, other_logits, mask, v, other_v, rounds) > 1e-3
    # the image losses compare v_prior with v_post: g/G alone do not enter them, and vice versa
    image_only = kind.startswith("image")
    same_v = grounding_loss(kind, logits, other_logits, mask, v, v, rounds)
    assert (same_v.abs() < 1e-6) == image_only


def test_grounding_variants():
    prior = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.25, 0.25]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert replace_distribution("prior", prior, mask) is prior
    mean = replace_distribution("mean", prior, mask)
    torch.testing.assert_close(mean[0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    torch.testing.assert_close(mean[2], torch.full((4,), 0.25))
    oracle = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    chosen = replace_distribution("oracle", prior, mask, oracle)
    torch.testing.assert_close(chosen[0], torch.tensor([0.0, 0.0, 1.0, 0.0]))  # padded region 3 dropped
    torch.testing.assert_close(chosen[1], prior[1])  # no annotation: the prior
    torch.testing.assert_close(chosen[2], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    full = torch.ones(3, 4, dtype=torch.bool)
    shuffled = replace_distribution("random", prior, full, generator=torch.Generator().manual_seed(1))
    order = torch.randperm(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(shuffled, prior[order])
    moved = replace_distribution("random", prior, mask, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(moved.sum(-1), torch.ones(3))
    assert (moved[~mask] == 0).all()
    with pytest.raises(ValueError, match="oracle_regions"):
        replace_distribution("oracle", prior, mask)
    with pytest.raises(ValueError, match="unknown grounding variant"):
        replace_distribution("best", prior, mask)


@pytest.mark.parametrize("run", ["v1.0-ltmi-multi", "v1.0-lg_attn_kl-multi"])
def test_score_with_each_variant(run):
    net = model(run).eval()
    batch = make_batch(2, 3, 4, K=5, vocab=V, num_boxes=[5, 2])
    prior = net.score(batch)
    assert net.score(batch, "random")["disc"].equal(net.score(batch, "random")["disc"])  # seeded by image ids
    everywhere = torch.ones(2, 3, 5, dtype=torch.bool)
    # "oracle" over every region is "mean" (padded regions are dropped from the annotation)
    for key, value in net.score(batch, "oracle", oracle_regions=everywhere).items():
        torch.testing.assert_close(value, net.score(batch, "mean")[key])
    assert not torch.allclose(net.score(batch, "mean")["disc"], prior["disc"])


def test_lg_inference_ignores_the_answer_and_training_uses_it():
    net = model("v1.0-lg_attn_kl-disc")
    batch = make_batch(2, 3, 4, K=5, vocab=V)
    other = {k: v.clone() for k, v in batch.items()}
    other["ans"] = torch.where(other["ans"] > 0, (other["ans"] + 3) % V, 0).clamp(min=0)
    other["ans"][other["ans"].eq(0) & batch["ans"].gt(0)] = 5
    net.eval()
    torch.testing.assert_close(net.score(batch)["disc"], net.score(other)["disc"])  # v_prior at inference
    d, d_other = net.region_distributions(batch), net.region_distributions(other)
    torch.testing.assert_close(d["prior"], d_other["prior"])
    assert not torch.allclose(d["posterior"], d_other["posterior"])
    net.train()
    assert not torch.allclose(net(batch)["disc_loss"], net(other)["disc_loss"])  # v_post in training


def test_posterior_equals_prior_without_an_answer():
    for run in ("v1.0-lg_attn_kl-gen", "v1.0-ltmi-gen"):
        net = model(run).eval()
        batch = make_batch(1, 3, 4, K=5, vocab=V)
        batch["ans"][0, 1], batch["ans_len"][0, 1] = 0, 0
        d = net.region_distributions(batch)
        torch.testing.assert_close(d["posterior"][0, 1], d["prior"][0, 1])
        assert not torch.allclose(d["posterior"][0, 0], d["prior"][0, 0])


def test_concat_answer():
    question = torch.tensor([[7, 8, 4, 0, 0, 0], [7, 8, 9, 9, 9, 4]])
    answer = torch.tensor([[5, 6, 0, 0], [5, 6, 6, 0]])
    tokens, lengths = concat_answer(question, torch.tensor([3, 6]), answer, torch.tensor([2, 3]))
    assert tokens.tolist() == [[7, 8, 4, 5, 6, 0], [7, 8, 9, 9, 9, 4]]
    assert lengths.tolist() == [5, 6]
