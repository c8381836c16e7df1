"""Detector weights: safe reading, sha256 check, layout conversion, random init.

Files:
- `.pkl`: the public converted pickles (`{"model": {name: ndarray}}`, detectron2 names),
  read with an unpickler that only builds numpy arrays and plain containers;
- `.pth` / `.pt` / `.bin`: torch state dicts (MIL, the HF copy), read with `weights_only=True`
  (tensors, or numpy arrays through the same allow-list as the pickles);
- any other name (the download is saved as `resources/downloads/detector_weights`, without
  a suffix): a torch zip checkpoint if the file starts as a zip, else a pickle.

Two layouts exist; both are converted to this package's internal one (Caffe's):
- "detectron2" (AIR pickles, HF copy): 12 sigmoid objectness logits in detectron2's
  size-major anchor order, `cls_score` with background *last*, `attr_score` with
  "no attribute" *last* (their demos drop the last attribute column), `bbox_pred`
  1600 x 4 without background, trained/converted for box-coder weights (10, 10, 5, 5);
- "caffe" (MIL .pth): 24 objectness channels (12 bg then 12 fg) in Caffe's
  ratio-major order, background *first*, `bbox_pred` 1601 x 4 with weights (1, 1, 1, 1),
  attribute layers named `cls_embed`, `attr_linear1`, `attr_linear2`.
The layout is recognised from the `bbox_pred` shape (6400 vs 6404 rows). An anchor
buffer `...anchor_generator.cell_anchors.0` in the file, when present, decides the anchor
order (it must be a reordering of the 12 Caffe anchors). `pixel_mean` / `pixel_std`
buffers, when present, must equal Caffe's preprocessing (BGR means, std 1) and are dropped.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import InputFormatError
from ..core.files import load_tensors, sha256_of
from .anchors import caffe_cell_anchors
from .backbone import PIXEL_MEANS_BGR, RES4_BLOCKS, FrozenBatchNorm2d

D2_BBOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
RESIDUAL_BRANCH_GAIN = 0.25  # random init: scale of each bottleneck's last BN
PRED = "roi_heads.box_predictor."
RPN_HEAD = "proposal_generator.rpn_head."
ANCHOR_KEYS = ("proposal_generator.anchor_generator.cell_anchors.0", "proposal_generator.anchor_generator.cell_anchors")
MIL_NAMES = {"cls_embed": "cls_embedding", "attr_linear1": "fc_attr", "attr_linear2": "attr_score"}
# Predictor outputs whose "background" / "no attribute" row is last in the detectron2 layout, first in Caffe's.
BACKGROUND_ROWS = {"cls_score": 1601, "cls_embedding": 1601, "attr_score": 401}
ANCHOR_TOLERANCE = 0.1  # a file anchor may differ from its Caffe anchor by 10 % of that anchor's size


class WeightsError(InputFormatError):
    """A weights file that is unreadable, unsafe, corrupt or does not fit the detector."""


# ----------------------------------------------------------------------------- reading


NUMERIC_DTYPES = ("BoolDType", "Float16DType", "Float32DType", "Float64DType", "Int8DType", "Int16DType",
                  "Int32DType", "Int64DType", "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType")


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    import _codecs

    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("collections", "OrderedDict"): OrderedDict, ("_codecs", "encode"): _codecs.encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol-5 array pickles
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    for name in NUMERIC_DTYPES:  # numpy >= 2 names an array's dtype class in some protocols
        if hasattr(getattr(np, "dtypes", None), name):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, scalars and plain containers; any other global is refused."""

    _allowed = _numpy_globals()

    @classmethod
    def allowed_objects(cls) -> list:
        return list({id(obj): obj for obj in cls._allowed.values()}.values())

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _read_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        # latin1: the public pickles may come from Python 2 (numpy's own advice for such files).
        return _ArraysOnlyUnpickler(f, encoding="latin1").load()


TORCH_SUFFIXES = (".pth", ".pt", ".bin")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6


