"""Finding the images of an image set and decoding them as BUTD does.

BUTD reads images with `cv2.imread(path)` (default flags = IMREAD_COLOR): the
format is sniffed from the bytes, not the file name (PNG behind `.jpg` works),
grayscale and CMYK come out as 3-channel BGR, and since OpenCV 3.1 the EXIF
orientation is applied. We decode the file's bytes with `cv2.imdecode` and the
same flag, so every image gets exactly those pixels. What OpenCV would
silently accept but we refuse: a JPEG cut short (libjpeg pads the missing
rows with grey and only warns) and a PNG without its IEND chunk. Every refusal
is a `BadImageError` naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import InputFormatError
from ..core.files import read_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_TRAILING_DIGITS = re.compile(r"(\d+)$")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class BadImageError(InputFormatError):
    """An image file that cannot be decoded into the pixels BUTD would see."""


@dataclass(frozen=True)
class ImageEntry:
    image_id: int
    path: Path


# ----------------------------------------------------------------------------- listing


def image_id_from_name(path: Path) -> int:
    """The image id is the number the file stem ends with (COCO/VisDial: its last 12 digits)."""
    match = _TRAILING_DIGITS.search(Path(path).stem)
    if match is None:
        raise InputFormatError(f"cannot read an image id from the file name {path} "
                               f"(expected a stem ending in digits, e.g. COCO_val2014_000000000042.jpg)")
    return int(match.group(1))


def list_image_folders(folders: Sequence[str | Path]) -> list[ImageEntry]:
    """Every image file directly inside `folders`, sorted by image id (ids must be unique)."""
    by_id: dict[int, Path] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise InputFormatError(f"image folder {folder} does not exist")
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image_id = image_id_from_name(path)
            if image_id in by_id:
                raise InputFormatError(f"image id {image_id} appears twice: {by_id[image_id]} and {path}")
            by_id[image_id] = path
    return [ImageEntry(i, by_id[i]) for i in sorted(by_id)]


def dialog_image_ids(dialogs_json: str | Path) -> list[int]:
    """The distinct image ids of a VisDial dialogs JSON, sorted."""
    path = Path(dialogs_json)
    data = read_json(path, "dialogs file")
    try:
        dialogs = data["data"]["dialogs"]
    except (KeyError, TypeError) as e:
        raise InputFormatError(f"dialogs file {path} is not VisDial JSON with data.dialogs ({e!r})") from e
    ids = set()
    for index, dialog in enumerate(dialogs):
        image_id = dialog.get("image_id") if isinstance(dialog, dict) else None
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise InputFormatError(f"dialogs file {path}, dialog {index}: image_id must be an integer, "
                                   f"got {image_id!r}")
        ids.add(image_id)
    return sorted(ids)


def images_of_dialogs(dialogs_json: str | Path, folders: Sequence[str | Path]) -> list[ImageEntry]:
    """The image of every dialog, found by id in `folders`; sorted by image id."""
    available = {entry.image_id: entry for entry in list_image_folders(folders)}
    entries = []
    for image_id in dialog_image_ids(dialogs_json):
        if image_id not in available:
            raise InputFormatError(f"image id {image_id} of {dialogs_json} is in none of the image "
                                   f"folders {', '.join(map(str, folders))}")
        entries.append(available[image_id])
    return entries


def parse_shard(spec: str) -> tuple[int, int]:
    """`"i/n"` (0-based i) -> (i, n)."""
    match = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if match is None or not int(match.group(1)) < int(match.group(2)):
        raise InputFormatError(f"--shard must be i/n with 0 <= i < n (0-based), got {spec!r}")
    return int(match.group(1)), int(match.group(2))


def shard_slice(entries: Sequence[ImageEntry], index: int, count: int) -> list[ImageEntry]:
    """Contiguous block `index` of `count` of the id-sorted list: shards concatenate to the whole."""
    ordered = sorted(entries, key=lambda e: e.image_id)
    n = len(ordered)
    return ordered[index * n // count:(index + 1) * n // count]


# ---------------------------------------------------------------------------- decoding


def _jpeg_state(data: bytes) -> str:
    """"complete", "truncated" or "invalid": walk the marker segments to the first scan,
    then look for the end-of-image marker.

    Within entropy-coded data every 0xFF byte is stuffed (FF00) or starts a marker,
    so FFD9 after the first SOS is the real EOI; an EXIF thumbnail's own FFD9 sits
    in an APP1 segment before it and is jumped over. "invalid": the segments are not
    JPEG's (FF00 or a length < 2 between them, where libjpeg fails too), or they run
    past the end of a file that ends in FFD9 (a JPEG cut short cannot end so).
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:  # stray bytes between segments: libjpeg skips them, so do we
            i = data.find(b"\xff", i)
            if i < 0:
                break
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker == 0xD9:
            return "complete"
        elif marker == 0x00 or int.from_bytes(data[i + 2:i + 4], "big") < 2:
            return "invalid"
        elif marker == 0xDA:  # start of scan
            scan_start = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
            return "complete" if data.find(b"\xff\xd9", scan_start) >= 0 else "truncated"
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return "invalid" if data.endswith(b"\xff\xd9") else "truncated"


