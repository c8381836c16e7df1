"""`python -m visdial_lg.demo.rehearsal --out DIR`: the inputs of a rehearsal of the real run.

The rehearsal runs the real `config.yaml`, unchanged, on a tiny synthetic dataset
given through its `local:` paths, on CPU (`make rehearsal`, docs/rehearsal.md). It
goes through the real config's code paths that the demo skips: the detector weights
file (a random-weights pickle in the public AIR layout), GloVe initialisation (a small
GloVe text file), regions chosen by the detector (no given boxes), the paper's sizes
(R101, 600/1000, 300 proposals, 100 regions, hidden 512, 2-layer LSTMs), the
`visdial` dataset branch of every rule.

DIR receives, in the file names and layout of the real downloads once extracted
(`REAL_INPUTS` in workflow/rules/common.smk):

    visdial_1.0_{train,val,test}.json, visdial_0.9_{train,val}.json
    visdial_1.0_val_dense_annotations.json, visdial_1.0_train_dense_sample.json
    train2014/, val2014/, VisualDialog_val2018/, VisualDialog_test2018/   (JPEGs)
    annotations/instances_{train,val}2014.json                            (COCO instances)
    glove.840B.300d.txt                                                   (word + 300 floats a line)
    faster_rcnn_from_caffe_attr_original.pkl                              (random R101 weights)
    rehearsal.yaml      the overlay: merge it on top of config.yaml
    MANIFEST.json       parameters and sha256 of every file, written last

Everything is a pure function of the sizes and the seed: the same arguments give the
same bytes (given the same torch, numpy, Pillow and libjpeg).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from ..core.config import DemoConfig
from ..core.errors import InputFormatError
from ..core.files import sha256_of, write_text_atomic
from ..text.vocab import GLOVE_DIM

MANIFEST = "MANIFEST.json"
OVERLAY = "rehearsal.yaml"
GLOVE_FILE = "glove.840B.300d.txt"  # the member of glove.840B.300d.zip
WEIGHTS_FILE = "faster_rcnn_from_caffe_attr_original.pkl"  # the file name of sources.detector_weights' URL
DETECTOR_DEPTH = 101  # the weights' shapes depend only on the depth (config.yaml: 101)
EPOCHS = 1

# make_demo's path -> the path in the real downloads (archive members, see REAL_INPUTS).
DEMO_TO_REAL = {
    "visdial_1.0_train.json": "visdial_1.0_train.json",
    "visdial_1.0_val.json": "visdial_1.0_val.json",
    "visdial_1.0_test.json": "visdial_1.0_test.json",
    "visdial_1.0_val_dense_annotations.json": "visdial_1.0_val_dense_annotations.json",
    "visdial_1.0_train_dense_sample.json": "visdial_1.0_train_dense_sample.json",
    "visdial_0.9_train.json": "visdial_0.9_train.json",
    "visdial_0.9_val.json": "visdial_0.9_val.json",
    "images/train2014": "train2014",
    "images/val2014": "val2014",
    "images/VisualDialog_val2018": "VisualDialog_val2018",
    "images/VisualDialog_test2018": "VisualDialog_test2018",
    "annotations/instances_train2014.json": "annotations/instances_train2014.json",
    "annotations/instances_val2014.json": "annotations/instances_val2014.json",
}
# Input name (config `local:` key) -> path in DIR.
LOCAL_INPUTS = {
    "visdial_1.0_train": "visdial_1.0_train.json",
    "visdial_1.0_val": "visdial_1.0_val.json",
    "visdial_1.0_test": "visdial_1.0_test.json",
    "visdial_1.0_val_dense": "visdial_1.0_val_dense_annotations.json",
    "visdial_1.0_train_dense": "visdial_1.0_train_dense_sample.json",
    "visdial_0.9_train": "visdial_0.9_train.json",
    "visdial_0.9_val": "visdial_0.9_val.json",
    "images_train2014": "train2014",
    "images_val2014": "val2014",
    "images_val2018": "VisualDialog_val2018",
    "images_test2018": "VisualDialog_test2018",
    "coco_instances_train2014": "annotations/instances_train2014.json",
    "coco_instances_val2014": "annotations/instances_val2014.json",
    "glove": GLOVE_FILE,
    "detector_weights": WEIGHTS_FILE,
}
DIALOG_FILES = [p for p in LOCAL_INPUTS.values() if p.startswith("visdial_") and "dense" not in p]
# Words the dataset never uses, as any GloVe file has many; the first has a space, as some
# 840B entries do, and starts with a dataset word (the reader must not take it for "red").
EXTRA_WORDS = ("red herring", "zebra", "umbrella", "giraffe", "skateboard", "kitchen")
# The real config's CPU-only override besides the epochs: extraction batches of 16 images
# (config.yaml) hold ~1.5 GB of fp32 region-head activations per image on CPU; batching
# changes the numbers only within float tolerance (extract.RUNTIME_KEYS).
CPU_FEATURE_BATCH = 2


@dataclass(frozen=True)
class Sizes:
    """Images per image set and their canvas (COCO-like 640x480: resized to 600x800 as real images)."""

    images_train2014: int = 6
    images_val2014: int = 4
    images_val2018: int = 4
    images_test2018: int = 4
    image_width: int = 640
    image_height: int = 480
    seed: int = 0


# ----------------------------------------------------------------------------- the parts


def write_dataset(out: Path, sizes: Sizes) -> None:
    """The demo generator's dialogs, images and COCO instances, moved into the real layout."""
    from .make import make_demo

    staging = out / ".demo"
    if staging.exists():
        shutil.rmtree(staging)
    cfg = DemoConfig.from_dict({**asdict(sizes),
                                "train_dense": min(4, sizes.images_train2014 + sizes.images_val2014)}, "demo")
    make_demo(cfg, staging)
    for demo_path, real_path in DEMO_TO_REAL.items():
        target = out / real_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staging / demo_path, target)
    shutil.rmtree(staging)  # the demo-only files: grounding, region boxes, held-back answers, its manifest


