"""A feature file in the released LTMI code's layout (its generate_visdial script), for
the import and feature-check tests."""

from __future__ import annotations

import h5py
import numpy as np

K, D, A = 5, 2048, 3  # regions, feature size, attributes per region


def _inside_640x480(rng, n) -> np.ndarray:
    x1y1 = rng.random((n, K, 2), np.float32) * 300
    return np.concatenate([x1y1, x1y1 + rng.random((n, K, 2), np.float32) * 100], -1)  # [n, K, 4]


def write_ltmi(path, n=4, *, cur_idx=None, drop=(), features_shape=None) -> dict:
    """A file in LTMI's generate_visdial layout: no cls_scores, `st1_boxes`, int64/float64 scalars."""
    rng = np.random.default_rng(1)
    data = {
        "image_id": np.array([9, 3, 7, 5, 0, 0][:n], np.int64), "image_h": np.full(n, 480, np.int64),
        "image_w": np.full(n, 640.0), "num_boxes": np.full(n, K, np.int64),
        "boxes": _inside_640x480(rng, n), "st1_boxes": _inside_640x480(rng, n),
        "features": rng.random(features_shape or (n, K, D), np.float32),
        "cls_indices": rng.integers(1, 1601, (n, K)), "top_attrs": rng.integers(0, 401, (n, K, A)),
        "top_attrs_scores": rng.random((n, K, A), np.float32),
    }
    with h5py.File(path, "w") as f:
        for name, value in data.items():
            if name not in drop:
                f[name] = value
        f.attrs["split"] = "val2018"
        if cur_idx is not None:
            f.attrs["cur_idx"] = cur_idx
    return data