def _is_pickle(path: Path) -> bool:
    """A public pickle, by name (.pkl) or, for names without a known suffix, by content."""
    if path.suffix == ".pkl":
        return True
    if path.suffix in TORCH_SUFFIXES:
        return False
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) != ZIP_MAGIC


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """name -> tensor (float32) from a .pkl or a torch checkpoint; raises WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if not _is_pickle(path):
        # weights_only, widened to numpy arrays (a .pth may hold them instead of tensors).
        data = load_tensors(path, "weights file", safe_globals=_ArraysOnlyUnpickler.allowed_objects(),
                            error=WeightsError)
    else:
        try:
            data = _read_pickle(path)
        except pickle.UnpicklingError as e:
            raise WeightsError(f"cannot read weights file {path}: UnpicklingError: {e}") from e
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
            first_line = str(e).strip().split("\n")[0]
            raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {first_line}") from e
    if isinstance(data, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(data.get(wrapper), dict):
                data = data[wrapper]
                break
    if not isinstance(data, dict):
        raise WeightsError(f"weights file {path} holds a {type(data).__name__}, expected a name -> array mapping")
    state = {}
    for name, value in data.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.array(value, dtype=np.float32))
        elif not isinstance(value, torch.Tensor):
            raise WeightsError(f"weights file {path}: entry '{name}' is a {type(value).__name__}, not an array")
        state[str(name)] = value.float()
    return state


# ----------------------------------------------------------------------------- layouts


def _anchor_order(file_anchors: torch.Tensor | None, layout: str) -> torch.Tensor:
    """perm with internal anchor a == file anchor perm[a] (internal = Caffe ratio-major order)."""
    caffe = caffe_cell_anchors()
    if file_anchors is None:
        if layout == "caffe":
            return torch.arange(12)
        # detectron2 generates sizes outer, ratios inner; Caffe ratios outer, scales inner.
        return torch.tensor([s * 3 + r for r in range(3) for s in range(4)])

    def sides(a: torch.Tensor) -> torch.Tensor:  # [12, 2] widths and heights
        return torch.stack([a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], 1)

    theirs = file_anchors.float().reshape(-1, 4)
    if theirs.shape[0] != 12:
        raise WeightsError(f"the file's anchor buffer holds {theirs.shape[0]} anchors, expected 12")
    distance = torch.cdist(sides(caffe), sides(theirs))  # [12, 12]
    perm = distance.argmin(dim=1)
    off = distance.gather(1, perm[:, None]).squeeze(1) > ANCHOR_TOLERANCE * sides(caffe).norm(dim=1)
    if sorted(perm.tolist()) != list(range(12)) or off.any():
        found = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in sides(theirs).tolist())
        raise WeightsError(f"the file's anchors ({found}) are not a reordering of the detector's 12 Caffe "
                           "anchors (sizes 64-512 px at ratios 0.5, 1, 2)")
    return perm


def _check_pixel_statistics(state: dict[str, torch.Tensor]) -> None:
    """Drop `pixel_mean` / `pixel_std`, refusing values other than the Caffe preprocessing's."""
    expected = {"pixel_mean": torch.from_numpy(PIXEL_MEANS_BGR), "pixel_std": torch.ones(3)}
    for name, value in expected.items():
        found = state.pop(name, None)
        if found is not None and not torch.allclose(found.flatten(), value, atol=1e-3):
            raise WeightsError(f"the file's {name} is {found.flatten().tolist()}, but the detector "
                               f"preprocesses with {value.tolist()} (Caffe BGR means, std 1)")


def _per_anchor(deltas: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the 4-row groups (one per anchor) of a 48-row delta weight or bias."""
    return deltas.reshape(12, 4, *deltas.shape[1:])[perm].reshape(deltas.shape)


def to_internal(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a public state dict (either layout) to the internal one."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    _check_pixel_statistics(state)
    file_anchors = next((state.pop(k) for k in ANCHOR_KEYS if k in state), None)
    for old, new in MIL_NAMES.items():
        for suffix in (".weight", ".bias"):
            if PRED + old + suffix in state:
                state[PRED + new + suffix] = state.pop(PRED + old + suffix)
    bbox = state.get(PRED + "bbox_pred.weight")
    layout = "detectron2" if bbox is not None and bbox.shape[0] == 6400 else "caffe"
    perm = _anchor_order(file_anchors, layout)

    for suffix in (".weight", ".bias"):
        logits = state.get(RPN_HEAD + "objectness_logits" + suffix)
        if logits is not None:
            if logits.shape[0] == 24:  # Caffe softmax over (bg, fg): P(fg) = sigmoid(fg - bg)
                logits = logits[12:] - logits[:12]
            if logits.shape[0] == 12:
                state[RPN_HEAD + "objectness_logits" + suffix] = logits[perm]
        deltas = state.get(RPN_HEAD + "anchor_deltas" + suffix)
        if deltas is not None and deltas.shape[0] == 48:
            state[RPN_HEAD + "anchor_deltas" + suffix] = _per_anchor(deltas, perm)
        if layout == "detectron2":
            _background_first(state, suffix)
    return state


def _background_first(state: dict[str, torch.Tensor], suffix: str) -> None:
    """detectron2 -> Caffe class layout, in place, for the .weight or .bias entries."""
    for name, rows in BACKGROUND_ROWS.items():
        key = PRED + name + suffix
        if key in state and state[key].shape[0] == rows:
            state[key] = torch.cat([state[key][-1:], state[key][:-1]])
    key = PRED + "bbox_pred" + suffix
    if key in state and state[key].shape[0] == 6400:
        weights = torch.tensor(D2_BBOX_WEIGHTS).repeat(1600).view(-1, *[1] * (state[key].dim() - 1))
        deltas = state[key] / weights  # undo the (10, 10, 5, 5) scaling of the converted deltas
        state[key] = torch.cat([deltas.new_zeros(4, *deltas.shape[1:]), deltas])  # background has no deltas


def to_public(state: dict[str, torch.Tensor], layout: str = "detectron2",
              with_cell_anchors: bool = False) -> dict[str, torch.Tensor]:
    """Internal state dict -> a public layout (inverse of to_internal; background box deltas are dropped)."""
    state = dict(state)
    perm = _anchor_order(None, layout)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(12)
    for suffix in (".weight", ".bias"):
        logits = state[RPN_HEAD + "objectness_logits" + suffix][inverse]
        if layout == "caffe":
            logits = torch.cat([torch.zeros_like(logits), logits])  # bg = 0, fg = the logit
        state[RPN_HEAD + "objectness_logits" + suffix] = logits
        deltas = state[RPN_HEAD + "anchor_deltas" + suffix]
        state[RPN_HEAD + "anchor_deltas" + suffix] = _per_anchor(deltas, inverse)
        if layout == "detectron2":
            for name in BACKGROUND_ROWS:
                key = PRED + name + suffix
                if key in state:
                    state[key] = torch.cat([state[key][1:], state[key][:1]])
            key = PRED + "bbox_pred" + suffix
            weights = torch.tensor(D2_BBOX_WEIGHTS).repeat(1600).view(-1, *[1] * (state[key].dim() - 1))
            state[key] = state[key][4:] * weights
    if layout == "caffe":
        for old, new in MIL_NAMES.items():
            for suffix in (".weight", ".bias"):
                if PRED + new + suffix in state:
                    state[PRED + old + suffix] = state.pop(PRED + new + suffix)
    if with_cell_anchors:
        state[ANCHOR_KEYS[0]] = caffe_cell_anchors()[inverse]
    return state


def save_public_pickle(model: nn.Module, path: str | Path, with_cell_anchors: bool = False) -> None:
    """Write `model`'s weights as the public AIR pickle: {"model": {name: float32 ndarray}}."""
    public = to_public(model.state_dict(), "detectron2", with_cell_anchors)
    arrays = {k: v.detach().cpu().float().numpy() for k, v in public.items()}
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "visdial-lg"}, f, protocol=pickle.HIGHEST_PROTOCOL)


