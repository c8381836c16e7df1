"""`visdial-lg make-demo`: the synthetic, grounded visual-dialog dataset.

Every image is generated from its own random streams, named by (seed, image
set, index, purpose), so the output is a pure function of the config: the same
seed gives the same bytes, and changing one part (say the renderer) leaves the
others' draws untouched. Layout: `docs/formats.md` ("The demo dataset");
content: `docs/demo.md`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.config import DemoConfig
from ..core.errors import InputFormatError
from .answers import make_options
from .coco import coco_instances
from .dialogs import NUM_ROUNDS, make_dialog
from .layout import DemoImage, dense_annotations, grounding, held_back_answers, region_boxes, visdial_json
from .render import render, save_jpeg
from .scenes import sample_scene

MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class ImageSet:
    name: str
    folder: str  # relative to the output folder
    prefix: str  # file name = prefix + 12-digit image id + ".jpg"
    size_key: str  # DemoConfig field holding the number of images
    first_id: int  # ids are drawn from [first_id, first_id + max(10000, 5 n))


IMAGE_SETS = (  # id ranges as the real sets: COCO ids, then VisualDialog 2018 ids
    ImageSet("train2014", "images/train2014", "COCO_train2014_", "images_train2014", 1),
    ImageSet("val2014", "images/val2014", "COCO_val2014_", "images_val2014", 1),
    ImageSet("val2018", "images/VisualDialog_val2018", "VisualDialog_val2018_", "images_val2018", 185000),
    ImageSet("test2018", "images/VisualDialog_test2018", "VisualDialog_test2018_", "images_test2018", 568000),
)
COCO_ID_SPAN = 581930  # COCO 2014 ids lie below this


def _rng(seed: int, *labels) -> random.Random:
    """An independent stream per purpose; string seeds hash with SHA-512, stable across runs."""
    return random.Random("/".join(str(x) for x in (seed, *labels)))


def _int_seed(seed: int, *labels) -> int:
    text = "/".join(str(x) for x in (seed, *labels)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def draw_image_ids(cfg: DemoConfig) -> dict[str, list[int]]:
    """Sorted ids per image set, distinct across all sets (grounding.json is keyed by image id)."""
    rng = _rng(cfg.seed, "image_ids")
    used: set[int] = set()
    ids: dict[str, list[int]] = {}
    for s in IMAGE_SETS:
        n = getattr(cfg, s.size_key)
        span = COCO_ID_SPAN - 1 if s.first_id == 1 else max(10000, 5 * n)
        chosen: set[int] = set()
        while len(chosen) < n:
            candidate = rng.randrange(s.first_id, s.first_id + span)
            if candidate not in used:
                chosen.add(candidate)
                used.add(candidate)
        ids[s.name] = sorted(chosen)
    return ids


def generate_image(cfg: DemoConfig, image_set: ImageSet, index: int, image_id: int) -> DemoImage:
    """Scene, dialog and options of one image (no pixels)."""
    labels = (image_set.name, index)
    scene = sample_scene(_rng(cfg.seed, *labels, "scene"), cfg.image_width, cfg.image_height)
    dialog = make_dialog(scene, _rng(cfg.seed, *labels, "dialog"))
    option_rng = np.random.default_rng(_int_seed(cfg.seed, *labels, "options"))  # numpy: 100-of-108 draws are hot
    options = tuple(make_options(option_rng, r.meaning) for r in dialog.rounds)
    test = image_set.name == "test2018"
    return DemoImage(
        image_set=image_set.name, index=index, image_id=image_id,
        file_name=f"{image_set.prefix}{image_id:012d}.jpg", scene=scene, dialog=dialog, options=options,
        num_rounds=_rng(cfg.seed, *labels, "test_rounds").randint(1, NUM_ROUNDS) if test else NUM_ROUNDS,
        dense_round=_rng(cfg.seed, *labels, "dense_round").randint(1, NUM_ROUNDS),
    )


def render_image(cfg: DemoConfig, image: DemoImage) -> bytes:
    labels = (image.image_set, image.index)
    picture = render(image.scene, _rng(cfg.seed, *labels, "render"), _int_seed(cfg.seed, *labels, "noise"))
    buffer = io.BytesIO()
    save_jpeg(picture, buffer)
    return buffer.getvalue()


class _Writer:
    """Writes files atomically (temporary name, then rename) and remembers their checksums."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, dict] = {}

    def write(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.files[relative] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def write_json(self, relative: str, obj, indent: int | None = None) -> None:
        self.write(relative, json.dumps(obj, indent=indent).encode())


def _previous_files(out: Path) -> list[str]:
    """Files an earlier make-demo listed here; its manifest is removed, as this run is not complete yet."""
    manifest = out / MANIFEST
    if not manifest.exists():
        return []
    try:
        listed = list(json.loads(manifest.read_text())["files"])
    except (ValueError, KeyError, TypeError):
        listed = []
    manifest.unlink()
    return listed


def make_demo(cfg: DemoConfig, out_dir: str | Path) -> None:
    """Write the demo dataset into `out_dir` (layout: docs/formats.md); MANIFEST.json last."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFormatError(f"demo output folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(out)
    writer = _Writer(out)

    ids = draw_image_ids(cfg)
    images: dict[str, list[DemoImage]] = {s.name: [] for s in IMAGE_SETS}
    with tqdm(total=sum(len(v) for v in ids.values()), desc="make-demo", unit="img") as bar:
        for s in IMAGE_SETS:
            for index, image_id in enumerate(ids[s.name]):
                image = generate_image(cfg, s, index, image_id)
                writer.write(f"{s.folder}/{image.file_name}", render_image(cfg, image))
                images[s.name].append(image)
                bar.update()

    for s in IMAGE_SETS:
        rows = [(im.image_id, im.file_name, im.scene) for im in images[s.name]]
        writer.write_json(f"annotations/instances_{s.name}.json", coco_instances(rows, f"visdial-lg demo {s.name}"))

    train2014, val2014 = images["train2014"], images["val2014"]
    v10_train = train2014 + val2014  # v1.0 train = COCO train2014 + val2014; v0.9 val is inside it, as in reality
    writer.write_json("visdial_0.9_train.json", visdial_json("0.9", "train", train2014))
    writer.write_json("visdial_0.9_val.json", visdial_json("0.9", "val", val2014))
    writer.write_json("visdial_1.0_train.json", visdial_json("1.0", "train", v10_train))
    writer.write_json("visdial_1.0_val.json", visdial_json("1.0", "val", images["val2018"]))
    writer.write_json("visdial_1.0_test.json", visdial_json("1.0", "test", images["test2018"]))

    writer.write_json("visdial_1.0_val_dense_annotations.json", dense_annotations(images["val2018"], "gt_relevance"))
    chosen = sorted(_rng(cfg.seed, "train_dense").sample(range(len(v10_train)), min(cfg.train_dense, len(v10_train))))
    writer.write_json("visdial_1.0_train_dense_sample.json", dense_annotations([v10_train[i] for i in chosen], "relevance"))
    writer.write_json("visdial_1.0_test_answers.json", held_back_answers(images["test2018"]))
    every_image = [im for s in IMAGE_SETS for im in images[s.name]]
    writer.write_json("grounding.json", grounding(every_image))
    writer.write_json("region_boxes.json", region_boxes(every_image, cfg.regions_per_image,
                                                        _rng(cfg.seed, "region_boxes")))

    for relative in previous:  # files of an earlier, different demo that this one does not have
        stale = out / relative
        if relative not in writer.files and stale.resolve().is_relative_to(out.resolve()) and stale.is_file():
            stale.unlink()
    manifest = {"generator": "visdial-lg make-demo", "seed": cfg.seed, "sizes": asdict(cfg),
                "files": dict(sorted(writer.files.items()))}
    writer.write_json(MANIFEST, manifest, indent=1)
