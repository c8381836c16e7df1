"""The region-feature HDF5 (docs/formats.md, docs/extraction.md): layout, checking, writing
(reading rows by image id: `reader.FeatureReader`).

One row per image; per-box arrays padded to K boxes with `num_boxes` valid,
chunked one image per chunk. Heavy files are written as `OUT.h5.partial`
whose datasets are all allocated when it is created: later writes touch only
raw data, never HDF5 metadata, so a killed writer leaves a file that reopens,
and a per-row `done` flag (set after the row is flushed) says what to skip.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np
from h5py import h5d, h5p
from tqdm import tqdm

from ..core.errors import InputFormatError, VisdialLGError
from ..core.files import write_text_atomic

REQUIRED = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")
DONE = "done"


@dataclass(frozen=True)
class FeatureLayout:
    """Sizes and dtypes of a feature file: K boxes per row, D-dim features, A attributes per box."""

    num_boxes: int
    feature_dim: int = 2048
    num_attrs: int = 20
    feature_dtype: str = "float32"
    datasets: tuple[str, ...] = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "proposal_boxes",
                                 "features", "cls_indices", "cls_scores", "top_attrs", "top_attrs_scores")

    def spec(self, name: str) -> tuple[tuple[int, ...], str]:
        """(shape after the row axis, dtype) of dataset `name`."""
        K, D, A = self.num_boxes, self.feature_dim, self.num_attrs
        return {
            "image_id": ((), "int64"), "image_w": ((), "int32"), "image_h": ((), "int32"),
            "num_boxes": ((), "int32"),
            "boxes": ((K, 4), "float32"), "proposal_boxes": ((K, 4), "float32"),
            "features": ((K, D), self.feature_dtype),
            "cls_indices": ((K,), "int32"), "cls_scores": ((K,), "float32"),
            "top_attrs": ((K, A), "int32"), "top_attrs_scores": ((K, A), "float32"),
        }[name]


def _kind_ok(name: str, dtype: np.dtype) -> bool:
    if name in ("image_id", "num_boxes", "cls_indices", "top_attrs"):
        return dtype.kind in "iu"
    if name in ("image_w", "image_h"):
        return dtype.kind in "iuf"
    return dtype.kind == "f"


def check_layout(f: h5py.File, path: str | Path, required: Iterable[str] = REQUIRED) -> FeatureLayout:
    """Shapes and dtypes of every known dataset, against N (from image_id) and K, A (from the data).

    Raises InputFormatError naming the file and the first wrong dataset.
    """
    for name in required:
        if name not in f:
            raise InputFormatError(f"feature file {path} lacks dataset '{name}' (docs/formats.md)")
    n = f["image_id"].shape[0] if f["image_id"].ndim == 1 else None
    if n is None:
        raise InputFormatError(f"feature file {path}: dataset 'image_id' must be 1-D, has shape {f['image_id'].shape}")
    features = f["features"]
    if features.ndim != 3:
        raise InputFormatError(f"feature file {path}: dataset 'features' must be [N, K, D], has shape {features.shape}")
    A = f["top_attrs"].shape[-1] if "top_attrs" in f and f["top_attrs"].ndim == 3 else 20
    layout = FeatureLayout(features.shape[1], features.shape[2], A, str(features.dtype),
                           tuple(k for k in FeatureLayout.datasets if k in f))
    for name in layout.datasets:
        trailing, _ = layout.spec(name)
        expected = (n, *trailing)
        if f[name].shape != expected:
            raise InputFormatError(f"feature file {path}: dataset '{name}' has shape {f[name].shape}, "
                                   f"expected {expected} (N={n}, K={layout.num_boxes})")
        if not _kind_ok(name, f[name].dtype):
            raise InputFormatError(f"feature file {path}: dataset '{name}' has dtype {f[name].dtype}")
    return layout


def check_values(f: h5py.File, path: str | Path, rows: int | None = None) -> None:
    """The per-image scalars of the first `rows` rows (default all): unique ids, 0 <= num_boxes <= K,
    positive sizes. Reads [N] arrays only."""
    rows = f["image_id"].shape[0] if rows is None else rows
    ids = f["image_id"][:rows]
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise InputFormatError(f"feature file {path}: image id {unique[counts > 1][0]} has several rows")
    num_boxes, K = f["num_boxes"][:rows], f["features"].shape[1]
    bad = np.flatnonzero((num_boxes < 0) | (num_boxes > K))
    if bad.size:
        raise InputFormatError(f"feature file {path}: image id {ids[bad[0]]} has num_boxes "
                               f"{num_boxes[bad[0]]} outside [0, {K}]")
    for name in ("image_w", "image_h"):
        bad = np.flatnonzero(f[name][:rows] <= 0)
        if bad.size:
            raise InputFormatError(f"feature file {path}: image id {ids[bad[0]]} has {name} <= 0")


def check_feature_dim(layout: FeatureLayout, path: str | Path, expected: int) -> None:
    if layout.feature_dim != expected:
        raise InputFormatError(f"feature file {path} holds {layout.feature_dim}-d features, the model takes "
                               f"{expected}-d (bottom-up-attention pool5)")


def check_rows(path: str | Path, ids: np.ndarray, num_boxes: np.ndarray, sizes: np.ndarray,
               boxes: np.ndarray, features: np.ndarray | None = None) -> None:
    """Rows of a block: every valid box finite and inside its image (0 <= x1 <= x2 <= w, the same
    for y), and, if given, every valid feature finite. `sizes` [B, 2] (w, h), `boxes` [B, K, 4],
    `features` [B, K, D]. The padding (boxes >= num_boxes) is not looked at."""
    valid = valid_box_mask(num_boxes, boxes.shape[1])  # [B, K]
    w, h = sizes[:, 0, None].astype(np.float64), sizes[:, 1, None].astype(np.float64)  # [B, 1]
    x1, y1, x2, y2 = (boxes[..., i].astype(np.float64) for i in range(4))  # [B, K] each
    with np.errstate(invalid="ignore"):  # NaN compares False: caught as outside
        inside = (0 <= x1) & (x1 <= x2) & (x2 <= w) & (0 <= y1) & (y1 <= y2) & (y2 <= h)
    bad = np.argwhere(valid & ~inside)
    if len(bad):
        b, k = bad[0]
        raise InputFormatError(f"feature file {path}: image id {ids[b]} box {k} {boxes[b, k].tolist()} is not "
                               f"inside its {int(sizes[b, 0])}x{int(sizes[b, 1])} image")
    if features is not None:
        check_finite_features(path, ids, valid, features)


def valid_box_mask(num_boxes, K: int) -> np.ndarray:
    """[B, K]: box k of row b is real (k < num_boxes[b]), not padding."""
    return np.arange(K)[None, :] < np.asarray(num_boxes)[:, None]  # [B, K]


def check_finite_features(path: str | Path, ids, valid: np.ndarray, features: np.ndarray) -> None:
    """Every valid box's features finite; `valid` [B, K], `features` [B, K, D]."""
    bad = np.argwhere(valid & ~np.isfinite(features).all(-1))
    if len(bad):
        b, k = bad[0]
        raise InputFormatError(f"feature file {path}: image id {ids[b]} box {k} has non-finite feature values")