# ----------------------------------------------------------------------------- loading


def _natural(name: str) -> list:
    """Sort key with numbers compared as numbers: res4.6 before res4.10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split(".")]


def _describe_mismatch(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state), key=_natural)
    unexpected = sorted(set(state) - set(expected), key=_natural)
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(state) & set(expected), key=_natural) if state[k].shape != expected[k].shape]
    if not (missing or unexpected or shapes):
        return None

    def listed(title: str, items: list[str]) -> str:
        return f"{title} ({len(items)}): {', '.join(items[:6])}{', ...' if len(items) > 6 else ''}"

    parts = [listed(t, i) for t, i in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if i]
    cfg = getattr(model, "cfg", None)
    what = f" (depth {cfg.depth}, res5_halve {cfg.res5_halve})" if cfg is not None else ""
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("backbone.res4.")}
    if blocks and cfg is not None and RES4_BLOCKS.get(cfg.depth) != max(blocks) + 1:
        depth = {v: k for k, v in RES4_BLOCKS.items()}.get(max(blocks) + 1, "unknown")
        parts.insert(0, f"the file has {max(blocks) + 1} res4 blocks (depth {depth})")
    return f"weights file {path} does not fit the detector{what}: " + "; ".join(parts)


def load_weights(model: nn.Module, path: str | Path, sha256: str | None = None) -> str:
    """Verify, read, convert and load a weights file into `model`; returns the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256.lower():
        raise WeightsError(f"weights file {path} has sha256 {actual}, expected {sha256}")
    state = to_internal(read_weights_file(path))
    problem = _describe_mismatch(path, model, state)
    if problem:
        raise WeightsError(problem)
    model.load_state_dict(state, strict=True)
    model.weights_sha256 = actual
    return actual


@torch.no_grad()
def init_random_weights(model: nn.Module, seed: int = 0) -> None:
    """Deterministic random weights (the demo has no pretrained detector).
    Convs: He-normal (fan_out, detectron2's c2_msra_fill); frozen BN: identity, with the
    residual branch's last BN scaled so that activations stay O(1) through the stages;
    heads: small normals as detectron2 initialises them."""
    generator = torch.Generator().manual_seed(seed)
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01, generator=generator)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0, generator=generator)
    for name, module in model.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.running_mean.zero_(), module.running_var.fill_(1.0), module.bias.zero_()
            module.weight.fill_(RESIDUAL_BRANCH_GAIN if name.endswith("conv3.norm") else 1.0)
    rpn_head = model.proposal_generator.rpn_head
    for conv in (rpn_head.conv, rpn_head.objectness_logits, rpn_head.anchor_deltas):
        nn.init.normal_(conv.weight, std=0.01, generator=generator)
    nn.init.normal_(model.roi_heads.box_predictor.bbox_pred.weight, std=0.001, generator=generator)
    model.weights_sha256 = None