def dataset_words(out: Path) -> list[str]:
    """Every token of the captions, questions (with the "?" the vocabulary adds) and answers
    (options included) of all dialog files, by the pipeline's tokenizer; sorted."""
    from ..text.tokenizer import tokenize_many

    strings: list[str] = []
    for name in DIALOG_FILES:
        data = json.loads((out / name).read_text())["data"]
        strings += [q + "?" for q in data["questions"]] + data["answers"] + [d["caption"] for d in data["dialogs"]]
    return sorted({token for tokens in tokenize_many(strings) for token in tokens})


def glove_vector(word: str, seed: int, dim: int = GLOVE_DIM) -> np.ndarray:
    """A word's vector: its own stream (seed, sha256 of the word), so words don't shift each other."""
    key = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key]).normal(0.0, 0.4, dim)  # [dim]


def write_glove(path: Path, words: list[str], seed: int, dim: int = GLOVE_DIM) -> None:
    """GloVe 840B's text format: `word v1 ... v300`, space separated, one word a line."""
    lines = [" ".join([word, *(f"{v:.5f}" for v in glove_vector(word, seed, dim))])
             for word in [EXTRA_WORDS[0], *words, *EXTRA_WORDS[1:]]]
    write_text_atomic(path, "\n".join(lines) + "\n")


def write_detector_weights(path: Path, seed: int) -> None:
    """Random R101 BUTD weights (features.weights.init_random_weights, `seed`) as the public AIR
    pickle: `{"model": {detectron2 name: float32 array}}`, read by features.weights as the real file."""
    from ..core.config import FeaturesConfig
    from ..features.model import build_detector
    from ..features.weights import save_public_pickle

    detector = build_detector(FeaturesConfig.from_dict({"depth": DETECTOR_DEPTH}), "random", seed=seed)
    tmp = path.with_name(f".{path.name}.tmp")
    save_public_pickle(detector, tmp)
    os.replace(tmp, path)


def overlay(out: Path) -> dict:
    """The config merged on top of config.yaml: local copies of every input, 1 epoch, and
    CPU-sized extraction batches. Paths are absolute (Snakemake runs in its --directory)."""
    root = out.resolve()
    return {
        "local": {name: str(root / relative) for name, relative in LOCAL_INPUTS.items()},
        "train": {"epochs": EPOCHS},
        "features": {"batch_size": CPU_FEATURE_BATCH},
    }


def _files(out: Path) -> dict[str, dict]:
    """relative path -> sha256 and bytes, for every input file under `out`."""
    listed = {}
    for relative in sorted(LOCAL_INPUTS.values()):
        path = out / relative
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                listed[file.relative_to(out).as_posix()] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}
    return listed


# ----------------------------------------------------------------------------- all of it


def write_rehearsal(out: str | Path, sizes: Sizes = Sizes()) -> Path:
    """Write the rehearsal's inputs and overlay into `out`; returns the overlay's path.
    A folder that already holds a complete rehearsal of the same sizes is left as it is."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFormatError(f"rehearsal output folder {out} exists and is not a folder")
    manifest_path, overlay_path = out / MANIFEST, out / OVERLAY
    parameters = asdict(sizes)
    if manifest_path.is_file() and overlay_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
        if manifest.get("parameters") == parameters and all(
                (out / name).is_file() and (out / name).stat().st_size == entry["bytes"]
                for name, entry in manifest.get("files", {}).items()):
            print(f"rehearsal: {out} already holds these inputs", file=sys.stderr)
            write_text_atomic(overlay_path, _overlay_text(out))  # the folder may have moved
            return overlay_path
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # incomplete until written again, last

    write_dataset(out, sizes)
    write_glove(out / GLOVE_FILE, dataset_words(out), sizes.seed)
    write_detector_weights(out / WEIGHTS_FILE, sizes.seed)
    write_text_atomic(overlay_path, _overlay_text(out))
    manifest = {"generator": "visdial_lg.demo.rehearsal", "parameters": parameters, "files": _files(out)}
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1))
    return overlay_path


def _overlay_text(out: Path) -> str:
    header = ("# The rehearsal's overlay (python -m visdial_lg.demo.rehearsal): merge it on top of the\n"
              "# real config, `--configfile config.yaml <this file>` (docs/rehearsal.md).\n")
    return header + yaml.safe_dump(overlay(out), sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    defaults = Sizes()
    p = argparse.ArgumentParser(prog="python -m visdial_lg.demo.rehearsal", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for the inputs and the overlay config")
    for field, value in asdict(defaults).items():
        p.add_argument(f"--{field.replace('_', '-')}", type=int, default=value, help=f"default {value}")
    args = p.parse_args(argv)
    sizes = Sizes(**{field: getattr(args, field) for field in asdict(defaults)})
    try:
        path = write_rehearsal(args.out, sizes)
    except InputFormatError as e:
        print(f"rehearsal: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
