"""Test images: COCO file names, a smooth BGR pattern, and every kind of bad image file."""

from __future__ import annotations

import cv2
import numpy as np


def coco_name(image_id: int, split: str = "val2014", suffix: str = ".jpg") -> str:
    return f"COCO_{split}_{image_id:012d}{suffix}"


def pixels(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """A smooth BGR test pattern (JPEG keeps it close)."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, 3)
    return np.stack([(base[c] + x * (c + 1) + y) % 256 for c in range(3)], -1).astype(np.uint8)


def bad_image_bytes(kind: str) -> bytes:
    jpeg = cv2.imencode(".jpg", pixels(64, 64))[1].tobytes()
    png = cv2.imencode(".png", pixels(64, 64))[1].tobytes()
    noise = np.random.default_rng(0).bytes(1000)
    return {
        "empty": b"",
        "truncated-jpeg": jpeg[: len(jpeg) * 2 // 3],
        "jpeg-missing-eoi": jpeg[:-2],
        "jpeg-cut-in-header": jpeg[:40],  # inside the quantisation tables, before the first scan
        "truncated-png": png[: len(png) // 2],
        "corrupt": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
        # JPEG start and end markers around noise: an APP0 segment running past the end
        "garbage-between-jpeg-markers": b"\xff\xd8\xff\xe0\x10\x00" + noise + b"\xff\xd9",
        "not-an-image": b"<html>404 Not Found</html>",
    }[kind]


BAD_KINDS = ["empty", "truncated-jpeg", "jpeg-missing-eoi", "jpeg-cut-in-header", "truncated-png", "corrupt",
             "garbage-between-jpeg-markers", "not-an-image"]


def images_of_features(features, folder):
    """A smooth test image per row of a features file, named as a COCO val file, at the size
    the file records (the figures and the explorer draw on them); returns `folder`."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(features) as f:
        for image_id, w, h in zip(f["image_id"][:], f["image_w"][:], f["image_h"][:]):
            cv2.imwrite(str(folder / coco_name(int(image_id))), pixels(int(h), int(w), seed=int(image_id)))
    return folder
