"""The models learn: overfitting one small batch drives each decoder's loss near zero,
and LG's KL(G || g) falls while the prior is trained towards the posterior."""

import pytest
import torch
from helpers.model_batches import make_batch, tiny_model


V = 30


pytestmark = pytest.mark.usefixtures("one_thread")


def train(run: str, steps: int, lr: float = 1e-2, seed: int = 0, **batch_kw):
    net = tiny_model(run, V, seed=seed, hidden=32)
    batch = make_batch(vocab=V, seed=seed, **batch_kw)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        out = net(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in out.items()})
    return net, batch, history


@pytest.mark.parametrize("run, key, limit", [
    ("v1.0-ltmi-disc", "disc_loss", 0.05),
    ("v1.0-ltmi-gen", "gen_loss", 0.1),
    ("v1.0-lg_attn_kl-multi", "loss", 0.15),
])
def test_overfits_a_small_batch(run, key, limit):
    net, batch, history = train(run, steps=120, B=2, R=2, O=4, K=3)
    assert history[0][key] > 5 * limit
    assert history[-1][key] < limit, history[-1]
    if "disc" in run or "multi" in run:  # and it ranks the GT first
        net.eval()
        assert (net.score(batch)["disc"].argmax(-1) == batch["gt_index"]).all()


def test_kl_between_posterior_and_prior_falls():
    """Under the full objective (Eq. 10) the prior is pulled onto the posterior."""
    _, _, history = train("v1.0-lg_attn_kl-disc", steps=100, B=2, R=2, O=4, K=6)
    kl = [h["ground_loss"] for h in history]
    assert kl[0] > 0.01  # a random answer encoder makes G differ from g at the start
    assert sum(kl[-10:]) / 10 < 0.1 * kl[0]
    assert all(value >= 0 for value in kl)
