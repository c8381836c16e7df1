"""Extraction end to end with the real detector (random weights, a tiny config).

The detector is built once per module and shared (wrapped to count the images it
sees). Three images are extracted once in one padded batch and once as three
one-image shards; every other test reuses those two results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from visdial_lg.cli import main as cli
from visdial_lg.core.config import FeaturesConfig
from visdial_lg.core.errors import InputFormatError
from visdial_lg.features.extract import extract_features
from visdial_lg.features.images import images_of_dialogs, list_image_folders
from visdial_lg.features.merge import import_ltmi, merge_shards
from visdial_lg.features.model import build_detector
from visdial_lg.features.reader import FeatureReader
from visdial_lg.features.store import PartialFeatureFile, partial_path

TINY = {"depth": 50, "res5_halve": True, "min_size": 48, "max_size": 64, "post_nms_topk": 4,
        "min_boxes": 3, "max_boxes": 3, "top_attrs": 4, "batch_size": 4, "num_workers": 0,
        "precision": "fp32", "seed": 0}
SIZES = {3: (36, 48), 11: (48, 36), 42: (30, 56)}  # image id -> (h, w): three resized shapes
INT_KEYS = ("image_id", "image_w", "image_h", "num_boxes", "cls_indices", "top_attrs")


class CountingDetector(torch.nn.Module):
    """The real detector, counting the images it is asked about."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.images = inner, 0

    def forward(self, images, *args, **kwargs):
        self.images += images.shape[0]
        return self.inner(images, *args, **kwargs)


def features_section(**overrides) -> FeaturesConfig:
    return FeaturesConfig.from_dict({**TINY, **overrides})


def write_image(path: Path, h: int, w: int, seed: int) -> None:
    y, x = np.mgrid[0:h, 0:w]
    base = np.random.default_rng(seed).integers(0, 255, 3)
    cv2.imwrite(str(path), np.stack([(base[c] + 5 * x + 3 * c * y) % 256 for c in range(3)], -1).astype(np.uint8))


def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as f:
        return {name: f[name][()] for name in f}


def assert_same_rows(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        if name in INT_KEYS:
            np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
        else:
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=2e-3, err_msg=name)


@pytest.fixture(scope="module")
def detector():
    return CountingDetector(build_detector(features_section(), "random", seed=0))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images") / "val2014"
    folder.mkdir()
    for image_id, (h, w) in SIZES.items():
        write_image(folder / f"COCO_val2014_{image_id:012d}.jpg", h, w, image_id)
    return folder


@pytest.fixture(scope="module")
def batched(image_dir, detector, tmp_path_factory) -> Path:
    """All three images in one padded batch."""
    out = tmp_path_factory.mktemp("batched") / "features.h5"
    extract_features(list_image_folders([image_dir]), out, features_section(), "random", device="cpu",
                     detector=detector)
    return out


@pytest.fixture(scope="module")
def shards(image_dir, detector, tmp_path_factory) -> list[Path]:
    """The same images as three shards of one image each: every image computed alone."""
    folder, entries = tmp_path_factory.mktemp("shards"), list_image_folders([image_dir])
    paths = [folder / f"shard-{i}-of-3.h5" for i in range(3)]
    for i, path in enumerate(paths):
        extract_features(entries, path, features_section(), "random", device="cpu", shard=(i, 3), detector=detector)
    return paths


def concatenated(paths: list[Path]) -> dict[str, np.ndarray]:
    parts = [read_all(p) for p in paths]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def test_feature_file_layout_values_and_attributes(batched):
    rows = read_all(batched)
    assert rows["image_id"].tolist() == sorted(SIZES)
    assert [(h, w) for h, w in zip(rows["image_h"], rows["image_w"])] == [SIZES[i] for i in sorted(SIZES)]
    assert rows["num_boxes"].tolist() == [3] * 3 and rows["features"].shape == (3, 3, 2048)
    assert rows["top_attrs"].shape == rows["top_attrs_scores"].shape == (3, 3, 4)
    boxes, w, h = rows["boxes"], rows["image_w"][:, None], rows["image_h"][:, None]
    assert (boxes[..., 0] >= 0).all() and (boxes[..., 2] <= w - 1).all() and (boxes[..., 3] <= h - 1).all()
    assert ((rows["cls_indices"] >= 1) & (rows["cls_indices"] <= 1600)).all()  # LTMI: 0 = background
    weak = rows["top_attrs_scores"] < 0.1
    assert (rows["top_attrs"][weak] == 0).all() and (rows["top_attrs"][~weak] >= 1).all()
    with h5py.File(batched) as f:
        assert f["features"].chunks == (1, 3, 2048) and f["features"].dtype == np.float32
        config = json.loads(f.attrs["extractor_config"])
        assert config["min_size"] == 48 and config["precision"] == "fp32" and "batch_size" not in config
        assert f.attrs["weights_sha256"] == "random (seed 0)"
        assert (f.attrs["shard_index"], f.attrs["shard_count"]) == ("0", "1")
        assert json.loads(f.attrs["skipped_images"]) == []
    assert not partial_path(batched).exists()


