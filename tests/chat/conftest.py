"""A tiny pipeline folder for the chat tests: the tiny trained runs (helpers/tiny_runs.py) and a
disc run in results/runs/, their vocabulary and train tokens in results/text/, and train
features really extracted (random-weight detector, given boxes) from two images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.tiny_data import tiny_config
from helpers.tiny_runs import LG, LTMI, tiny_runs
from visdial_lg.chat.files import RunFiles
from visdial_lg.core.paths import DEMO_BOXES
from visdial_lg.core.config import FeaturesConfig
from visdial_lg.features.extract import extract_features
from visdial_lg.features.images import list_image_folders

DISC = "v1.0-ltmi-disc"
DETECTOR = {"depth": 50, "res5_halve": True, "min_size": 48, "max_size": 64, "post_nms_topk": 4,
            "min_boxes": 3, "max_boxes": 3, "top_attrs": 4, "batch_size": 2, "num_workers": 0,
            "precision": "fp32", "seed": 0, "given_boxes": "demo"}
IMAGE_IDS = (100, 101)  # the tiny dialogs' images
SIZE = (48, 64)  # h, w
BOXES = {"100": [[2, 3, 30, 40], [10, 10, 60, 47], [0, 0, 63, 47], [40, 5, 55, 20]],
         "101": [[5, 5, 20, 20], [20, 10, 50, 40]]}


def write_image(path: Path, seed: int) -> Path:
    y, x = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    base = np.random.default_rng(seed).integers(0, 255, 3)
    cv2.imwrite(str(path), np.stack([(base[c] + 5 * x + 3 * c * y) % 256 for c in range(3)], -1).astype(np.uint8))
    return path


@pytest.fixture(scope="session")
def pipeline(runs_base, tmp_path_factory) -> Path:
    from visdial_lg.training.loop import TrainInputs, train

    runs = tiny_runs(runs_base)
    folder = tmp_path_factory.mktemp("chat_pipeline")
    disc = train(DISC, TrainInputs(tokens=runs["tokens"], features=runs["features"], vocab=runs["vocab"]),
                 folder / "disc", tiny_config(epochs=1, batch_size=2), device="cpu")
    for run, checkpoint in ((LTMI, runs["checkpoints"][LTMI]), (LG, runs["checkpoints"][LG]), (DISC, disc)):
        files = RunFiles.of(run, folder)
        files.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, files.checkpoint)
    files = RunFiles.of(LTMI, folder)
    files.vocab.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(runs["vocab"], files.vocab)
    shutil.copy(runs["tokens"], files.train_tokens)
    images = folder / "resources" / "demo" / "images"
    images.mkdir(parents=True)
    for i, image_id in enumerate(IMAGE_IDS):
        write_image(images / f"COCO_train2014_{image_id:012d}.jpg", i)
    boxes = folder / DEMO_BOXES
    boxes.write_text(json.dumps(BOXES))
    extract_features(list_image_folders([images]), files.train_features, FeaturesConfig.from_dict(DETECTOR),
                     "random", device="cpu", boxes_path=boxes)
    return folder


@pytest.fixture(scope="session")
def demo_image(pipeline) -> Path:
    return pipeline / "resources" / "demo" / "images" / f"COCO_train2014_{IMAGE_IDS[0]:012d}.jpg"


@pytest.fixture(scope="session")
def disc_run() -> str:
    """A run of the pipeline without a generative decoder."""
    return DISC
