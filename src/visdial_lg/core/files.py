"""File helpers shared by every stage: atomic small writes, content hashes, JSON and safe tensor loading."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Iterable

from .errors import InputFormatError

# torch's own lines around a weights_only refusal (its advice to load unsafely included).
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


def read_json(path: str | Path, what: str, *, error: type[Exception] = InputFormatError):
    """The parsed content of JSON file `path`. Any failure raises `error` with one line naming
    `what` and `path`: "cannot read {what} {path}: file not found" (or "not valid JSON: <msg>
    at line L, column C", "not UTF-8 text (byte N)", the OS's reason)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        cause, problem = e, "file not found"
    except json.JSONDecodeError as e:
        cause, problem = e, f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
    except UnicodeDecodeError as e:
        cause, problem = e, f"not UTF-8 text (byte {e.start})"
    except OSError as e:  # a folder, no permission, ...
        cause, problem = e, e.strerror or str(e)
    raise error(f"cannot read {what} {path}: {problem}") from cause


def load_tensors(path: str | Path, what: str, *, map_location="cpu", safe_globals: Iterable = (),
                 error: type[Exception] = InputFormatError):
    """`torch.load(weights_only=True)`: tensors and plain types only (plus `safe_globals`), no
    pickled code runs. Any failure raises `error` with one line naming `what` and `path`."""
    import torch

    try:
        # torch's warnings (e.g. on an old pickle protocol) would add lines of their own.
        with torch.serialization.safe_globals(list(safe_globals)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # code or foreign objects in the file
        raise error(_weights_only_refusal(what, path, e)) from e
    except Exception as e:  # noqa: BLE001 - truncated / foreign: any reader failure is a bad file
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise error(f"cannot read {what} {path}: {type(e).__name__}: {first_line}") from e


def _weights_only_refusal(what: str, path, error: Exception) -> str:
    """One line of ours for torch.load(weights_only=True)'s multi-line refusal of `path`."""
    lines = [line.strip() for line in str(error).splitlines()]
    detail = " ".join(line for line in lines if line and not line.startswith(_TORCH_BOILERPLATE))
    if "GLOBAL" in detail:  # "Trying to load unsupported GLOBAL posix.system whose module ..."
        name = detail.split("GLOBAL", 1)[1].split()[0]
        return (f"{what} {path} holds pickled code or objects other than tensors/arrays ({name}); "
                "refusing to load it (only tensor state dicts are accepted)")
    return f"cannot read {what} {path}: not a torch checkpoint of tensors ({detail or 'unreadable pickle'})"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a whole file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to a temporary sibling of `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
