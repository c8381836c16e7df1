"""Cost of the checks a feature file gets when it is opened (shapes, per-image sizes, every
valid box) and of the per-row finiteness check on read, on a VisDial-train-sized file
(123,287 images, K = 100, chunked one image per chunk as extraction writes it). Only the
boxes and per-image arrays are written; the features are written for `--read-rows` rows.
Prints one JSON object.

    .venv/bin/python bench/feature_checks.py [--images 123287] [--read-rows 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from visdial_lg.features.reader import FeatureReader
from visdial_lg.features.store import FeatureLayout, check_finite_features, create_datasets, valid_box_mask


def write_file(path: Path, n: int, read_rows: int, K: int = 100) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        create_datasets(f, n, FeatureLayout(K))
        f["image_id"][:] = np.arange(n)
        f["image_w"][:], f["image_h"][:], f["num_boxes"][:] = 640, 480, K
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            x1y1 = rng.uniform(0, [400, 240], (stop - start, K, 2))
            f["boxes"][start:stop] = np.concatenate([x1y1, x1y1 + 200], -1).astype(np.float32)
        for start in range(0, read_rows, 256):
            stop = min(read_rows, start + 256)
            f["features"][start:stop] = rng.random((stop - start, K, 2048), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=123287)
    parser.add_argument("--read-rows", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        write_file(path, args.images, args.read_rows)
        start = time.perf_counter()
        reader = FeatureReader(path, feature_dim=2048)
        len(reader)  # opens and checks
        open_s = time.perf_counter() - start

        start = time.perf_counter()
        rows = [reader.read(row) for row in range(args.read_rows)]
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        for row, image in enumerate(rows):  # the check alone, as read() does it
            check_finite_features(path, [row], valid_box_mask([image["num_boxes"]], 100), image["features"][None])
        check_s = time.perf_counter() - start
    print(json.dumps({
        "images": args.images, "open_and_check_s": round(open_s, 2),
        "read_rows": args.read_rows, "read_ms_per_row": round(1e3 * read_s / args.read_rows, 3),
        "finite_check_ms_per_row": round(1e3 * check_s / args.read_rows, 3),
    }))


if __name__ == "__main__":
    main()
