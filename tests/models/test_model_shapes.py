"""Shapes, keys and basic invariants of the LTMI / LTMI-LG models on synthetic batches."""

import pytest
import torch
from helpers.model_batches import make_batch, tiny_model


B, R, O, K, V = 2, 3, 4, 5, 30


pytestmark = pytest.mark.usefixtures("one_thread")


def model(run: str, **cfg):
    return tiny_model(run, V, **cfg)


@pytest.mark.parametrize("run, losses, scores", [
    ("v1.0-ltmi-disc", {"disc_loss"}, {"disc"}),
    ("v1.0-ltmi-gen", {"gen_loss"}, {"gen"}),
    ("v1.0-ltmi-multi", {"disc_loss", "gen_loss"}, {"disc", "gen", "avg"}),
    ("v1.0-lg_attn_kl-multi", {"disc_loss", "gen_loss", "ground_loss"}, {"disc", "gen", "avg"}),
    ("v0.9-lg_image_mse-disc", {"disc_loss", "ground_loss"}, {"disc"}),
])
def test_forward_score_and_distributions(run, losses, scores):
    net = model(run)
    batch = make_batch(B, R, O, K, V, num_boxes=[K, 3])
    out = net(batch)
    assert set(out) == losses | {"loss"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    total = sum(out[k] for k in ("disc_loss", "gen_loss") if k in out) + out.get("ground_loss", 0.0)
    torch.testing.assert_close(out["loss"], total)  # lambda = 1
    out["loss"].backward()

    net.eval()
    result = net.score(batch)
    assert set(result) == scores
    for value in result.values():
        assert value.shape == (B, R, O) and value.dtype == torch.float32 and torch.isfinite(value).all()
    if "avg" in result:
        torch.testing.assert_close(result["avg"], (result["disc"] + result["gen"]) / 2)
    if "gen" in result:
        assert (result["gen"] < 0).all()  # summed log-probabilities

    dists = net.region_distributions(batch)
    for name in ("prior", "posterior"):
        d = dists[name]
        assert d.shape == (B, R, K)
        torch.testing.assert_close(d.sum(-1), torch.ones(B, R))
        assert (d[1, :, 3:] == 0).all()  # dialog 1 has 3 real boxes


def test_gradients_reach_every_trainable_parameter():
    """No trainable parameter is left out of the objective (DDP needs this), for LG multi."""
    net = model("v1.0-lg_attn_kl_image_mse-multi")
    net(make_batch(B, R, O, K, V))["loss"].backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    # Never trained in the release either: quirk 2, quirk 3, and the last block's history update.
    assert {name.rsplit(".", 1)[0] for name in frozen} == {
        "gen.eval_norm", "disc.release_norm", "blocks.0.self_history", "blocks.0.fuse_history.0", "blocks.0.norm_history"}


def test_lambda_weights_the_grounding_term():
    batch = make_batch(B, R, O, K, V)
    net = tiny_model("v1.0-lg_attn_kl-disc", V, lambda_=0.25)
    out = net(batch)
    torch.testing.assert_close(out["loss"], out["disc_loss"] + 0.25 * out["ground_loss"])


def test_embedding_is_shared_and_loadable():
    net = model("v1.0-ltmi-multi")
    weight = torch.randn(V, 8)
    net.embedding.load_state_dict({"weight": weight})
    assert sum(p is net.embedding.weight for p in net.parameters()) == 1
    torch.testing.assert_close(net.embedding.weight.detach(), weight)