def test_batched_extraction_equals_one_image_at_a_time(batched, shards):
    assert [read_all(p)["image_id"].tolist() for p in shards] == [[3], [11], [42]]
    assert_same_rows(concatenated(shards), read_all(batched))


@pytest.mark.parametrize("virtual", [False, True])
def test_shards_merge_into_exactly_their_concatenation(shards, tmp_path, monkeypatch, virtual):
    merged = tmp_path / "out" / "merged.h5"
    merge_shards(shards[::-1], merged, virtual=virtual)  # any argument order: shards carry their index
    rows, expected = read_all(merged), concatenated(shards)
    for name in expected:
        np.testing.assert_array_equal(rows[name], expected[name], err_msg=name)
    with h5py.File(merged) as f:
        assert f["features"].is_virtual == virtual
        assert json.loads(f.attrs["merged_from"]) == [p.name for p in shards]
        with h5py.File(shards[0]) as s:
            assert f.attrs["extractor_config"] == s.attrs["extractor_config"]
    monkeypatch.chdir("/")  # virtual sources resolve relative to the merged file, not the cwd
    np.testing.assert_array_equal(FeatureReader(merged).read(42)["features"], expected["features"][2])
    with pytest.raises(InputFormatError, match=r"shard 1 of 3 is missing"):
        merge_shards([shards[0], shards[2]], tmp_path / "out" / "bad.h5")


@pytest.mark.slow  # a real child process: torch import, detector build, one image, SIGKILL
def test_killed_extraction_resumes_without_recomputing(image_dir, detector, shards, tmp_path):
    out = tmp_path / "features.h5"
    config = json.dumps({"features": {**TINY, "batch_size": 1}})
    child = subprocess.Popen([sys.executable, "-m", "visdial_lg", "extract", "--images", str(image_dir),
                              "--weights", "random", "--out", str(out), "--device", "cpu", "--config", config],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, done = time.monotonic() + 240, 0
    while done == 0 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with h5py.File(partial_path(out), "r", locking=False) as f:
                done = int(f["done"][()].sum())
        except (OSError, KeyError):
            pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert done >= 1 and child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    assert not out.exists()
    with h5py.File(partial_path(out)) as f:
        finished = int(f["done"][()].sum())
    assert 1 <= finished < 3

    before = detector.images
    extract_features(list_image_folders([image_dir]), out, features_section(batch_size=1), "random",
                     device="cpu", detector=detector)
    assert detector.images - before == 3 - finished  # finished rows were not recomputed
    assert_same_rows(read_all(out), concatenated(shards))
    assert not partial_path(out).exists()


def test_bad_images_fail_naming_the_file_then_skip_into_a_manifest(detector, tmp_path):
    from helpers.images import BAD_KINDS, bad_image_bytes

    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "COCO_val2014_000000000001.jpg", 40, 40, 1)
    bad_paths = {}
    for image_id, kind in enumerate(BAD_KINDS, start=2):
        bad_paths[image_id] = folder / f"COCO_val2014_{image_id:012d}.jpg"
        bad_paths[image_id].write_bytes(bad_image_bytes(kind))
    out, entries = tmp_path / "features.h5", list_image_folders([folder])

    with pytest.raises(InputFormatError) as info:
        extract_features(entries, out, features_section(batch_size=1), "random", device="cpu", detector=detector)
    message = str(info.value)
    assert message.startswith(f"image {bad_paths[2]} is an empty file") and "\n" not in message
    assert "on_bad_image: skip" in message
    assert not out.exists() and not (tmp_path / "features.h5.skipped.json").exists()
    with h5py.File(partial_path(out)) as f:
        assert f["done"][()].tolist() == [1] + [0] * len(BAD_KINDS)  # the good image is kept

    before = detector.images
    extract_features(entries, out, features_section(batch_size=1, on_bad_image="skip"), "random",
                     device="cpu", detector=detector)
    assert detector.images == before  # the good image was done before the failure
    assert read_all(out)["image_id"].tolist() == [1]
    manifest = json.loads((tmp_path / "features.h5.skipped.json").read_text())
    assert manifest["features"] == "features.h5"
    assert [e["image_id"] for e in manifest["skipped"]] == list(bad_paths)
    assert all(e["path"] == str(bad_paths[e["image_id"]]) and str(e["path"]) in e["reason"]
               for e in manifest["skipped"])
    with h5py.File(out) as f:
        assert json.loads(f.attrs["skipped_images"]) == manifest["skipped"]
    with pytest.raises(InputFormatError, match=rf"image id 5 has no features in {out}"):
        FeatureReader(out).read(5)


