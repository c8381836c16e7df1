"""What a run trained on, recorded in every checkpoint so that a resume never mixes inputs.

The fingerprint is a flat dict of strings:

* `tokens`, `vocab`, `glove`: sha256 of the file's content (`glove` is "none" without one);
* `features`: the feature file's recorded identity, i.e. the attributes that its
  extraction (or import) wrote: extractor config, weights hash, image list hash,
  given boxes, or the imported file's name, rows, size and mtime; plus its layout (rows,
  boxes, feature size, dtype). A 98 GB file is thus never re-hashed, and re-extracting
  it with another config or weights changes the fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import h5py

from ..core.errors import InputFormatError
from ..features.store import describe_changes
from ..core.files import sha256_of

# Attributes of a feature file that say what its rows were computed from
# (written by extraction, merge or import; see docs/formats.md).
FEATURE_IDENTITY_ATTRS = ("extractor_config", "weights_sha256", "boxes_sha256", "image_list_sha256",
                          "imported_from", "source_rows", "source_bytes", "source_mtime_ns", "ltmi_attrs")


def feature_identity(path: str | Path) -> dict[str, str]:
    """The recorded identity and the layout of a feature file (reads attributes and shapes only)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            identity = {key: _text(f.attrs[key]) for key in FEATURE_IDENTITY_ATTRS if key in f.attrs}
            if "features" in f:
                identity["layout"] = f"{f['features'].shape} {f['features'].dtype}"
    except OSError as e:
        raise InputFormatError(f"feature file {path} is not a readable HDF5 file ({e})") from None
    return identity


def input_fingerprint(tokens: Path, vocab: Path, features: Path, glove: Path | None) -> dict[str, str]:
    return {
        "tokens": sha256_of(tokens),
        "vocab": sha256_of(vocab),
        "features": json.dumps(feature_identity(features), sort_keys=True),
        "glove": sha256_of(glove) if glove is not None else "none",
    }


def changed_inputs(recorded: Mapping[str, str] | None, current: Mapping[str, str]) -> str | None:
    """None if `recorded` equals `current`, else a short text naming what changed."""
    if recorded is None:
        return "it records no input fingerprint"
    changed = []
    for key in current:
        old, new = recorded.get(key), current[key]
        if old == new:
            continue
        if key == "features" and old is not None:
            what = describe_changes(json.loads(old), json.loads(new)) or "attributes it no longer has"
            changed.append(f"features ({what})")
        else:
            changed.append(f"{key} file content" if key != "glove" else "GloVe table")
    return ", ".join(changed) if changed else None


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else json.dumps(value.tolist() if hasattr(value, "tolist") else value)
