"""Feature files are checked when opened (import-features, train, evaluate, grounding):
the model's feature size, num_boxes <= K, boxes inside the image, finite values.
Each check is one line naming the file, the image id and the problem."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from helpers.ltmi_file import write_ltmi
from helpers.tiny_data import tiny_config, write_tiny_dataset
from visdial_lg.cli import main as cli
from visdial_lg.core.config import Config, as_dict
from visdial_lg.training.dataset import VisDialDataset
from visdial_lg.core.errors import InputFormatError
from visdial_lg.features.merge import import_ltmi

RUN = "v1.0-ltmi-disc"


@pytest.fixture()
def data(tmp_path):
    return write_tiny_dataset(tmp_path / "data", dialogs=4, boxes=6)  # image ids 100..103, 640x480


def _train_cli(data, out, config: Config | None = None) -> list[str]:
    args = ["train", "--run", RUN, "--tokens", str(data["tokens"]), "--features", str(data["features"]),
            "--vocab", str(data["vocab"]), "--out-dir", str(out), "--device", "cpu",
            "--config", json.dumps(as_dict(config or tiny_config(epochs=1)))]
    return args


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("visdial-lg: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_import_refuses_features_of_another_size(tmp_path, capsys):
    src = tmp_path / "trainval_resnet101_faster_rcnn_genome_100.h5"
    write_ltmi(src, features_shape=(4, 5, 1024))
    assert cli(["import-features", str(src), "--out", str(tmp_path / "imported.h5")]) == 2
    assert f"feature file {src} holds 1024-d features, the model takes 2048-d" in _one_line_error(capsys)
    assert not (tmp_path / "imported.h5").exists()


def test_import_checks_every_row(tmp_path):
    src = tmp_path / "val2018_resnet101_faster_rcnn_genome_100.h5"
    write_ltmi(src)
    with h5py.File(src, "r+") as f:
        f["features"][2, 1, 7] = np.nan
    with pytest.raises(InputFormatError, match=rf"feature file {src}: image id 7 box 1 has non-finite"):
        import_ltmi(src, tmp_path / "out.h5")
    with h5py.File(src, "r+") as f:
        f["features"][2, 1, 7] = 0
        f["boxes"][3, 0] = [10, 10, 700, 20]  # x2 beyond the 640-px width
    with pytest.raises(InputFormatError, match=r"image id 5 box 0 \[10.0, 10.0, 700.0, 20.0\] is not inside "
                                               r"its 640x480 image"):
        import_ltmi(src, tmp_path / "out2.h5")


def test_train_refuses_features_of_another_size(tmp_path, data, capsys):
    with h5py.File(data["features"], "r+") as f:
        feats = f["features"][:, :, :1024]
        del f["features"]
        f["features"] = feats
    assert cli(_train_cli(data, tmp_path / "run")) == 2
    assert f"feature file {data['features']} holds 1024-d features, the model takes 2048-d" in _one_line_error(capsys)


def test_num_boxes_beyond_k_is_refused(tmp_path, data, capsys):
    with h5py.File(data["features"], "r+") as f:
        f["num_boxes"][1] = 999
        bad_id = int(f["image_id"][1])
    assert cli(_train_cli(data, tmp_path / "run")) == 2
    assert f"image id {bad_id} has num_boxes 999 outside [0, 6]" in _one_line_error(capsys)


def test_box_outside_the_image_is_refused(data):
    with h5py.File(data["features"], "r+") as f:
        f["boxes"][0, 3] = [5, 470, 50, 600]  # y2 below the 480-px image
        bad_id = int(f["image_id"][0])
    with pytest.raises(InputFormatError, match=rf"image id {bad_id} box 3 .* is not inside its 640x480 image"):
        VisDialDataset(data["tokens"], data["features"])


def test_padding_boxes_are_not_checked(data):
    with h5py.File(data["features"], "r+") as f:
        f["num_boxes"][0] = 2
        f["boxes"][0, 4] = [-1, -1, 9999, 9999]  # beyond num_boxes: padding, never read
    assert len(VisDialDataset(data["tokens"], data["features"])) == 4


@pytest.mark.parametrize("workers", [0, 1])
def test_non_finite_features_name_the_image_in_one_line(tmp_path, data, capsys, workers):
    """Checked as each row is read; from a loader worker too, torch's wrapping is removed."""
    with h5py.File(data["features"], "r+") as f:
        f["features"][2, 4, 11] = np.inf
        bad_id = int(f["image_id"][2])
    assert cli(_train_cli(data, tmp_path / "run", tiny_config(epochs=1, num_workers=workers))) == 2
    line = _one_line_error(capsys)
    assert line == (f"visdial-lg: error: feature file {data['features']}: image id {bad_id} box 4 has non-finite "
                    f"feature values")


def test_evaluate_refuses_features_of_another_size(tmp_path, data, capsys):
    from visdial_lg.evaluation.evaluate import EvalInputs, evaluate
    from visdial_lg.training.loop import TrainInputs, train

    inputs = TrainInputs(tokens=data["tokens"], features=data["features"], vocab=data["vocab"])
    checkpoint = train(RUN, inputs, tmp_path / "run", tiny_config(epochs=1), device="cpu")
    other = tmp_path / "small.h5"
    with h5py.File(data["features"], "r") as src, h5py.File(other, "w") as dst:
        for name in src:
            dst[name] = src[name][:, :, :512] if name == "features" else src[name][()]
    with pytest.raises(InputFormatError, match=rf"feature file {other} holds 512-d features, the model takes 2048-d"):
        evaluate(EvalInputs(checkpoint=checkpoint, tokens=data["tokens"], features=other, split="val"),
                 tmp_path / "metrics.json")