class Killed(Exception):
    """Stands for a SIGKILL at the point where it is raised."""


def test_changed_settings_keep_the_unfinished_file_aside_and_start_over(image_dir, detector, tmp_path, capsys):
    out, entries = tmp_path / "features.h5", list_image_folders([image_dir])

    def kill(rows_done):
        raise Killed

    with pytest.raises(Killed):  # one image finished, then killed
        extract_features(entries, out, features_section(batch_size=1), "random", device="cpu", detector=detector,
                         after_batch=kill)
    capsys.readouterr()
    before = detector.images
    extract_features(entries, out, features_section(min_size=50), "random", device="cpu", detector=detector)
    assert detector.images - before == 3  # started over: nothing of the other settings mixed in
    err = [line for line in capsys.readouterr().err.splitlines() if "other inputs" in line]
    stale = [p for p in tmp_path.iterdir() if p.name.startswith("features.h5.partial.stale-")]
    assert len(err) == 1 and len(stale) == 1
    assert "(extractor_config.min_size: 48 → 50)" in err[0] and f"kept as {stale[0].name}" in err[0]
    with h5py.File(stale[0]) as f:
        assert f["done"][()].tolist() == [1, 0, 0]
    assert read_all(out)["image_id"].tolist() == sorted(SIZES)


def test_refused_weights_leave_no_partial_file_in_the_way(image_dir, detector, tmp_path):
    out, entries = tmp_path / "features.h5", list_image_folders([image_dir])
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(InputFormatError, match=rf"cannot read weights file {bad}"):
        extract_features(entries, out, features_section(), str(bad), device="cpu")
    assert not partial_path(out).exists()
    extract_features(entries, out, features_section(), "random", device="cpu", detector=detector)
    assert read_all(out)["image_id"].tolist() == sorted(SIZES)


def test_kill_before_the_final_rename_keeps_every_computed_row(image_dir, detector, batched, tmp_path, monkeypatch):
    out, entries = tmp_path / "features.h5", list_image_folders([image_dir])
    real_replace = os.replace

    def killed_before_rename(src, dst):
        if Path(dst) == out:
            raise Killed
        return real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed_before_rename)
        with pytest.raises(Killed):
            extract_features(entries, out, features_section(), "random", device="cpu", detector=detector)
    assert not out.exists() and partial_path(out).exists()
    before = detector.images
    summary = extract_features(entries, out, features_section(), "random", device="cpu", detector=detector)
    assert detector.images == before and summary["computed"] == 0
    assert_same_rows(read_all(out), read_all(batched))
    assert not partial_path(out).exists()


def test_given_boxes_of_the_dialogs_images(image_dir, detector, tmp_path):
    dialogs = tmp_path / "visdial_1.0_val.json"
    dialogs.write_text(json.dumps({"data": {"dialogs": [{"image_id": 42}, {"image_id": 3}]}}))
    boxes = tmp_path / "boxes.json"
    given = {"3": [[0, 0, 20, 30], [10, 5, 47, 35]], "42": [[5, 5, 39, 29]]}
    boxes.write_text(json.dumps(given))
    out = tmp_path / "given.h5"
    entries = images_of_dialogs(dialogs, [image_dir])
    extract_features(entries, out, features_section(storage_dtype="float16"), "random", device="cpu",
                     boxes_path=boxes, detector=detector)
    rows = read_all(out)
    assert rows["image_id"].tolist() == [3, 42] and rows["num_boxes"].tolist() == [2, 1]
    assert rows["features"].dtype == np.float16 and rows["features"].shape == (2, 3, 2048)
    np.testing.assert_array_equal(rows["proposal_boxes"][0, :2], given["3"])
    np.testing.assert_array_equal(rows["proposal_boxes"][1, :1], given["42"])
    assert (rows["features"][1, 1:] == 0).all()  # padding rows stay zero

    boxes.write_text(json.dumps({"3": given["3"]}))
    with pytest.raises(InputFormatError, match=rf"boxes file {boxes} has no boxes for image id 42"):
        extract_features(entries, tmp_path / "x.h5", features_section(), "random", device="cpu",
                         boxes_path=boxes, detector=detector)


