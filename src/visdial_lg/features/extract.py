"""Images -> feature HDF5 shard: decode in DataLoader workers, batched detector, resumable writes.

The shard is written as `OUT.partial` (see `store.PartialFeatureFile`): each
flushed batch marks its rows done, a rerun after a kill computes only the rest,
and the file is renamed to OUT when every row is done (or skipped).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..core.device import resolve_device
from ..core.config import RESULT_NEUTRAL_KEYS, FeaturesConfig, as_dict
from ..core.errors import InputFormatError, VisdialLGError
from ..core.files import read_json, sha256_of
from .images import DecodedImages, ImageEntry, collate_padded, shard_slice, worker_init
from .store import FeatureLayout, PartialFeatureFile, progress_bar, write_skipped_manifest

FEATURE_DIM = 2048
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Extraction settings that do not change the numbers (batching only within float tolerance).
RUNTIME_KEYS = RESULT_NEUTRAL_KEYS["features"]
# Detector outputs -> dataset names of the file (LTMI names).
OUTPUT_NAMES = {"boxes": "boxes", "proposal_boxes": "proposal_boxes", "features": "features",
                "cls_indices": "cls_indices", "cls_scores": "cls_scores",
                "attr_indices": "top_attrs", "attr_scores": "top_attrs_scores"}
# LTMI's generate_visdial: attribute indices whose score is below 0.1 become 0 (__no_attribute__).
ATTR_THRESH = 0.1


def image_list_sha256(entries: Sequence[ImageEntry]) -> str:
    """Identity of the whole (unsharded) image list: ids and file names, not folders (they may move)."""
    text = "".join(f"{e.image_id} {e.path.name}\n" for e in sorted(entries, key=lambda e: e.image_id))
    return hashlib.sha256(text.encode()).hexdigest()


def load_given_boxes(path: str | Path) -> dict[int, np.ndarray]:
    """`{"<image_id>": [[x1, y1, x2, y2], ...]}` or `[{"image_id": .., "boxes": [...]}]`, original pixels."""
    path = Path(path)
    data = read_json(path, "boxes file")
    pairs = data.items() if isinstance(data, dict) else (
        (d.get("image_id"), d.get("boxes")) if isinstance(d, dict) else (None, None) for d in data)
    boxes = {}
    for key, value in pairs:
        try:
            image_id = int(key)
            array = np.asarray(value, dtype=np.float32).reshape(-1, 4)  # [k, 4]
        except (TypeError, ValueError):
            raise InputFormatError(f"boxes file {path}: entry {key!r} is not image id -> [[x1, y1, x2, y2], ...]") from None
        if len(array) == 0 or not (array[:, 2:] >= array[:, :2]).all():
            raise InputFormatError(f"boxes file {path}: image id {image_id} needs >= 1 box with x2 >= x1, y2 >= y1")
        boxes[image_id] = array
    return boxes


def precision_context(device: torch.device, precision: str):
    """Autocast only on CUDA; fp32 is strict fp32 there (no TF32), tf32 allows TF32 matmuls/convs."""
    if device.type != "cuda":
        if precision != "fp32":
            print(f"visdial-lg extract: precision {precision} applies on CUDA only; running fp32 on "
                  f"{device.type}", file=sys.stderr)
        return contextlib.nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision in AUTOCAST_DTYPES:
        return torch.autocast("cuda", dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def _identity(all_entries, features: FeaturesConfig, weights: str, given_boxes_path, shard) -> dict[str, str]:
    """What the rows are computed from; a resumed run must match it exactly."""
    if weights != "random" and not Path(weights).is_file():
        raise InputFormatError(f"weights file not found: {weights} (give a file or 'random')")
    config = {k: v for k, v in sorted(as_dict(features).items()) if k not in RUNTIME_KEYS}
    if weights != "random":
        config.pop("seed", None)  # the seed only draws random weights
    return {
        "extractor_config": json.dumps(config, sort_keys=True),
        "weights": "random" if weights == "random" else Path(weights).name,
        "weights_sha256": f"random (seed {features.seed})" if weights == "random" else sha256_of(weights),
        "boxes_sha256": sha256_of(given_boxes_path) if given_boxes_path else "",
        "image_list_sha256": image_list_sha256(all_entries),
        "shard_index": str(shard[0]), "shard_count": str(shard[1]),
    }


def rows_to_arrays(outputs: list[dict], batch: dict, layout: FeatureLayout) -> dict[str, np.ndarray]:
    """Detector outputs (K_i boxes each) -> arrays padded with zeros to the file's K."""
    B = len(outputs)
    values = {}
    for name in layout.datasets:
        trailing, dtype = layout.spec(name)
        values[name] = np.zeros((B, *trailing), dtype=dtype)
    for b, output in enumerate(outputs):
        k = int(output["features"].shape[0])
        if k > layout.num_boxes:
            raise VisdialLGError(f"detector returned {k} boxes for image id {batch['image_ids'][b]}, "
                                 f"more than the file's K={layout.num_boxes}")
        for key, name in OUTPUT_NAMES.items():
            values[name][b, :k] = output[key].detach().float().cpu().numpy()
        # The detector counts objects and attributes from 0; LTMI files index ['__background__'] + objects
        # and ['__no_attribute__'] + attributes, so 0 stays free for padding and weak attributes.
        values["cls_indices"][b, :k] += 1
        values["top_attrs"][b, :k] += 1
        values["num_boxes"][b] = k
    values["top_attrs"][values["top_attrs_scores"] < ATTR_THRESH] = 0
    values["image_id"][:] = batch["image_ids"]
    values["image_h"][:] = batch["original_hw"][:, 0].numpy()
    values["image_w"][:] = batch["original_hw"][:, 1].numpy()
    return values