def check_all_boxes(f: h5py.File, path: str | Path, block: int = 4096) -> None:
    """`check_rows` on the boxes of every row, `block` rows at a time (features are checked as read)."""
    n = f["image_id"].shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        sizes = np.stack([f["image_w"][start:stop], f["image_h"][start:stop]], 1)
        check_rows(path, f["image_id"][start:stop], f["num_boxes"][start:stop], sizes, f["boxes"][start:stop])


# ------------------------------------------------------------------------------ writing


def _early_dcpl() -> h5p.PropDCID:
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # all chunks placed now: later writes change no metadata
    dcpl.set_fill_time(h5d.FILL_TIME_NEVER)  # ...and nothing is written for them yet (sparse file)
    return dcpl


def create_datasets(f: h5py.File, n: int, layout: FeatureLayout, *, early: bool = False) -> None:
    """Every dataset of `layout`, N = n rows, per-box arrays chunked one image per chunk."""
    for name in layout.datasets:
        trailing, dtype = layout.spec(name)
        chunks = (1, *trailing) if trailing and n > 0 else None
        f.create_dataset(name, (n, *trailing), dtype, chunks=chunks, dcpl=_early_dcpl() if early else None)


def set_attrs(f: h5py.File, attrs: Mapping) -> None:
    for key, value in attrs.items():
        f.attrs[key] = value if isinstance(value, (str, int, float, np.integer, np.floating)) else json.dumps(value)


def partial_path(out: str | Path) -> Path:
    return Path(f"{out}.partial")


def stale_path(partial: Path) -> Path:
    """`OUT.partial.stale-YYYYmmdd-HHMMSS[-k]`: where a partial file of other inputs is kept."""
    base = f"{partial}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = Path(base), 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def _brief(value) -> str:
    text = "(none)" if value is None else str(value)
    return text if len(text) <= 40 else text[:12] + "…"  # a sha256 by its first digits


