"""An image's regions are those the run's train features hold for it (same detector, boxes and
storage), and every way they cannot be had is one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from helpers.tiny_runs import LTMI
from visdial_lg.chat.files import RunFiles
from visdial_lg.core.paths import DEMO_BOXES
from visdial_lg.chat.regions import Extraction, RegionExtractor
from visdial_lg.core.errors import InputFormatError, VisdialLGError
from visdial_lg.features.images import image_id_from_name
from visdial_lg.features.reader import FeatureReader


def _copy(pipeline, tmp_path):
    """A copy of the pipeline folder to spoil."""
    folder = tmp_path / "pipeline"
    shutil.copytree(pipeline, folder, ignore=shutil.ignore_patterns("disc"))
    return RunFiles.of(LTMI, folder)


def test_regions_are_the_train_features_row(pipeline, demo_image):
    files = RunFiles.of(LTMI, pipeline)
    regions = RegionExtractor(Extraction.of_run(files), torch.device("cpu")).regions(demo_image)
    row = FeatureReader(files.train_features).read(image_id_from_name(demo_image))
    assert (regions.num_boxes, regions.width, regions.height) == (row["num_boxes"], row["image_w"], row["image_h"])
    k = regions.num_boxes
    np.testing.assert_allclose(regions.features[:k], row["features"][:k], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(regions.boxes[:k], row["boxes"][:k])


def test_an_image_without_given_boxes_is_refused_under_random_weights(pipeline, demo_image, tmp_path):
    extractor = RegionExtractor(Extraction.of_run(RunFiles.of(LTMI, pipeline)), torch.device("cpu"))
    other = tmp_path / "COCO_train2014_000000000777.jpg"
    shutil.copy(demo_image, other)
    with pytest.raises(InputFormatError, match=r"has no image id 777\) and the run's detector has random weights"):
        extractor.regions(other)
    photo = tmp_path / "photo.jpg"
    shutil.copy(demo_image, photo)
    with pytest.raises(InputFormatError, match="photo.jpg has no given boxes .its name ends in no image id"):
        extractor.regions(photo)


def test_other_boxes_than_the_extractions_are_refused(pipeline, tmp_path):
    files = _copy(pipeline, tmp_path)
    boxes = files.directory / DEMO_BOXES
    boxes.write_text(json.dumps({"100": [[0, 0, 5, 5]]}))
    with pytest.raises(InputFormatError, match="is not the one .* was extracted with"):
        Extraction.of_run(files)
    boxes.unlink()
    with pytest.raises(InputFormatError, match="given boxes file .*region_boxes.json .*not found"):
        Extraction.of_run(files)


def test_features_without_their_extraction_record_are_refused(pipeline, tmp_path):
    files = _copy(pipeline, tmp_path)
    with h5py.File(files.train_features, "a") as f:
        del f.attrs["extractor_config"]
    with pytest.raises(InputFormatError, match="records no extractor_config"):
        Extraction.of_run(files)
    files.train_features.unlink()
    with pytest.raises(InputFormatError, match="trainval2014.h5 .the train features of run v1.0-ltmi-gen. does not"):
        Extraction.of_run(files)


def test_trained_weights_must_be_given_and_be_the_recorded_file(pipeline, tmp_path):
    files = _copy(pipeline, tmp_path)
    with h5py.File(files.train_features, "a") as f:
        f.attrs["weights"], f.attrs["weights_sha256"] = "butd.pkl", "ab" * 32
    extraction = Extraction.of_run(files)
    with pytest.raises(VisdialLGError, match="with the detector weights butd.pkl .* give that file with --weights"):
        extraction.detector(None)
    (tmp_path / "butd.pkl").write_bytes(b"not these weights")
    with pytest.raises(InputFormatError, match="butd.pkl has sha256 .*, expected abab"):
        extraction.detector(tmp_path / "butd.pkl")


def test_weights_and_boxes_settings_name_files_of_the_pipeline_folder(tmp_path):
    files = RunFiles.of(LTMI, tmp_path)
    assert files.weights_file("random") is None and files.weights_file("download") is None
    assert files.weights_file("weights/butd.pkl") == tmp_path / "weights/butd.pkl"
    assert files.given_boxes(None) is None and files.given_boxes("demo") == tmp_path / DEMO_BOXES
    assert files.given_boxes("/data/boxes.json") == Path("/data/boxes.json")  # an absolute path stays
