"""Goals 2-3 of the demo (docs/demo.md, "Training and the image"): what the demo's training
settings change. For each option (a `train:` override on top of configs/demo.yaml) one run is
trained on a finished demo's files with the project's training loop (`training.loop.train`, as
the train rule runs it), then evaluated on val (`evaluation.evaluate.evaluate`) with the four
groundings of Table 4 (its own, Mean, Random, the annotated regions) and once more with
another image's features: a copy of the val features file whose image ids are rotated by one
row, so every dialog reads the regions of a different image. For each evaluation: MRR, and
goal 2's share of rounds whose top answer has the ground truth's answer type.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_training_options.py --demo demo --work /tmp/trainopt \
        [--run v1.0-ltmi-gen] [--options old,paper40,constant40,adopted] > options.json

Options: old (the demo before: 3 epochs of 16 dialogs, the paper's decay every 2 epochs),
paper40 (40 epochs, decay every 2), constant40 (40 epochs, constant lr), constant40_lr3e-3,
batch4_40 (40 epochs of 4 dialogs, constant lr), batch16_15 (15 epochs of 16, constant lr),
constant8 and constant30 (8 or 30 epochs of 16, constant lr: for a larger demo), constant8_lr3e-3
(8 epochs of 16 at 3x the lr),
adopted (configs/demo.yaml as it is). A run's folder under --work is reused when its
checkpoint exists.

--perfect-features: a diagnostic, never a demo option (the demo's features come out of its
extractor). The runs train and evaluate on copies of the feature files in which each object's
region holds its attributes one-hot (shape, colour, size, position; 16 entries of value 5, the
other 2032 zero) and every other region is all zero: what the model can do with the best
features there are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from visdial_lg.core import paths  # noqa: E402
from visdial_lg.core.config import Config, load_config  # noqa: E402
from visdial_lg.core.runs import GROUNDING_VARIANTS, parse_run_id, seed_suffix  # noqa: E402
from visdial_lg.demo.evidence import answer_fit, val_rounds  # noqa: E402
from visdial_lg.demo.probe import box_iou  # noqa: E402
from visdial_lg.demo.regenerate import object_labels, one_hot_attributes, regenerate  # noqa: E402
from visdial_lg.evaluation.evaluate import EvalInputs, evaluate, ranks_file  # noqa: E402
from visdial_lg.training.loop import TrainInputs, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {
    "old": {"epochs": 3, "batch_size": 16, "decay_every": 2},
    "paper40": {"epochs": 40, "batch_size": 16, "decay_every": 2},
    "constant40": {"epochs": 40, "batch_size": 16, "decay_every": 40},
    "constant40_lr3e-3": {"epochs": 40, "batch_size": 16, "decay_every": 40, "lr": 3e-3},
    "batch4_40": {"epochs": 40, "batch_size": 4, "decay_every": 40},
    "batch16_15": {"epochs": 15, "batch_size": 16, "decay_every": 15},
    "constant8": {"epochs": 8, "batch_size": 16, "decay_every": 8},
    "constant30": {"epochs": 30, "batch_size": 16, "decay_every": 30},
    "constant8_lr3e-3": {"epochs": 8, "batch_size": 16, "decay_every": 8, "lr": 3e-3},
    "adopted": {},
}
OTHER_IMAGE = "other_image"  # the evaluation on another image's features
PERFECT_VALUE = 5.0


def edited_copy(features: Path, out: Path, edit) -> Path:
    """`out`: a copy of the features file with `edit(h5py file)` applied, made once (via a .tmp name)."""
    if not out.exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.copyfile(features, tmp)
        with h5py.File(tmp, "r+") as f:
            edit(f)
        tmp.rename(out)
    return out


def rotate_image_ids(f: h5py.File) -> None:
    """Row r takes the image id of row r+1 (the last, row 0's): every image reads another's regions."""
    f["image_id"][:] = np.roll(f["image_id"][:], -1)


def write_perfect_features(demo: Path):
    """An edit that puts each object's attributes one-hot on its region, all else zero (--perfect-features)."""
    def edit(f: h5py.File) -> None:
        objects = {im.image_id: object_labels(im) for images in regenerate(demo / "resources" / "demo").values()
                   for im in images}
        rows = np.zeros(f["features"].shape, np.float32)
        for row, image_id in enumerate(f["image_id"][:]):
            labels = objects[int(image_id)]
            overlaps = box_iou(np.array([o["box"] for o in labels]), f["boxes"][row, :int(f["num_boxes"][row])])
            for obj, overlap in zip(labels, overlaps):
                for index, value in one_hot_attributes(obj, PERFECT_VALUE):
                    rows[row, int(overlap.argmax()), index] = value
        f["features"][:] = rows
    return edit


def measure(demo: Path, work: Path, run: str, name: str, train_overrides: dict, seed: int,
            perfect: bool = False) -> dict:
    version = parse_run_id(run).version
    overrides = {"train": dict(train_overrides)}
    run += seed_suffix(seed)  # the training seed is part of the run id
    config = Config.from_dict(load_config(REPO / "config.yaml", REPO / "configs/demo.yaml", overrides=overrides))
    out = work / name / run
    checkpoint = out / "checkpoint.pt"

    def features_of(split: str) -> Path:
        path = demo / paths.features_path(version, split)
        return edited_copy(path, work / f"perfect_{path.name}", write_perfect_features(demo)) if perfect else path

    train_cpu_seconds = None  # None: the run's checkpoint was already there
    if not checkpoint.exists():
        inputs = TrainInputs(tokens=str(demo / paths.tokens_path(version, "train")),
                             features=str(features_of("train")),
                             vocab=str(demo / paths.VOCAB.format(version=version)), glove=None)
        start = time.process_time()
        train(run, inputs, out, config, device="cpu")
        train_cpu_seconds = round(time.process_time() - start, 1)
    result = {"option": name, "train": overrides["train"], "seed": seed, "train_cpu_seconds": train_cpu_seconds}
    val_features = features_of("val")
    rounds = val_rounds(demo / "resources" / "demo", version)
    for grounding in (*GROUNDING_VARIANTS, OTHER_IMAGE):
        features = (edited_copy(val_features, work / f"other_image_{val_features.name}", rotate_image_ids)
                    if grounding == OTHER_IMAGE else val_features)
        metrics_path = out / f"val_{grounding}.json"
        metrics = evaluate(EvalInputs(
            checkpoint=checkpoint, tokens=demo / paths.tokens_path(version, "val"), features=features, split="val",
            grounding="prior" if grounding == OTHER_IMAGE else grounding,
            oracle=demo / "resources" / "demo" / "grounding.json" if grounding == "oracle" else None,
            test_answers=None, submission=None), metrics_path, batch_size=64)
        with np.load(ranks_file(metrics_path)) as ranks:
            result[grounding] = {
                decoder: {"mrr": round(100 * m["mrr"], 2),
                          "answer_type": round(100 * answer_fit(ranks[decoder], ranks["image_id"], rounds)["type_match"], 1)}
                for decoder, m in metrics["decoders"].items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", type=Path, help="a finished demo working directory")
    parser.add_argument("--work", required=True, type=Path, help="where the runs and the rotated features go")
    parser.add_argument("--run", default="v1.0-ltmi-gen")
    parser.add_argument("--options", default="old,paper40,constant40,adopted")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (the run id's @sN; default 0)")
    parser.add_argument("--perfect-features", action="store_true",
                        help="diagnostic: train and evaluate on one-hot attribute features (see above)")
    args = parser.parse_args()
    names = args.options.split(",")
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        parser.error(f"unknown option(s) {', '.join(unknown)} (one of {', '.join(OPTIONS)})")
    args.work.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # training's progress lines: stdout is the JSON
        results = [measure(args.demo, args.work, args.run, n, OPTIONS[n], args.seed, args.perfect_features)
                   for n in names]
    print(json.dumps({"demo": str(args.demo), "run": args.run, "perfect_features": args.perfect_features,
                      "options": results}, indent=1))


if __name__ == "__main__":
    main()
