"""Training throughput at the real configuration; prints one JSON document.

    python bench/train.py [--device cuda] [--max-seconds 540]

* `model`: dialogs/s of full optimiser steps (forward, backward, LTMI's Adam) of every
  decoder (disc, gen, multi) for LTMI and LTMI-LG (attn_kl), fp32 and bf16 on GPU
  (fp32 only on CPU), on batches of real shapes (vocabulary 11,322, K = 100 boxes,
  100 options, hidden 512, 2 blocks) already on the device;
* `loader`: dialogs/s of the training DataLoader (train.build_loader) over a
  synthetic features HDF5 of real shapes, per worker count (pinned copies to the GPU
  included when there is one);
* `end_to_end` (GPU, or --end-to-end): one epoch of `train()` on those files.

The goal (docs/performance.md#goals): one VisDial v1.0 epoch (123,287 dialogs) in <= 10 min on
one H100, i.e. >= 205 dialogs/s, with the loader never the bound. Measurements
that would pass `--max-seconds` are skipped and listed under `skipped`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import contextlib
import csv
import json
import os
import platform
import statistics
import tempfile
import time
from itertools import cycle, islice

import torch

from visdial_lg.core.config import Config, LGConfig, ModelConfig, TrainConfig
from visdial_lg.models.ltmi import build_model
from visdial_lg.core.runs import parse_run_id
from visdial_lg.training.loop import TrainInputs, build_loader, train, train_step
from visdial_lg.training.distributed import DistContext
from visdial_lg.training.optim import build_optimizer, build_scheduler

# The synthetic inputs are the tests' (tests/helpers/synthetic.py): one builder for both.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import write_synthetic_inputs  # noqa: E402

VISDIAL_V1_TRAIN_DIALOGS = 123_287
GOAL_DIALOGS_PER_S = VISDIAL_V1_TRAIN_DIALOGS / 600  # one epoch in 10 minutes
VOCAB_SIZE, BOXES = 11_322, 100


def log(message: str) -> None:
    print(f"[bench/train] {message}", file=sys.stderr, flush=True)


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_minutes(rate: float) -> float:
    return round(VISDIAL_V1_TRAIN_DIALOGS / rate / 60, 2) if rate > 0 else float("inf")


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def bench_model(run_id, precision, batches, device, steps, warmup, deadline) -> dict:
    """Optimiser steps of one run on pre-loaded batches; host syncs only around the timed loop."""
    spec = parse_run_id(run_id)
    torch.manual_seed(0)
    model = build_model(spec, VOCAB_SIZE, ModelConfig.from_dict({}, "model"), LGConfig.from_dict({}, "lg"))
    model.to(device).train()
    tcfg = TrainConfig.from_dict({}, "train")
    optimizer = build_optimizer(model, tcfg, device)
    scheduler = build_scheduler(optimizer, tcfg, steps_per_epoch=3853)
    bf16 = precision == "bf16"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    feed = cycle(batches)
    for batch in islice(feed, warmup):  # cuDNN autotuning, allocator warm-up
        train_step(model, batch, optimizer, scheduler, bf16)
    sync(device)
    start, done = time.perf_counter(), 0
    for batch in islice(feed, steps):
        out = train_step(model, batch, optimizer, scheduler, bf16)
        done += 1
        if deadline.left() < 0:
            break
    loss = float(out["loss"].detach())  # also syncs
    sync(device)
    seconds = time.perf_counter() - start
    dialogs = done * batches[0]["img_feat"].shape[0]
    rate = dialogs / seconds
    result = {"run": run_id, "precision": precision, "batch_size": batches[0]["img_feat"].shape[0],
              "steps": done, "step_ms": round(1000 * seconds / done, 1), "dialogs_per_s": round(rate, 1),
              "v1.0_epoch_minutes": epoch_minutes(rate), "final_loss": round(loss, 4),
              "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    if device.type == "cuda":
        result["peak_memory_GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def bench_loader(inputs: TrainInputs, workers: int, batch_size: int, device, max_batches, deadline) -> dict:
    tcfg = TrainConfig.from_dict({"batch_size": batch_size, "num_workers": workers}, "train")
    _, loader, sampler = build_loader(inputs, tcfg, DistContext(0, 1, 0, device))
    sampler.set_epoch(0)
    it = iter(loader)
    to_device(next(it), device)  # worker start-up and first batch are not counted
    sync(device)
    start, dialogs = time.perf_counter(), 0
    for batch in islice(it, max_batches):
        dialogs += to_device(batch, device)["img_feat"].shape[0]
        if deadline.left() < 0:
            break
    sync(device)
    rate = dialogs / (time.perf_counter() - start)
    return {"num_workers": workers, "batch_size": batch_size, "dialogs": dialogs,
            "dialogs_per_s": round(rate, 1), "v1.0_epoch_minutes": epoch_minutes(rate)}


def bench_end_to_end(inputs: TrainInputs, run_id: str, device, workers: int, out_dir: Path) -> dict:
    config = Config.from_dict({"train": {"epochs": 1, "num_workers": workers, "log_every": 10}})
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON document only
        train(run_id, inputs, out_dir, config, device=str(device))
    seconds = time.perf_counter() - start
    with open(out_dir / "log.csv", newline="") as f:
        rates = [float(r["dialogs_per_s"]) for r in csv.DictReader(f)]  # one per 10 steps
    steady = statistics.median(rates[1:-1]) if len(rates) > 2 else float("nan")  # not start-up, not the tail
    return {"run": run_id, "precision": config.train.precision if device.type == "cuda" else "fp32",
            "num_workers": workers, "wall_s": round(seconds, 1), "dialogs_per_s_per_10_steps": rates,
            "steady_dialogs_per_s": round(steady, 1), "v1.0_epoch_minutes": epoch_minutes(steady)}


def main(argv=None) -> int:
    # Long on purpose: the arguments, then the three measurements in the order the report
    # prints them (inputs, loader, steps, a real `train` call), each adding to one dict.
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-seconds", type=float, default=540)
    p.add_argument("--batch-size", type=int, help="dialogs a step (default: 32 on GPU, 4 on CPU)")
    p.add_argument("--steps", type=int, help="timed steps per run (default: 10 on GPU, 2 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps per run (default: 3 on GPU, 1 on CPU)")
    p.add_argument("--decoders", default="disc,gen,multi")
    p.add_argument("--models", default="ltmi,lg_attn_kl")
    p.add_argument("--precisions", help="default: bf16,fp32 on GPU, fp32 on CPU")
    p.add_argument("--loader-images", type=int, default=2000, help="dialogs (one image each) in the synthetic files")
    p.add_argument("--loader-workers", default="0,2,4,8")
    p.add_argument("--loader-batches", type=int, default=40)
    p.add_argument("--end-to-end", action="store_true", help="also on CPU (always on GPU)")
    p.add_argument("--workdir", help="where the synthetic files go (default: a temporary folder)")
    args = p.parse_args(argv)

    deadline = Deadline(args.max_seconds)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    batch_size = args.batch_size or (32 if gpu else 4)
    steps, warmup = args.steps or (10 if gpu else 2), args.warmup or (3 if gpu else 1)
    precisions = (args.precisions or ("bf16,fp32" if gpu else "fp32")).split(",")
    report = {
        "machine": {"device": torch.cuda.get_device_name(device) if gpu else platform.processor() or "cpu",
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "goal": {"dialogs_per_s": round(GOAL_DIALOGS_PER_S, 1), "v1.0_epoch_minutes": 10},
        "shapes": {"vocab": VOCAB_SIZE, "boxes": BOXES, "options": 100, "rounds": 10, "hidden": 512, "blocks": 2},
        "model": [], "loader": [], "end_to_end": None, "skipped": [],
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        t0 = time.perf_counter()
        paths = write_synthetic_inputs(Path(tmp) / "inputs", dialogs=args.loader_images, vocab_size=VOCAB_SIZE,
                                       boxes=BOXES, questions=50_000, answers=100_000)
        report["inputs"] = {"dialogs": args.loader_images, "write_s": round(time.perf_counter() - t0, 1),
                            "features_GiB": round(paths["features"].stat().st_size / 2**30, 2)}
        inputs = TrainInputs(paths["tokens"], paths["features"], paths["vocab"])
        log(f"wrote synthetic inputs in {report['inputs']['write_s']} s")

        dataset, loader, _ = build_loader(inputs, TrainConfig.from_dict(
            {"batch_size": batch_size, "num_workers": 0}, "train"), DistContext(0, 1, 0, torch.device("cpu")))
        batches = [to_device(b, device) for b in islice(loader, 3)]  # [B, ...] real shapes
        for model_name in args.models.split(","):
            for decoder in args.decoders.split(","):
                for precision in precisions:
                    run_id = f"v1.0-{model_name}-{decoder}"
                    if deadline.left() < 0.15 * args.max_seconds:
                        report["skipped"].append(f"model {run_id} {precision}")
                        continue
                    log(f"model {run_id} {precision}")
                    try:
                        report["model"].append(bench_model(run_id, precision, batches, device, steps, warmup, deadline))
                    except torch.cuda.OutOfMemoryError:
                        report["model"].append({"run": run_id, "precision": precision, "error": "out of GPU memory"})
                        torch.cuda.empty_cache()
        del batches

        for workers in (int(w) for w in args.loader_workers.split(",")):
            if deadline.left() < 0.08 * args.max_seconds:
                report["skipped"].append(f"loader num_workers={workers}")
                continue
            log(f"loader num_workers={workers}")
            report["loader"].append(bench_loader(inputs, workers, 32, device, args.loader_batches, deadline))

        if gpu or args.end_to_end:
            best = max(report["loader"], key=lambda r: r["dialogs_per_s"], default={"num_workers": 4})
            estimate = 3 * args.loader_images / max(min(r["dialogs_per_s"] for r in report["model"]), 1e-9) \
                if report["model"] else float("inf")
            if deadline.left() > estimate:
                log("end-to-end epoch")
                report["end_to_end"] = bench_end_to_end(inputs, "v1.0-lg_attn_kl-multi", device,
                                                        best["num_workers"], Path(tmp) / "run")
            else:
                report["skipped"].append("end_to_end")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
