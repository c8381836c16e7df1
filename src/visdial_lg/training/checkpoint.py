"""Checkpoints: atomic writes, RNG states, and rebuilding a trained model.

Everything is stored as tensors and plain Python types so that every file loads
with `torch.load(weights_only=True)` (no arbitrary unpickling).

* resume state `last.pt`: model, optimizer, scheduler, per-rank RNG states, the
  number of completed epochs, run id, config sections and vocabulary size;
* final `checkpoint.pt`: the same minus optimizer/scheduler/RNG (evaluation only
  needs the weights and what rebuilds the model).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..core.config import Config
from ..core.errors import InputFormatError
from ..core.files import load_tensors
from ..core.runs import RunSpec, parse_run_id

FORMAT_VERSION = 1
# Keys of a final checkpoint besides the weights; `meta` of `load_trained_model`.
META_KEYS = ("format", "run", "config", "vocab_size", "epoch", "inputs")


def rng_state() -> dict:
    """This process's python, numpy, torch and CUDA generator states, as plain types."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
        "has_gauss": np_state["has_gauss"],
        "gauss": np_state["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by this package; bad files raise InputFormatError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"checkpoint not found: {path}")
    ckpt = load_tensors(path, "checkpoint", map_location=map_location)
    if not isinstance(ckpt, dict):
        raise InputFormatError(f"{path} is not a visdial-lg checkpoint (holds a {type(ckpt).__name__})")
    missing = [k for k in ("format", "run", "config", "vocab_size", "model") if k not in ckpt]
    if missing:
        raise InputFormatError(f"{path} is not a visdial-lg checkpoint (missing {', '.join(missing)})")
    if ckpt["format"] != FORMAT_VERSION:
        raise InputFormatError(f"{path}: checkpoint format {ckpt['format']}, expected {FORMAT_VERSION}")
    return ckpt


def load_trained_model(checkpoint_path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the trained model in eval mode: returns `(model, spec, meta)`."""
    from ..models.ltmi import build_model

    ckpt = load_checkpoint(checkpoint_path)
    spec: RunSpec = parse_run_id(ckpt["run"])
    # The stored sections come from a file: validated like any config (train is not needed).
    config = Config.from_dict({"model": ckpt["config"]["model"], "lg": ckpt["config"]["lg"]})
    model = build_model(spec, ckpt["vocab_size"], config.model, config.lg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise InputFormatError(f"{checkpoint_path}: weights do not fit run {spec.run_id}: {first}") from e
    model.to(device).eval()
    meta = {k: ckpt[k] for k in META_KEYS if k in ckpt}
    return model, spec, meta
