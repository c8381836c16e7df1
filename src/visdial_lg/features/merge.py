"""Combining feature files: shards into one file, and an LTMI file into ours.

Shards are contiguous blocks of the id-sorted image list (`images.shard_slice`),
so concatenating them in shard order gives the unsharded file's rows exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from ..core.errors import InputFormatError
from .store import (
    FeatureLayout, PartialFeatureFile, check_feature_dim, check_layout, check_rows, check_values, progress_bar,
    set_attrs, skipped_manifest_path, write_skipped_manifest,
)

# Attributes that every shard of one extraction shares; merged files keep them.
SHARED_ATTRS = ("extractor_config", "weights", "weights_sha256", "boxes_sha256", "image_list_sha256")
COPY_BLOCK = 64  # rows per read/write when copying


@dataclass
class _Shard:
    path: Path
    file: h5py.File
    layout: FeatureLayout
    index: int
    count: int

    @property
    def rows(self) -> int:
        return self.file["image_id"].shape[0]


def _open_shard(path: Path) -> _Shard:
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputFormatError(f"feature shard {path} is not a readable HDF5 file ({e})") from e
    try:
        layout = check_layout(f, path)
        return _Shard(path, f, layout, int(f.attrs["shard_index"]), int(f.attrs["shard_count"]))
    except KeyError:
        f.close()
        raise InputFormatError(f"feature shard {path} has no shard_index/shard_count attributes "
                               f"(not written by `visdial-lg extract`)") from None
    except InputFormatError:
        f.close()
        raise


def _check_shards(shards: list[_Shard], out: Path) -> None:
    first = shards[0]
    for shard in shards:
        if shard.count != first.count or shard.layout != first.layout:
            raise InputFormatError(f"feature shard {shard.path} belongs to another extraction than {first.path} "
                                   f"(shard count {shard.count} vs {first.count}, layout {shard.layout} vs "
                                   f"{first.layout})")
        for key in SHARED_ATTRS:
            if shard.file.attrs.get(key) != first.file.attrs.get(key):
                raise InputFormatError(f"feature shard {shard.path} differs from {first.path} in attribute '{key}'")
        check_values(shard.file, shard.path)
    indices = [shard.index for shard in shards]
    if indices != list(range(first.count)):
        missing = sorted(set(range(first.count)) - set(indices))
        what = f"shard {missing[0]} of {first.count} is missing" if missing else f"a shard is given twice {indices}"
        raise InputFormatError(f"cannot merge {len(shards)} shards into {out}: {what}")


def merge_shards(paths: Sequence[str | Path], out: str | Path, *, virtual: bool = False) -> Path:
    """Shards 0..n-1 of one extraction -> OUT, rows in shard order; copies or maps (HDF5 virtual datasets)."""
    out = Path(out)
    shards: list[_Shard] = []
    try:
        for path in paths:
            shards.append(_open_shard(Path(path)))
        shards.sort(key=lambda s: s.index)
        _check_shards(shards, out)
        first = shards[0].file
        skipped = [e for s in shards for e in json.loads(s.file.attrs.get("skipped_images", "[]"))]
        attrs = {k: first.attrs[k] for k in SHARED_ATTRS if k in first.attrs}
        attrs.update(merged_from=[s.path.name for s in shards], skipped_images=skipped)
        (_write_virtual if virtual else _write_copy)(out, shards, attrs)
    finally:
        for shard in shards:
            shard.file.close()
    if skipped or any(skipped_manifest_path(s.path).exists() for s in shards):
        write_skipped_manifest(out, skipped)
    return out


def _write_copy(out: Path, shards: list[_Shard], attrs: dict) -> None:
    """A resumable copy, block by block, into one file chunked one image per chunk."""
    total = sum(s.rows for s in shards)
    # The shards' own identity too: re-extracted shards of the same names never resume an old copy.
    identity = {"merged_from": json.dumps([s.path.name for s in shards]),
                **{k: str(v) for k, v in attrs.items() if k in SHARED_ATTRS}}
    offset = 0
    with PartialFeatureFile(out, total, shards[0].layout, identity) as partial:
        with progress_bar(total, int(partial.done.sum()), f"merge {out.name}") as bar:
            for shard in shards:
                for start in range(0, shard.rows, COPY_BLOCK):
                    rows = np.arange(offset + start, offset + min(shard.rows, start + COPY_BLOCK))
                    if not partial.done[rows].all():
                        block = {name: shard.file[name][start:start + len(rows)] for name in shard.layout.datasets}
                        partial.write(rows, block)
                        bar.update(len(rows))
                offset += shard.rows
        partial.finalize(attrs)


def _write_virtual(out: Path, shards: list[_Shard], attrs: dict) -> None:
    """Virtual datasets over the shards; source paths relative to OUT's folder so the set can move."""
    total, layout = sum(s.rows for s in shards), shards[0].layout
    tmp = Path(f"{out}.virtual-tmp")  # not OUT.partial: that may hold an interrupted copy's rows
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as dst:
        for name in layout.datasets:
            trailing, _ = layout.spec(name)
            vlayout = h5py.VirtualLayout(shape=(total, *trailing), dtype=shards[0].file[name].dtype)
            offset = 0
            for shard in shards:
                if shard.rows:
                    source = os.path.relpath(shard.path.resolve(), out.resolve().parent)
                    vlayout[offset:offset + shard.rows] = h5py.VirtualSource(
                        source, name, shape=(shard.rows, *trailing))
                offset += shard.rows
            dst.create_virtual_dataset(name, vlayout)
        set_attrs(dst, attrs)
    os.replace(tmp, out)


