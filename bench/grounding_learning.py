"""The synthetic grounding task of docs/model.md ("Learning check"), run long and over
several seeds: how often each model's distribution over regions puts its top-1 on the
region the answer depends on, on 64 held-out dialogs, every `--eval-every` steps.

Variants:
  ltmi               LTMI's attention pooling (its "prior"; its "posterior" = the pooling
                     with the answer words appended to the question)
  lg                 LTMI-LG (attn_kl): the prior g and the answer-aware posterior G
  lg_oracle_teacher  diagnostic, not a model of the paper: LG with KL(G||g) replaced by
                     KL(one-hot target region || g), i.e. a perfect teacher for the prior;
                     it measures how fast the prior's own path (Eq. 4-6) can learn

Tiny models (d = 32, 1 block), Adam 3e-3, 16 fresh dialogs a step (batch seed
seed*10000 + step), single-threaded. Prints one JSON object.

    python bench/grounding_learning.py [--variants ltmi lg] [--seeds 1 2 3] [--steps 1500]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.model_batches import grounding_task_batch, tiny_model_config  # noqa: E402

import visdial_lg.models.ltmi as ltmi_module  # noqa: E402
from visdial_lg.models.ltmi import VisualDialogModel  # noqa: E402

VOCAB = 10 + 8 + 8  # grounding_task_batch's defaults: 8 shapes, 8 colours
VARIANTS = ("ltmi", "lg", "lg_oracle_teacher")
_paper_grounding_loss = ltmi_module.grounding_loss


def oracle_teacher(target: torch.Tensor):
    """A grounding loss whose posterior logits are replaced by a (near) one-hot on `target` [N]."""

    def loss(kind, prior_logits, posterior_logits, region_mask, v_prior, v_post, rounds):
        one_hot = F.one_hot(target, prior_logits.shape[-1]).to(prior_logits.dtype) * 20.0
        return _paper_grounding_loss(kind, prior_logits, one_hot, region_mask, v_prior, v_post, rounds)

    return loss


def top1(distribution: torch.Tensor, target: torch.Tensor) -> float:
    return round((distribution.argmax(-1) == target).float().mean().item(), 3)


def run(variant: str, seed: int, steps: int, eval_every: int, shape_strength: float) -> list[dict]:
    torch.manual_seed(seed)
    grounding = None if variant == "ltmi" else "attn_kl"
    net = VisualDialogModel(VOCAB, tiny_model_config(hidden=32), "disc", grounding, 1.0, feature_dim=32)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    held_out = grounding_task_batch(64, seed=999, shape_strength=shape_strength)
    trace = []
    try:
        for step in range(1, steps + 1):
            net.train()
            batch = grounding_task_batch(16, seed=seed * 10_000 + step, shape_strength=shape_strength)
            if variant == "lg_oracle_teacher":
                ltmi_module.grounding_loss = oracle_teacher(batch["target"].flatten())
            loss = net(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % eval_every == 0:
                net.eval()
                dists = net.region_distributions(held_out)
                trace.append({"step": step, "prior_top1": top1(dists["prior"], held_out["target"]),
                              "posterior_top1": top1(dists["posterior"], held_out["target"])})
    finally:
        ltmi_module.grounding_loss = _paper_grounding_loss
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--shape-strength", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = {variant: {str(seed): run(variant, seed, args.steps, args.eval_every, args.shape_strength)
                         for seed in args.seeds} for variant in args.variants}
    print(json.dumps({"task": {"shape_strength": args.shape_strength, "regions": 5, "chance": 0.2,
                               "steps": args.steps, "dialogs_per_step": 16},
                      "results": results, "seconds": round(time.perf_counter() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()
