"""Benchmark the LTMI / LTMI-LG model alone (no data loading): training steps and
scoring at the real config (hidden 512, 2 blocks, V = 11,322, K = O = 100, R = 10).

Prints one JSON object: dialogs/s for forward+backward+Adam per run id, and for
`score` (evaluation). Synthetic batches follow docs/formats.md; 30 of each round's
options are shared "popular answers" as in VisDial (affects option de-duplication).

    python bench/model_step.py [--runs v1.0-ltmi-disc ...] [--batch 32] [--steps 10] [--device cuda]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.model_batches import make_batch  # noqa: E402

from visdial_lg.core.config import Config, LGConfig, ModelConfig  # noqa: E402
from visdial_lg.models.ltmi import build_model, count_parameters  # noqa: E402
from visdial_lg.core.runs import parse_run_id  # noqa: E402


def visdial_like_batch(batch_size: int, seed: int) -> dict:
    batch = make_batch(B=batch_size, R=10, O=100, K=100, vocab=11322, seed=seed)
    popular = make_batch(B=1, R=1, O=30, K=1, vocab=11322, seed=10_000)  # 30 answers shared by every round
    for key in ("opts", "opts_len", "opts_in", "opts_out"):
        shared = popular[key][0, 0]
        gt = batch["gt_index"]
        for o in range(30):
            keep = (gt == 70 + o).unsqueeze(-1) if batch[key].dim() == 4 else (gt == 70 + o)
            batch[key][:, :, 70 + o] = torch.where(keep, batch[key][:, :, 70 + o], shared[o])
    return batch


def real_config() -> tuple[ModelConfig, LGConfig]:
    """The schema defaults: the real config's model sizes."""
    config = Config.from_dict({})
    return config.model, config.lg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="+", default=["v1.0-ltmi-disc", "v1.0-ltmi-gen", "v1.0-lg_attn_kl-disc",
                                                 "v1.0-lg_attn_kl-gen", "v1.0-lg_attn_kl-multi"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    batches = [{k: v.to(device) for k, v in visdial_like_batch(args.batch, s).items()} for s in range(2)]
    cfg, lg = real_config()
    results = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "batch_dialogs": args.batch, "precision": args.precision, "runs": {}}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    for run in args.runs:
        torch.manual_seed(0)
        model = build_model(parse_run_id(run), 11322, cfg, lg).to(device)
        opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-4)
        model.train()
        for step in range(args.steps + 2):  # 2 warm-up steps
            if step == 2:
                sync(device)
                start = time.perf_counter()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
            with autocast:
                loss = model(batches[step % 2])["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        train_s = (time.perf_counter() - start) / args.steps
        model.eval()
        for step in range(3):
            if step == 1:
                sync(device)
                start = time.perf_counter()
            with autocast:
                model.score(batches[step % 2])
        sync(device)
        score_s = (time.perf_counter() - start) / 2
        results["runs"][run] = {
            "train_step_s": round(train_s, 4), "train_dialogs_per_s": round(args.batch / train_s, 1),
            "score_dialogs_per_s": round(args.batch / score_s, 1), "loss": round(loss.item(), 4),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
            "parameters": count_parameters(model)["total"],
        }
        del model, opt
        print(json.dumps({run: results["runs"][run]}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