# --------------------------------------------------------------------------- LTMI import

LTMI_REQUIRED = ("image_id", "image_h", "image_w", "num_boxes", "boxes", "features",
                 "cls_indices", "top_attrs", "top_attrs_scores")


def import_ltmi(src: str | Path, out: str | Path, *, storage_dtype: str | None = None) -> Path:
    """An LTMI `*_resnet101_faster_rcnn_genome_100.h5` -> OUT in our layout (resumable copy).

    LTMI's `st1_boxes` (the proposals) become `proposal_boxes`; `cls_scores`, which
    LTMI does not store, is left out. Rows keep the source order. Every row is checked
    as it is copied (boxes inside the image, finite values), and the feature size must be
    the model's.
    """
    from ..models.ltmi import FEATURE_DIM

    src, out = Path(src), Path(out)
    try:
        f = h5py.File(src, "r")
    except FileNotFoundError as e:
        raise InputFormatError(f"LTMI feature file {src} does not exist") from e
    except OSError as e:
        raise InputFormatError(f"LTMI feature file {src} is not a readable HDF5 file ({e})") from e
    with f:
        source_layout = check_layout(f, src, required=LTMI_REQUIRED)
        if "st1_boxes" in f and f["st1_boxes"].shape != f["boxes"].shape:
            raise InputFormatError(f"feature file {src}: dataset 'st1_boxes' has shape {f['st1_boxes'].shape}, "
                                   f"expected {f['boxes'].shape}")
        check_feature_dim(source_layout, src, FEATURE_DIM)
        n = _ltmi_rows(f, src)
        check_values(f, src, rows=n)
        mapping = {name: name for name in source_layout.datasets}
        if "st1_boxes" in f:
            mapping["proposal_boxes"] = "st1_boxes"
        datasets = tuple(name for name in FeatureLayout.datasets if name in mapping)
        layout = FeatureLayout(source_layout.num_boxes, source_layout.feature_dim, source_layout.num_attrs,
                               storage_dtype or "float32", datasets)
        # Size and modification time stand for the content of a file too large to hash.
        stat = src.stat()
        identity = {"imported_from": src.name, "source_rows": str(n), "source_bytes": str(stat.st_size),
                    "source_mtime_ns": str(stat.st_mtime_ns)}
        with PartialFeatureFile(out, n, layout, identity) as partial:
            with progress_bar(n, int(partial.done.sum()), f"import {src.name}") as bar:
                for start in range(0, n, COPY_BLOCK):
                    rows = np.arange(start, min(n, start + COPY_BLOCK))
                    if partial.done[rows].all():
                        continue
                    block = {name: f[mapping[name]][start:rows[-1] + 1] for name in datasets}
                    check_rows(src, block["image_id"], block["num_boxes"],
                               np.stack([block["image_w"], block["image_h"]], 1), block["boxes"], block["features"])
                    partial.write(rows, block)
                    bar.update(len(rows))
            attrs = {"source": "LTMI import", "ltmi_attrs": {k: _plain(v) for k, v in f.attrs.items()}}
            return partial.finalize(attrs)


def _ltmi_rows(f: h5py.File, src: Path) -> int:
    """Rows actually written: LTMI's generator keeps its write position in attribute `cur_idx` [inferred]."""
    n = f["image_id"].shape[0]
    if "cur_idx" in f.attrs:
        cur = int(f.attrs["cur_idx"])
        if not 0 < cur <= n:
            raise InputFormatError(f"feature file {src}: attribute cur_idx={cur} outside (0, {n}]")
        return cur
    return n


def _plain(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
