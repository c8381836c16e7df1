"""A learning check on a synthetic task whose answer depends on one region
(`model_batches.grounding_task_batch`): the question names a region by its shape, the
answer is that region's colour.

What this small budget shows (docs/model.md, "Learning check"): LG's answer-aware
posterior G finds the region long before LTMI's pooling does, which is the premise of
the paper (Table 3, "w/ Ans"). The paper's further claim, that the *prior* g then
grounds better than LTMI's pooling, is not reproduced at this budget: g follows G only
slowly (documented there with the measured numbers)."""

import torch
from helpers.model_batches import grounding_task_batch, tiny_model_config, torch_threads

from visdial_lg.models.ltmi import VisualDialogModel

VOCAB = 10 + 8 + 8  # grounding_task_batch's defaults: 8 shapes, 8 colours
STEPS, BATCH, WEAK_SHAPE = 120, 16, 0.3


def train_on_task(grounding: str | None) -> dict:
    """Top-1 accuracy of each region distribution on held-out dialogs after STEPS steps."""
    torch.manual_seed(0)
    net = VisualDialogModel(VOCAB, tiny_model_config(hidden=32), "disc", grounding, 1.0, feature_dim=32)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(STEPS):
        loss = net(grounding_task_batch(BATCH, seed=step + 1, shape_strength=WEAK_SHAPE))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = grounding_task_batch(64, seed=999, shape_strength=WEAK_SHAPE)
    net.eval()
    dists = net.region_distributions(held_out)
    return {name: (d.argmax(-1) == held_out["target"]).float().mean().item() for name, d in dists.items()}


def test_answer_aware_posterior_grounds_the_target_before_ltmi_pooling_does():
    with torch_threads(1):
        ltmi, lg = train_on_task(None), train_on_task("attn_kl")
    print({"ltmi_pooling": ltmi["prior"], "lg_prior": lg["prior"], "lg_posterior": lg["posterior"]})
    assert lg["posterior"] >= 0.5  # chance is 1/5
    assert lg["posterior"] >= ltmi["prior"] + 0.3