def describe_changes(old: Mapping, new: Mapping[str, str]) -> str:
    """`key: old → new` for each differing identity attribute; a JSON config by its differing keys."""
    parts = []
    for key, value in new.items():
        found = old.get(key)
        if found == value:
            continue
        try:
            before, after = json.loads(found), json.loads(value)
        except (TypeError, ValueError):
            before = after = None
        if isinstance(before, dict) and isinstance(after, dict):
            parts += [f"{key}.{k}: {_brief(before.get(k))} → {_brief(after.get(k))}"
                      for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        else:
            parts.append(f"{key}: {_brief(found)} → {_brief(value)}")
    return ", ".join(parts)


class PartialFeatureFile:
    """`OUT.partial`: rows written in any order, each marked done once on disk; resumable.

    `identity` attributes (what the rows were computed from) must match to resume. A
    partial file of other inputs is never mixed in: without finished rows it is simply
    replaced, otherwise it is kept as `stale_path(...)` (one line on stderr) and the
    run starts over. A partial file without its `done` record is complete (finalize
    drops the record last) and is only renamed.
    """

    def __init__(self, out: str | Path, n: int, layout: FeatureLayout, identity: Mapping[str, str]):
        self.out, self.path, self.layout = Path(out), partial_path(out), layout
        self.complete = False
        self.file = self._reopen(identity) if self.path.exists() else None
        if self.complete:
            self.done = np.ones(n, dtype=bool)
            return
        if self.file is None:
            self._create(n, identity)
            self.file = h5py.File(self.path, "r+")
        self.done = self.file[DONE][()].astype(bool)  # [N]

    def _create(self, n: int, identity: Mapping[str, str]) -> None:
        """Written as OUT.partial.new and renamed: a kill while creating leaves no half-made partial file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = Path(f"{self.path}.new")
        with h5py.File(new, "w") as f:
            create_datasets(f, n, self.layout, early=True)
            dcpl = h5p.create(h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # zero-filled now
            f.create_dataset(DONE, (n,), "uint8", dcpl=dcpl)
            set_attrs(f, identity)
        os.replace(new, self.path)

    def _reopen(self, identity: Mapping[str, str]) -> h5py.File | None:
        """The partial file to resume, or None to start a new one (sets `complete` for a finished one)."""
        try:
            f = h5py.File(self.path, "r+")
        except OSError as e:  # e.g. locked by a running extraction: leave it alone
            raise VisdialLGError(f"cannot reopen the unfinished {self.path} ({e}); delete it to start over") from e
        changes = describe_changes(f.attrs, identity)
        if not changes:
            if DONE in f:
                return f
            f.close()
            self.complete = True
            return None
        has_rows = DONE not in f or bool(f[DONE][()].any())
        f.close()
        if not has_rows:
            self.path.unlink()  # nothing computed yet: nothing to keep
            return None
        kept = stale_path(self.path)
        os.replace(self.path, kept)
        print(f"visdial-lg: {self.path.name} was computed from other inputs ({changes}); "
              f"kept as {kept.name}, starting over", file=sys.stderr)
        return None

    def write(self, rows: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Write rows (ascending not required), flush, then mark them done and flush again."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        order = np.argsort(rows)
        rows = rows[order]
        consecutive = rows[-1] - rows[0] + 1 == len(rows)  # the usual case: one slice write per dataset
        for name in self.layout.datasets:
            data = np.asarray(values[name])[order]
            dataset = self.file[name]
            if consecutive:
                dataset[rows[0]:rows[-1] + 1] = data
            else:
                for r, row in enumerate(rows):
                    dataset[row] = data[r]
        self.file.flush()
        self.file[DONE][rows] = 1
        self.file.flush()
        self.done[rows] = True

    def finalize(self, attrs: Mapping | None = None) -> Path:
        """Drop the done record (and, if some rows never finished, those rows) and rename to OUT.

        Safe under a kill at any step: the partial file keeps its done record until it is
        complete, and a rerun finishes whatever step was cut short.
        """
        if self.complete:  # found finished on reopen: only the rename was missing
            os.replace(self.path, self.out)
            return self.out
        if self.done.all():
            set_attrs(self.file, attrs or {})
            self.file.flush()
            del self.file[DONE]  # the last change: from here on the partial file counts as complete
            self.file.close()
            os.replace(self.path, self.out)
            return self.out
        # Some rows missing: copy the done ones into OUT.compact, leaving the partial file as it
        # is, so that a kill before the last step leaves it resumable (OUT.compact is rewritten).
        keep = np.flatnonzero(self.done)
        compact = Path(f"{self.out}.compact")
        with h5py.File(compact, "w") as dst:
            create_datasets(dst, len(keep), self.layout)
            for name in self.layout.datasets:
                source, target = self.file[name], dst[name]
                for start in range(0, len(keep), 256):
                    target[start:start + 256] = source[keep[start:start + 256]]
            for key, value in self.file.attrs.items():
                dst.attrs[key] = value
            set_attrs(dst, attrs or {})
        self.file.close()
        os.replace(compact, self.out)
        self.path.unlink()
        return self.out

    def close(self) -> None:
        if self.file is not None and self.file.id.valid:
            self.file.close()

    def __enter__(self) -> "PartialFeatureFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also when the writer stops early: the rows done so far stay resumable


# ------------------------------------------------------------- beside the file


def progress_bar(total: int, initial: int, desc: str) -> tqdm:
    """images and images/s; into a log file (no terminal) only every 30 s, not ten times a second."""
    return tqdm(total=total, initial=initial, unit="img", desc=desc, smoothing=0.1,
                mininterval=0.1 if sys.stderr.isatty() else 30)


def skipped_manifest_path(out: str | Path) -> Path:
    return Path(f"{out}.skipped.json")


def write_skipped_manifest(out: str | Path, skipped: list[dict]) -> Path:
    """`OUT.skipped.json`: {"features": OUT, "skipped": [{image_id, path, reason}]} (read by the dataset)."""
    return write_text_atomic(skipped_manifest_path(out),
                              json.dumps({"features": Path(out).name, "skipped": skipped}, indent=1) + "\n")
