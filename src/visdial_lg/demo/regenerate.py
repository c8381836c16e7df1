"""The demo as it was generated: every image's scene and dialog rebuilt from MANIFEST.json,
checked byte for byte against the files on disk, and the answer type of a demo answer.

No demo file records an object's colour (the COCO instances hold shape and box, the
dialogs only mention colours of some objects) or a round's template. `regenerate`
therefore rebuilds every image with the generator (`make.generate_image`, the seed and
sizes of `MANIFEST.json`) and checks the result against the COCO instances,
`grounding.json` and the VisDial JSONs, so the labels are exactly those the files were
written from. A round's answer type needs no regeneration: the generator's wordings are
distinct across meanings, so a ground-truth string names its meaning (`answers.meaning_of`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


from ..core.config import DemoConfig
from ..core.errors import InputFormatError
from ..core.files import read_json, sha256_of
from .answers import UNINFORMATIVE, meaning_of
from .coco import coco_instances
from .layout import DemoImage, grounding, visdial_json
from .make import IMAGE_SETS, MANIFEST, draw_image_ids, generate_image
from .scenes import COLOURS, POSITIONS, SHAPES, SIZES

ATTRIBUTES = ("colour", "shape", "size", "position")
# Every value of each attribute, in the order of the one-hot layout below (shape first).
ATTRIBUTE_VALUES = {"shape": SHAPES, "colour": tuple(COLOURS), "size": SIZES, "position": POSITIONS}
ONE_HOT_DIM = sum(len(v) for v in ATTRIBUTE_VALUES.values())  # 16
ANSWER_TYPES = ("yesno", "colour", "shape", "size", "position", "count")  # the meaning kinds of answers.py
UNINFORMATIVE_TYPE = "uninformative"


def answer_type(text: str) -> str:
    """The answer type of a demo answer string: one of ANSWER_TYPES, or "uninformative"
    for "i can not tell" and the like. Exact: every wording belongs to one meaning."""
    meaning = meaning_of(text)
    if meaning is not None:
        return meaning[0]
    if text in UNINFORMATIVE:
        return UNINFORMATIVE_TYPE
    raise InputFormatError(f"{text!r} is not one of the demo's answer strings (demo/answers.py)")


# ----------------------------------------------------------------------------- the demo as generated

def demo_config(resources: str | Path) -> DemoConfig:
    """The `demo:` section a dataset was made with, from its MANIFEST.json."""
    manifest = read_json(Path(resources) / MANIFEST, "demo manifest")
    try:
        return DemoConfig.from_dict(manifest["sizes"], "demo")
    except (KeyError, TypeError) as e:
        raise InputFormatError(f"{Path(resources) / MANIFEST}: no 'sizes' block ({e})") from e


def _regenerated_files(images: dict[str, list[DemoImage]]) -> dict[str, bytes]:
    """The bytes make_demo writes for the files that hold scenes and dialogs (as `make.make_demo`)."""
    out = {}
    for s in IMAGE_SETS:
        rows = [(im.image_id, im.file_name, im.scene) for im in images[s.name]]
        out[f"annotations/instances_{s.name}.json"] = coco_instances(rows, f"visdial-lg demo {s.name}")
    train2014, val2014 = images["train2014"], images["val2014"]
    out["visdial_0.9_train.json"] = visdial_json("0.9", "train", train2014)
    out["visdial_0.9_val.json"] = visdial_json("0.9", "val", val2014)
    out["visdial_1.0_train.json"] = visdial_json("1.0", "train", train2014 + val2014)
    out["visdial_1.0_val.json"] = visdial_json("1.0", "val", images["val2018"])
    out["visdial_1.0_test.json"] = visdial_json("1.0", "test", images["test2018"])
    out["grounding.json"] = grounding([im for s in IMAGE_SETS for im in images[s.name]])
    return {name: json.dumps(obj).encode() for name, obj in out.items()}


def regenerate(resources: str | Path, check: bool = True) -> dict[str, list[DemoImage]]:
    """Every image's scene, dialog and options, per image set, rebuilt from MANIFEST.json.

    With `check`, the COCO instances, grounding.json and the five VisDial JSONs this
    gives must equal the files in `resources` byte for byte; otherwise the files were
    written by another generator version (or edited) and InputFormatError names them."""
    resources = Path(resources)
    cfg = demo_config(resources)
    ids = draw_image_ids(cfg)
    images = {s.name: [generate_image(cfg, s, index, image_id) for index, image_id in enumerate(ids[s.name])]
              for s in IMAGE_SETS}
    if check:
        differ = []
        for name, data in _regenerated_files(images).items():
            path = resources / name
            if not path.is_file() or sha256_of(path) != hashlib.sha256(data).hexdigest():
                differ.append(name)
        if differ:
            raise InputFormatError(f"{resources}: {', '.join(differ)} differ from what this generator writes for "
                                   "the manifest's seed and sizes (a demo made by another version? remake it)")
    return images


def one_hot_attributes(attributes: dict, value: float = 1.0) -> list[tuple[int, float]]:
    """An object's attributes (name -> value, as `object_labels` gives) as the nonzero entries
    (index, value) of a one-hot layout of ONE_HOT_DIM numbers: the perfect features of the
    diagnostics in bench/ (docs/demo.md, "Training and the image")."""
    entries, offset = [], 0
    for name, values in ATTRIBUTE_VALUES.items():
        entries.append((offset + values.index(attributes[name]), value))
        offset += len(values)
    return entries


def object_labels(image: DemoImage) -> list[dict]:
    """Per object of the image: its box [x1, y1, x2, y2] and its four attributes."""
    scene = image.scene
    return [{"box": list(obj.box), **{a: scene.attribute(i, a) for a in ATTRIBUTES}}
            for i, obj in enumerate(scene.objects)]