def decode_image_bgr(data: bytes, path: Path) -> np.ndarray:
    """File bytes -> uint8 [H, W, 3] BGR, as `cv2.imread(path)` with default flags."""
    if not data:
        raise BadImageError(f"image {path} is an empty file (0 bytes)")
    # An "invalid" JPEG goes on to the decoder, which refuses it as libjpeg would.
    if data.startswith(_JPEG_MAGIC) and _jpeg_state(data) == "truncated":
        raise BadImageError(f"image {path} is a truncated JPEG (no end-of-image marker)")
    if data.startswith(_PNG_MAGIC) and data.rfind(b"IEND") < 0:
        raise BadImageError(f"image {path} is a truncated PNG (no IEND chunk)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # [H, W, 3] BGR
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise BadImageError(f"image {path} cannot be decoded (first bytes {data[:8].hex()})")
    return image


def read_image_bgr(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadImageError(f"image {path} cannot be read: {e.strerror or e}") from e
    return decode_image_bgr(data, path)


# --------------------------------------------------------------- DataLoader side


Preprocess = Callable[[np.ndarray, int, int], "tuple[torch.Tensor, float]"]


class DecodedImages(Dataset):
    """Decodes and resizes images in DataLoader workers.

    A bad image does not raise here (an exception would reach the main process as
    a multi-line worker traceback): the item carries the error and the extraction
    loop decides, after flushing finished rows, to fail or to skip.
    """

    def __init__(self, entries: Sequence[ImageEntry], rows: Sequence[int], preprocess: Preprocess,
                 min_size: int, max_size: int):
        self.entries, self.rows = list(entries), list(rows)
        self.preprocess, self.min_size, self.max_size = preprocess, min_size, max_size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        entry = self.entries[row]
        item = {"row": row, "image_id": entry.image_id, "path": str(entry.path), "error": None}
        try:
            image = read_image_bgr(entry.path)  # [H, W, 3] uint8 BGR
        except BadImageError as e:
            item["error"] = str(e)
            return item
        pixels, scale = self.preprocess(image, self.min_size, self.max_size)  # [3, h, w] float32
        item.update(image=pixels, scale=float(scale), original_hw=image.shape[:2])
        return item


def collate_padded(items: list[dict]) -> dict:
    """Good images zero-padded bottom/right into one batch; bad ones listed apart."""
    good = [item for item in items if item["error"] is None]
    batch = {"bad": [item for item in items if item["error"] is not None],
             "rows": [item["row"] for item in good], "image_ids": [item["image_id"] for item in good]}
    if good:
        sizes = torch.tensor([item["image"].shape[1:] for item in good], dtype=torch.long)  # [B, 2] (h, w)
        h_max, w_max = sizes.max(dim=0).values.tolist()
        images = torch.zeros(len(good), 3, h_max, w_max, dtype=good[0]["image"].dtype)  # [B, 3, Hmax, Wmax]
        for b, item in enumerate(good):
            h, w = item["image"].shape[1:]
            images[b, :, :h, :w] = item["image"]
        batch.update(images=images, image_sizes=sizes,
                     scales=torch.tensor([item["scale"] for item in good], dtype=torch.float32),  # [B]
                     original_hw=torch.tensor([item["original_hw"] for item in good], dtype=torch.long))
    return batch


def worker_init(_worker_id: int) -> None:
    # Each worker decodes one image at a time; OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)