def _to_host(outputs: list[dict]) -> tuple[list[dict], torch.cuda.Event | None]:
    """Start copying the detector outputs to the host without waiting for them; the
    returned event completes when the copies have landed (None on CPU)."""
    on_cuda = bool(outputs) and outputs[0]["features"].is_cuda
    host = [{k: v.to("cpu", non_blocking=on_cuda) for k, v in o.items()} for o in outputs]
    event = None
    if on_cuda:
        event = torch.cuda.Event()
        event.record()
    return host, event


def extract_features(entries: Sequence[ImageEntry], out: str | Path, features: FeaturesConfig, weights: str, *,
                     device: str = "auto", boxes_path: str | Path | None = None, shard: tuple[int, int] = (0, 1),
                     detector: torch.nn.Module | None = None,
                     after_batch: Callable[[int], None] | None = None) -> dict:
    """Extract shard `shard` = (i, n) of `entries` into OUT; returns a summary (counts, images/s).

    `detector` replaces the one built from `weights` (benchmarks); `after_batch(rows_done)`
    runs after each flushed batch.
    """
    # One long function: the partial file, the writer thread and the progress bar are
    # shared by the checks before the loop, the loop and the finalisation after it.
    from .model import build_detector, preprocess

    out = Path(out)
    if not entries:
        raise InputFormatError(f"no images to extract into {out} (no .jpg/.jpeg/.png files found)")
    dev = resolve_device(device)
    mine = shard_slice(entries, *shard)
    given = load_given_boxes(boxes_path) if boxes_path else None
    if given is not None:
        for entry in mine:
            if entry.image_id not in given:
                raise InputFormatError(f"boxes file {boxes_path} has no boxes for image id {entry.image_id}")
    K = max([features.max_boxes, *(len(b) for b in given.values())] if given else [features.max_boxes])
    layout = FeatureLayout(K, FEATURE_DIM, features.top_attrs, features.storage_dtype)
    identity = _identity(entries, features, weights, boxes_path, shard)
    if detector is None:  # weights are read (or refused) before any partial file exists
        detector = build_detector(features, weights, features.weights_sha256, seed=features.seed)
    skipped: list[dict] = []
    computed, started = 0, time.perf_counter()
    with PartialFeatureFile(out, len(mine), layout, identity) as partial:
        todo = np.flatnonzero(~partial.done).tolist()
        if todo:
            detector = detector.to(dev).eval()
            if dev.type == "cuda":  # NHWC convolutions: ~1.5x faster on tensor cores (docs/features.md)
                detector = detector.to(memory_format=torch.channels_last)
            loader = DataLoader(DecodedImages(mine, todo, preprocess, features.min_size, features.max_size),
                                batch_size=features.batch_size, num_workers=features.num_workers,
                                collate_fn=collate_padded, worker_init_fn=worker_init, pin_memory=dev.type == "cuda")
            started = time.perf_counter()
            bar = progress_bar(len(mine), int(partial.done.sum()), f"extract {out.name}")

            def write(rows, outputs, event, batch):
                if event is not None:
                    event.synchronize()
                partial.write(rows, rows_to_arrays(outputs, batch, layout))

            # One writer thread: the host copies and HDF5 writes of a batch overlap the
            # detector on the next one; at most two batches wait, in order.
            writer, pending = ThreadPoolExecutor(max_workers=1), deque()

            def drain(keep: int) -> None:
                while len(pending) > keep:
                    pending.popleft().result()  # re-raises a failed write

            with bar, writer, torch.inference_mode(), precision_context(dev, features.precision):
                for batch in loader:
                    for bad in batch["bad"]:
                        if features.on_bad_image == "fail":
                            raise InputFormatError(f"{bad['error']} (set features.on_bad_image: skip to leave it out)")
                        skipped.append({"image_id": bad["image_id"], "path": bad["path"], "reason": bad["error"]})
                    if batch["rows"]:
                        boxes = ([torch.from_numpy(given[i]).to(dev) for i in batch["image_ids"]]
                                 if given is not None else None)
                        images = batch["images"].to(dev, non_blocking=True)
                        if dev.type == "cuda":
                            images = images.contiguous(memory_format=torch.channels_last)
                        outputs = detector(images, batch["image_sizes"].to(dev), batch["scales"].to(dev),
                                           given_boxes=boxes, original_sizes=batch["original_hw"].to(dev))
                        pending.append(writer.submit(write, np.asarray(batch["rows"]), *_to_host(outputs), batch))
                        drain(keep=0 if after_batch is not None else 2)
                        computed += len(batch["rows"])
                    bar.update(len(batch["rows"]) + len(batch["bad"]))
                    if after_batch is not None:
                        after_batch(int(partial.done.sum()))
                drain(keep=0)
        seconds = time.perf_counter() - started
        final_attrs = {"skipped_images": skipped, "on_bad_image": features.on_bad_image,
                       "precision": features.precision, "device": dev.type}
        if features.on_bad_image == "skip":  # before OUT appears: a kill between the two leaves no OUT without it
            write_skipped_manifest(out, skipped)
        partial.finalize(final_attrs)
    return {"out": str(out), "images": len(mine), "computed": computed, "skipped": len(skipped),
            "seconds": round(seconds, 3), "images_per_s": round(computed / seconds, 3) if seconds > 0 else None}


def extract_command(out: str | Path, weights: str, features: FeaturesConfig, *,
                    image_dirs: Sequence[str] | None = None,
                    dialogs: str | None = None, boxes: str | None = None, shard: str = "0/1",
                    device: str = "auto") -> dict:
    """`visdial-lg extract`: list the images (folders, or the dialogs' images in folders), then extract."""
    from .images import images_of_dialogs, list_image_folders, parse_shard

    entries = images_of_dialogs(dialogs, image_dirs) if dialogs else list_image_folders(image_dirs)
    return extract_features(entries, out, features, weights, device=device, boxes_path=boxes,
                            shard=parse_shard(shard))
