"""Cost of one optimiser step over the parameters of a real-config model (no forward or
backward): LTMI's Adam (`LTMIAdam`, per-parameter loop and multi-tensor) against torch's
AdamW (for-loop, foreach, fused). Gradients are random and
fixed. Prints one JSON object: ms per step, best of `--repeats`.

    .venv/bin/python bench/optimizer.py [--run v1.0-lg_attn_kl-multi] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from visdial_lg.core.config import LGConfig, ModelConfig
from visdial_lg.models.ltmi import build_model
from visdial_lg.core.runs import parse_run_id
from visdial_lg.training.optim import LTMIAdam, weight_decay_groups

VOCAB = 11322  # v1.0's vocabulary size


def _model(run: str, device: torch.device) -> torch.nn.Module:
    model = build_model(parse_run_id(run), VOCAB, ModelConfig.from_dict({}), LGConfig.from_dict({})).to(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=generator).to(device) * 1e-3
    return model


def _ms_per_step(optimizer: torch.optim.Optimizer, device: torch.device, steps: int, repeats: int) -> float:
    optimizer.step()  # state allocated outside the timing
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / steps)
    return round(1e3 * best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="v1.0-lg_attn_kl-multi")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = _model(args.run, device)
    groups = lambda: weight_decay_groups(model, 1e-5)  # noqa: E731 - fresh groups per optimiser
    kwargs = dict(lr=1e-3, betas=(0.9, 0.997), eps=1e-9)
    candidates = {
        "ltmi_adam_loop": lambda: LTMIAdam(groups(), foreach=False, **kwargs),
        "ltmi_adam_foreach": lambda: LTMIAdam(groups(), foreach=True, **kwargs),
        "adamw_for_loop": lambda: torch.optim.AdamW(groups(), foreach=False, **kwargs),
        "adamw_foreach": lambda: torch.optim.AdamW(groups(), foreach=True, **kwargs),
        "adamw_fused": lambda: torch.optim.AdamW(groups(), fused=True, **kwargs),  # CPU too, in recent torch
    }
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {"run": args.run, "device": args.device, "threads": args.threads, "trainable_parameters": params}
    result["ms_per_step"] = {name: _ms_per_step(make(), device, args.steps, args.repeats)
                             for name, make in candidates.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
