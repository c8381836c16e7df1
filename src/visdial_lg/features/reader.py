"""Reading the region-feature HDF5 (docs/formats.md): rows by image id, checked at open."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..core.errors import InputFormatError
from .store import check_all_boxes, check_feature_dim, check_finite_features, check_layout, check_values, valid_box_mask


class FeatureReader:
    """Row lookup by image id in a feature HDF5, safe with DataLoader workers.

    The file is opened on first use in each process (an h5py handle must not cross
    a fork), and the id -> row dict is built once per process.
    """

    def __init__(self, path: str | Path, feature_dim: int | None = None):
        self.path = Path(path)
        self.feature_dim = feature_dim  # the model's; None: any
        self._checked = False  # the whole-file checks ran (once, not in every worker)
        self._pid: int | None = None
        self._file: h5py.File | None = None

    def __getstate__(self):
        return {"path": self.path, "feature_dim": self.feature_dim, "_checked": self._checked,
                "_pid": None, "_file": None}

    def _open(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                f = h5py.File(self.path, "r")
            except FileNotFoundError as e:
                raise InputFormatError(f"feature file {self.path} does not exist") from e
            except OSError as e:
                raise InputFormatError(f"feature file {self.path} is not a readable HDF5 file ({e})") from e
            try:
                self.layout = check_layout(f, self.path)
                if not self._checked:
                    if self.feature_dim is not None:
                        check_feature_dim(self.layout, self.path, self.feature_dim)
                    check_values(f, self.path)
                    check_all_boxes(f, self.path)
                    self._checked = True
            except InputFormatError:
                f.close()
                raise
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
        image = {
            "features": f["features"][row].astype(np.float32, copy=False),  # [K, D]
            "boxes": f["boxes"][row].astype(np.float32, copy=False),  # [K, 4]
            "num_boxes": int(self._sizes["num_boxes"][row]),
            "image_w": int(self._sizes["image_w"][row]),
            "image_h": int(self._sizes["image_h"][row]),
        }
        # Too costly at open for a 98 GB file; cheap per row (0.07 ms, bench/feature_checks.py).
        K = image["features"].shape[0]
        check_finite_features(self.path, [image_id], valid_box_mask([image["num_boxes"]], K),
                              image["features"][None])
        return image

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None