def test_cli_merge_and_import_commands(batched, tmp_path, capsys):
    from helpers.ltmi_file import write_ltmi

    src = tmp_path / "trainval_resnet101_faster_rcnn_genome_100.h5"
    write_ltmi(src)
    assert cli(["import-features", str(src), "--out", str(tmp_path / "imported.h5")]) == 0
    assert FeatureReader(tmp_path / "imported.h5").image_ids == [9, 3, 7, 5]
    assert cli(["merge-features", str(batched), "--out", str(tmp_path / "m.h5")]) == 0  # a 0/1 "shard"
    assert_same_rows(read_all(tmp_path / "m.h5"), read_all(batched))
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    assert cli(["merge-features", str(tmp_path / "broken.h5"), "--out", str(tmp_path / "n.h5")]) == 2
    assert f"feature shard {tmp_path / 'broken.h5'} is not a readable HDF5 file" in capsys.readouterr().err


def test_cli_extract_argument_errors(tmp_path, capsys):
    assert cli(["extract", "--dialogs", str(tmp_path / "d.json"), "--weights", "random", "--out", "x.h5"]) == 2
    assert "extract --dialogs needs --image-dir" in capsys.readouterr().err
    assert cli(["extract", "--images", str(tmp_path), "--weights", str(tmp_path / "w.pkl"), "--out",
                str(tmp_path / "x.h5"), "--shard", "1/1"]) == 2
    assert "--shard must be i/n with 0 <= i < n" in capsys.readouterr().err
    assert cli(["extract", "--images", str(tmp_path), "--weights", "random", "--out", str(tmp_path / "x.h5")]) == 2
    assert f"no images to extract into {tmp_path / 'x.h5'}" in capsys.readouterr().err
    write_image(tmp_path / "COCO_val2014_000000000001.jpg", 20, 20, 1)
    assert cli(["extract", "--images", str(tmp_path), "--weights", str(tmp_path / "w.pkl"), "--out",
                str(tmp_path / "x.h5")]) == 2
    assert f"weights file not found: {tmp_path / 'w.pkl'}" in capsys.readouterr().err


def _interrupt_after_first_block(monkeypatch):
    """COPY_BLOCK 1 and a failure after the first block is written: a kill mid-copy."""
    import visdial_lg.features.merge as merge

    monkeypatch.setattr(merge, "COPY_BLOCK", 1)
    real_write = PartialFeatureFile.write

    def write_once(self, rows, values):
        real_write(self, rows, values)
        raise KeyboardInterrupt

    monkeypatch.setattr(PartialFeatureFile, "write", write_once)
    return lambda: monkeypatch.setattr(PartialFeatureFile, "write", real_write)


def test_a_merge_of_re_extracted_shards_never_resumes_the_old_copy(shards, tmp_path, monkeypatch, capsys):
    copies = []
    for shard in shards:
        copies.append(tmp_path / shard.name)
        shutil.copyfile(shard, copies[-1])
    merged = tmp_path / "merged.h5"
    restore = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        merge_shards(copies, merged)
    restore()
    for copy in copies:  # the shards re-extracted with other weights, under the same names
        with h5py.File(copy, "r+") as f:
            f.attrs["weights_sha256"] = "b" * 64
            f["features"][...] = f["features"][()] + 1
    merge_shards(copies, merged)
    assert "was computed from other inputs (weights_sha256:" in capsys.readouterr().err
    np.testing.assert_array_equal(read_all(merged)["features"], concatenated(copies)["features"])


def test_an_import_of_a_replaced_source_never_resumes_the_old_copy(tmp_path, monkeypatch, capsys):
    from helpers.ltmi_file import write_ltmi

    src, out = tmp_path / "val2018_resnet101_faster_rcnn_genome_100.h5", tmp_path / "val2018.h5"
    write_ltmi(src)
    restore = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        import_ltmi(src, out)
    restore()
    with h5py.File(src, "r+") as f:  # another file of the same name and rows
        f["features"][...] = f["features"][()] * 2
        f.attrs["other"] = "x" * 4096  # grows the file
    import_ltmi(src, out)
    assert "was computed from other inputs (source_bytes:" in capsys.readouterr().err
    with h5py.File(src) as f:
        np.testing.assert_array_equal(read_all(out)["features"], f["features"][()])


def _open_hdf5_names() -> list[str]:
    return [file_id.name.decode() for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)]


def test_an_interrupted_copy_merge_is_closed_and_kept_by_a_virtual_merge(shards, tmp_path, monkeypatch):
    merged = tmp_path / "merged.h5"
    restore = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        merge_shards(shards, merged)
    restore()
    assert str(partial_path(merged)) not in _open_hdf5_names()  # closed on the way out
    merge_shards(shards, merged, virtual=True)
    with h5py.File(partial_path(merged)) as f:  # the copy's finished row is still there
        assert f["done"][()].tolist() == [1, 0, 0]
    np.testing.assert_array_equal(read_all(merged)["features"], concatenated(shards)["features"])
