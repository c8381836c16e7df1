"""Throughput of `download` (loopback HTTP, sha256 + fsync included), `unzip` (with
`zipfile.extractall` as the unchecked baseline; the manifest's sha256 of the zip is
included) and the metrics on a VisDial-v1.0-val-sized split. Prints one JSON object.

    .venv/bin/python bench/data_fetch.py [--mib 128] [--files 2000 --kib 32]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from visdial_lg.download.archive import safe_extract_zip
from visdial_lg.download.fetch import download
from visdial_lg.evaluation.metrics import NDCG, SparseGTMetrics


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def bench_download(folder: Path, mib: int) -> dict:
    block = random.Random(0).randbytes(1 << 20)
    (folder / "www").mkdir()
    with open(folder / "www" / "big.bin", "wb") as f:
        for _ in range(mib):
            f.write(block)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder / "www")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        start = time.perf_counter()
        download(f"http://127.0.0.1:{server.server_port}/big.bin", folder / "big.bin", progress=False)
        seconds = time.perf_counter() - start
    finally:
        server.shutdown()
        server.server_close()
    return {"download_mib": mib, "download_s": round(seconds, 3), "download_mib_per_s": round(mib / seconds, 1)}


def bench_unzip(folder: Path, files: int, kib: int) -> dict:
    rng = random.Random(1)
    zpath = folder / "imgs.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:  # JPEGs are stored, not deflated
        for i in range(files):
            zf.writestr(f"train2014/COCO_train2014_{i:012d}.jpg", rng.randbytes(kib << 10))
    start = time.perf_counter()
    with zipfile.ZipFile(zpath) as zf:  # baseline: the unchecked standard extraction
        zf.extractall(folder / "baseline")
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    safe_extract_zip(zpath, folder / "out", folder / "out.manifest.json", progress=False)
    seconds = time.perf_counter() - start
    mib = files * kib / 1024
    return {"unzip_files": files, "unzip_mib": round(mib, 1), "unzip_s": round(seconds, 3),
            "unzip_files_per_s": round(files / seconds), "unzip_mib_per_s": round(mib / seconds, 1),
            "unzip_baseline_extractall_s": round(baseline, 3)}


def bench_metrics() -> dict:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2064, 10, 100, generator=g)  # v1.0 val: 2,064 dialogs x 10 rounds x 100 options
    gt_index = torch.randint(0, 100, (2064, 10), generator=g)
    relevance = torch.randint(0, 3, (2064, 100), generator=g).float() / 2
    start = time.perf_counter()
    sparse, dense = SparseGTMetrics(), NDCG()
    for b in range(0, 2064, 32):
        sparse.observe(scores[b : b + 32], gt_index[b : b + 32])
        dense.observe(scores[b : b + 32, 0], relevance[b : b + 32])
    sparse.retrieve(), dense.retrieve()
    return {"metrics_val_split_s": round(time.perf_counter() - start, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="size of the downloaded file")
    parser.add_argument("--files", type=int, default=2000, help="files in the benchmark zip")
    parser.add_argument("--kib", type=int, default=32, help="size of each file in the zip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {"torch_threads": 1, **bench_download(folder, args.mib), **bench_unzip(folder, args.files, args.kib)}
    result.update(bench_metrics())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
