"""Two tiny trained runs shared by the evaluation, grounding, table, human-evaluation and
figure tests: LTMI (gen) and LTMI-LG (multi), trained once per session (one optimiser
step each), with val (dense) and test versions of their tokens."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from helpers.synthetic import O
from helpers.tiny_data import tiny_config, write_tiny_dataset
from visdial_lg.evaluation.evaluate import EvalInputs, evaluate

LTMI, LG = "v1.0-ltmi-gen", "v1.0-lg_attn_kl-multi"
DIALOGS = 2
TEST_ROUNDS = [3, 10]  # test dialogs end at varied rounds


def _with_dense(src: Path, dst: Path) -> Path:
    """The tiny train tokens as a val split with dense annotations (round 2 of each dialog)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        f.attrs["split"] = "val"
        d = f["image_id"].shape[0]
        f["dense_round"] = np.full(d, 2, np.int16)
        relevance = np.zeros((d, O), np.float32)
        relevance[:, :10] = np.linspace(1.0, 0.1, 10)
        f["gt_relevance"] = relevance
    return dst


def _as_test(src: Path, dst: Path) -> tuple[Path, list[dict]]:
    """The tiny tokens as a test split (VisDial test layout: answers before the last round,
    options and no answer on the last) and its held-back answers."""
    shutil.copy(src, dst)
    held_back = []
    with h5py.File(dst, "a") as f:
        f.attrs["split"] = "test"
        answer, options, gt = f["answer"][:], f["answer_options"][:], f["gt_index"][:]
        question = f["question"][:]
        for d, rounds in enumerate(TEST_ROUNDS):
            last = rounds - 1
            held_back.append({"image_id": int(f["image_id"][d]), "round_id": rounds, "gt_index": int(gt[d, last]),
                              "gt_relevance": [1.0 if i == gt[d, last] else (0.5 if i < 3 else 0.0)
                                               for i in range(O)]})
            question[d, rounds:] = -1
            answer[d, last:] = -1
            options[d, :last] = -1
            options[d, rounds:] = -1
        f["num_rounds"][:] = TEST_ROUNDS
        f["question"][:], f["answer"][:], f["answer_options"][:] = question, answer, options
        f["gt_index"][:] = -1
    return dst, held_back


@functools.lru_cache(maxsize=None)
def tiny_runs(base: Path) -> dict:
    """Train LTMI (gen) and LTMI-LG (multi) for one step on two dialogs; returns their
    checkpoints and the val/test tokens, features and vocabulary."""
    from visdial_lg.training.loop import TrainInputs, train

    paths = write_tiny_dataset(base / "data", dialogs=DIALOGS)
    inputs = TrainInputs(tokens=paths["tokens"], features=paths["features"], vocab=paths["vocab"])
    config = tiny_config(epochs=1, batch_size=2)
    out = dict(paths, val=_with_dense(paths["tokens"], base / "data" / "val.h5"))
    out["test"], held_back = _as_test(paths["tokens"], base / "data" / "test.h5")
    out["test_answers"] = base / "data" / "test_answers.json"
    out["test_answers"].write_text(json.dumps(held_back))
    out["checkpoints"] = {run: train(run, inputs, base / run, config, device="cpu") for run in (LTMI, LG)}
    return out


@functools.lru_cache(maxsize=None)
def evaluated(base: Path, run: str, split: str = "val", grounding: str = "prior", oracle: Path | None = None) -> dict:
    """Evaluate once per session; returns the metrics JSON as written."""
    runs = tiny_runs(base)
    out = base / run / f"{split}_{grounding}.json"
    test = split == "test"
    inputs = EvalInputs(checkpoint=runs["checkpoints"][run], tokens=runs[split], features=runs["features"],
                        split=split, grounding=grounding, oracle=oracle,
                        test_answers=runs["test_answers"] if test else None,
                        submission=base / "submissions" / f"{run}_test.json" if test else None)
    evaluate(inputs, out, batch_size=2)
    return json.loads(out.read_text())
