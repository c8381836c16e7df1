"""Feature-extraction throughput: images/s and peak memory, beside the detector's FLOPs per image.

    python bench/extract.py                      # CPU: demo config, then the real config on a few images
    python bench/extract.py --skip-cpu --max-seconds 420   # on a GPU: batch size x precision sweep

Synthetic JPEGs are written to a temporary folder (no data needed); weights are
random (same FLOPs as the trained detector; box selection differs). Each timing
is the whole pipeline (decoding in DataLoader workers, padding, detector, HDF5
writes) after a warm-up extraction. Each CPU case runs in its own process so
its peak RSS is its own. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from visdial_lg.core.config import FeaturesConfig, load_yaml
from visdial_lg.features.extract import extract_features
from visdial_lg.features.images import list_image_folders
from visdial_lg.features.model import build_detector, estimate_flops

ROOT = Path(__file__).resolve().parents[1]
COCO_SIZES = [(480, 640), (640, 480), (427, 640), (375, 500), (612, 612)]  # (h, w) as in COCO


def write_images(folder: Path, sizes: list[tuple[int, int]], first_id: int = 1) -> list:
    """Smooth gradients with a few filled rectangles, as COCO-named JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        rng = np.random.default_rng(first_id + i)
        y, x = np.mgrid[0:h, 0:w]
        image = np.stack([(rng.integers(0, 255) + x * rng.random() + y * rng.random()) % 256 for _ in range(3)], -1)
        for _ in range(6):
            x1, y1 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            image[y1:y1 + rng.integers(10, h // 2), x1:x1 + rng.integers(10, w // 2)] = rng.integers(0, 255, 3)
        cv2.imwrite(str(folder / f"COCO_val2014_{first_id + i:012d}.jpg"), image.astype(np.uint8))
    return list_image_folders([folder])


def features_of(config_path: Path | None, overrides: dict) -> FeaturesConfig:
    base = load_yaml(config_path).get("features", {}) if config_path else {}
    return FeaturesConfig.from_dict({**base, **overrides})


def timed_extraction(detector, sec: FeaturesConfig, sizes, n_images: int, warmup: int, device: str, tmp: Path) -> dict:
    """Warm up, then extract n_images; images/s over the timed extraction loop."""
    if warmup:
        extract_features(write_images(tmp / "warmup", sizes[:1] * warmup, 900_000), tmp / "warmup.h5", sec,
                         "random", device=device, detector=detector)
    entries = write_images(tmp / "timed", [sizes[i % len(sizes)] for i in range(n_images)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    summary = extract_features(entries, tmp / "timed.h5", sec, "random", device=device, detector=detector)
    wall = time.perf_counter() - started
    result = {"images": n_images, "batch_size": sec.batch_size, "precision": sec.precision,
              "num_workers": sec.num_workers, "loop_seconds": summary["seconds"], "wall_seconds": round(wall, 3),
              "images_per_s": summary["images_per_s"]}
    if device.startswith("cuda"):
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def detector_only(detector, sec: FeaturesConfig, batch: int, device: str, iterations: int = 3) -> float:
    """images/s of the detector alone on a ready padded batch of 4:3 inputs at the config's size (600x800
    for the real one): no decoding, no writing. The gap to the pipeline's images/s is loading + storing."""
    from visdial_lg.features.extract import precision_context

    dev = torch.device(device)
    h, w = sec.min_size, min(sec.max_size, round(sec.min_size * 4 / 3))
    images = torch.randn(batch, 3, h, w, device=dev) * 50  # [B, 3, H, W]
    sizes = torch.tensor([[h, w]] * batch, device=dev)  # [B, 2]
    scales = torch.full((batch,), h / 480, device=dev)  # [B]: as if from 480x640 originals
    synchronize = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode(), precision_context(dev, sec.precision):
        detector(images, sizes, scales)  # warm-up
        synchronize()
        started = time.perf_counter()
        for _ in range(iterations):
            outputs = detector(images, sizes, scales)
        outputs[-1]["features"].cpu()
        synchronize()
    return round(batch * iterations / (time.perf_counter() - started), 3)


def run_cpu_case(case: dict) -> dict:
    """One CPU measurement (called in a child process: peak RSS is this case's)."""
    sec = features_of(Path(case["config"]) if case["config"] else None, case["overrides"])
    detector = build_detector(sec, "random", seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        result = timed_extraction(detector, sec, [tuple(s) for s in case["sizes"]], case["images"],
                                  case["warmup"], "cpu", Path(tmp))
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def cpu_cases(args) -> list[dict]:
    demo_sizes = [(120, 160), (160, 120)]
    demo_config = ROOT / "configs" / "demo.yaml"
    threads = torch.get_num_threads()
    return [
        {"name": "demo", "config": str(demo_config), "overrides": {"num_workers": 1}, "sizes": demo_sizes,
         "images": args.demo_images, "warmup": 2, "threads": threads},
        {"name": "real", "config": None, "overrides": {"batch_size": 1, "num_workers": 1, "precision": "fp32"},
         "sizes": COCO_SIZES[:1], "images": args.real_images, "warmup": 0, "threads": threads},
    ]


def run_cpu(args, deadline: float) -> list[dict]:
    results = []
    for case in cpu_cases(args):
        left = deadline - time.monotonic()
        entry = {"name": case["name"], "device": "cpu", "image_hw": case["sizes"][0]}
        if left < 10:
            results.append({**entry, "skipped": "time cap reached"})
            continue
        try:
            child = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                   text=True, timeout=left)
            if child.returncode != 0:
                results.append({**entry, "error": child.stderr.strip().splitlines()[-1:]})
                continue
            results.append({**entry, **json.loads(child.stdout.strip().splitlines()[-1])})
        except subprocess.TimeoutExpired:
            results.append({**entry, "skipped": f"did not finish within the time cap ({left:.0f} s)"})
    return results


def run_sweep(args, deadline: float, device: str) -> list[dict]:
    """batch size x precision on the real config (or --sweep-config); settings that would pass the cap
    are skipped, failures are reported and the sweep goes on."""
    config = Path(args.sweep_config) if args.sweep_config else None
    sec_base = features_of(config, {"num_workers": args.workers})
    detector = build_detector(sec_base, "random", seed=0).to(device)
    results, rate = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions.split(","):
            for batch in map(int, args.batch_sizes.split(",")):
                n = max(args.gpu_images, 2 * batch)
                entry = {"device": device, "precision": precision, "batch_size": batch, "images": n}
                expected = (n + batch) / rate + 5 if rate else 30
                if time.monotonic() + expected > deadline:
                    results.append({**entry, "skipped": "time cap"})
                    continue
                sec = dataclasses.replace(sec_base, batch_size=batch, precision=precision)
                result: dict = {}
                try:
                    result = timed_extraction(detector, sec, COCO_SIZES, n, batch, device,
                                              Path(tmp) / f"{precision}-{batch}")
                    rate = min(rate or 1e9, result["images_per_s"])  # pessimistic estimate for the cap
                    result["detector_only_images_per_s"] = detector_only(detector, sec, batch, device)
                except Exception as e:  # OOM or a kernel missing for a dtype: report it, go on
                    result["error"] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
                results.append({**entry, **result})
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=900, help="time cap for all measurements")
    parser.add_argument("--demo-images", type=int, default=16)
    parser.add_argument("--real-images", type=int, default=2, help="real config on CPU: ~2 TFLOP per image")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--precisions", default="bf16,fp16,tf32,fp32")
    parser.add_argument("--gpu-images", type=int, default=64, help="timed images per GPU setting")
    parser.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--sweep-config", help="YAML whose features: section the sweep uses (default: real)")
    parser.add_argument("--sweep-device", default="cuda", help="cpu only to try the sweep on a tiny config")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_cpu_case(json.loads(args.case))))
        return

    deadline = time.monotonic() + args.max_seconds
    demo_sec = features_of(ROOT / "configs" / "demo.yaml", {})
    real_sec = features_of(None, {})
    report = {
        "benchmark": "feature extraction (bench/extract.py)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "flops_per_image": {
            "demo (120x160 image)": estimate_flops(demo_sec, (120, 160)),
            "real (480x640 image)": estimate_flops(real_sec, (480, 640)),
        },
        "weights": "random (seed 0): FLOPs as trained weights; box selection differs",
        "cpu": [] if args.skip_cpu else run_cpu(args, deadline),
        "sweep": (run_sweep(args, deadline, args.sweep_device)
                  if args.sweep_device == "cpu" or torch.cuda.is_available() else "no CUDA device"),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
