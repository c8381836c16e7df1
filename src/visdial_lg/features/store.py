"""The region-feature HDF5 (DESIGN §3, docs/formats.md): layout, checking, writing, reading.

One row per image; per-box arrays padded to K boxes with `num_boxes` valid,
chunked one image per chunk. Heavy files are written as `OUT.h5.partial`
whose datasets are all allocated when it is created: later writes touch only
raw data, never HDF5 metadata, so a killed writer leaves a file that reopens,
and a per-row `done` flag (set after the row is flushed) says what to skip.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import h5py
import numpy as np
from h5py import h5d, h5p

from ..errors import InputFormatError, VisdialLGError

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


class PartialFeatureFile:
    """`OUT.partial`: rows written in any order, each marked done once on disk; resumable.

    `identity` attributes (what the rows were computed from) must match on resume,
    otherwise finished rows would be mixed with rows of another computation.
    """

    def __init__(self, out: str | Path, n: int, layout: FeatureLayout, identity: Mapping[str, str]):
        self.out, self.path, self.layout = Path(out), partial_path(out), layout
        if self.path.exists():
            self.file = self._reopen(identity)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.path, "w")
            create_datasets(self.file, n, layout, early=True)
            dcpl = h5p.create(h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # zero-filled now
            self.file.create_dataset(DONE, (n,), "uint8", dcpl=dcpl)
            set_attrs(self.file, identity)
            self.file.flush()
        self.done = self.file[DONE][()].astype(bool)  # [N]

    def _reopen(self, identity: Mapping[str, str]) -> h5py.File:
        try:
            f = h5py.File(self.path, "r+")
        except OSError as e:
            raise VisdialLGError(f"cannot reopen the unfinished {self.path} ({e}); delete it to start over") from e
        for key, value in identity.items():
            found = f.attrs.get(key)
            if found != value:
                f.close()
                raise VisdialLGError(f"unfinished {self.path} was computed with another '{key}' "
                                     f"({found!r} != {value!r}); delete it to start over")
        if DONE not in f:
            f.close()
            raise VisdialLGError(f"{self.path} has no '{DONE}' record; delete it to start over")
        return f

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
        """Drop the done record (and, if some rows never finished, those rows) and rename to OUT."""
        set_attrs(self.file, attrs or {})
        if self.done.all():
            del self.file[DONE]
            self.file.close()
            os.replace(self.path, self.out)
            return self.out
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
        self.file.close()
        os.replace(compact, self.out)
        self.path.unlink()
        return self.out

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()


# ------------------------------------------------------------------------------ reading


class FeatureReader:
    """Row lookup by image id in a feature HDF5, safe with DataLoader workers.

    The file is opened on first use in each process (an h5py handle must not cross
    a fork), and the id -> row dict is built once per process.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pid: int | None = None
        self._file: h5py.File | None = None

    def __getstate__(self):
        return {"path": self.path, "_pid": None, "_file": None}

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                f = h5py.File(self.path, "r")
            except FileNotFoundError as e:
                raise InputFormatError(f"feature file {self.path} does not exist") from e
            except OSError as e:
                raise InputFormatError(f"feature file {self.path} is not a readable HDF5 file ({e})") from e
            self.layout = check_layout(f, self.path)
            ids = f["image_id"][()]
            self._index = {int(i): row for row, i in enumerate(ids)}
            self._sizes = {k: f[k][()] for k in ("num_boxes", "image_w", "image_h")}  # [N] each
            self._file, self._pid = f, os.getpid()
        return self._file

    def __len__(self) -> int:
        self._open()
        return len(self._index)

    def __contains__(self, image_id: int) -> bool:
        self._open()
        return int(image_id) in self._index

    @property
    def image_ids(self) -> list[int]:
        self._open()
        return list(self._index)

    def index_of(self, image_id: int) -> int:
        self._open()
        try:
            return self._index[int(image_id)]
        except KeyError:
            raise InputFormatError(f"image id {image_id} has no features in {self.path}") from None

    def read(self, image_id: int) -> dict:
        """features [K, D] float32, boxes [K, 4] float32 (rows >= num_boxes are padding), sizes."""
        row = self.index_of(image_id)
        f = self._file
        return {
            "features": f["features"][row].astype(np.float32, copy=False),  # [K, D]
            "boxes": f["boxes"][row].astype(np.float32, copy=False),  # [K, 4]
            "num_boxes": int(self._sizes["num_boxes"][row]),
            "image_w": int(self._sizes["image_w"][row]),
            "image_h": int(self._sizes["image_h"][row]),
        }

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None
