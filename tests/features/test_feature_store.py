"""Feature HDF5: layout checks, the resumable partial file, the reader, LTMI import."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from visdial_lg.core.errors import InputFormatError
from visdial_lg.features import store
from visdial_lg.features.merge import import_ltmi
from visdial_lg.features.reader import FeatureReader
from visdial_lg.features.store import FeatureLayout, PartialFeatureFile, check_layout, partial_path

from helpers.ltmi_file import A, D, K, write_ltmi


def random_rows(n: int, seed: int = 0, layout: FeatureLayout | None = None) -> dict[str, np.ndarray]:
    layout = layout or FeatureLayout(K, D, A)
    rng = np.random.default_rng(seed)
    rows = {}
    for name in layout.datasets:
        trailing, dtype = layout.spec(name)
        rows[name] = (rng.random((n, *trailing)) * 50).astype(dtype)
    rows["image_id"] = np.arange(100, 100 + n, dtype=np.int64) * 7
    rows["num_boxes"] = rng.integers(1, K + 1, n).astype(np.int32)
    rows["image_w"] = rng.integers(20, 60, n).astype(np.int32)
    rows["image_h"] = rng.integers(20, 60, n).astype(np.int32)
    for name in ("boxes", "proposal_boxes"):  # inside the image: 0 <= x1 <= x2 <= w, the same for y
        size = np.stack([rows["image_w"], rows["image_h"]], -1)[:, None]  # [n, 1, 2]
        corner = rng.random((n, layout.num_boxes, 2)) * 0.5 * size
        rows[name] = np.concatenate([corner, corner * 2], -1).astype(np.float32)  # [n, K, 4]
    return rows


def write_file(path, rows, layout=None) -> None:
    partial = PartialFeatureFile(path, len(rows["image_id"]), layout or FeatureLayout(K, D, A), {"test": "1"})
    partial.write(np.arange(len(rows["image_id"])), rows)
    partial.finalize()


def test_partial_file_writes_rows_in_any_order_and_renames(tmp_path):
    out, rows = tmp_path / "f.h5", random_rows(6)
    partial = PartialFeatureFile(out, 6, FeatureLayout(K, D, A), {"source": "a"})
    order = np.array([4, 1, 5])
    partial.write(order, {k: v[order] for k, v in rows.items()})
    partial.close()
    assert partial_path(out).exists() and not out.exists()

    resumed = PartialFeatureFile(out, 6, FeatureLayout(K, D, A), {"source": "a"})
    assert resumed.done.tolist() == [False, True, False, False, True, True]
    rest = np.array([0, 2, 3])
    resumed.write(rest, {k: v[rest] for k, v in rows.items()})
    resumed.finalize({"extra": [1, 2]})
    assert out.exists() and not partial_path(out).exists()
    with h5py.File(out) as f:
        assert "done" not in f and f.attrs["extra"] == "[1, 2]"
        assert f["features"].chunks == (1, K, D)
        for name, values in rows.items():
            np.testing.assert_array_equal(f[name][()], values, err_msg=name)


def test_partial_file_of_other_inputs_is_kept_aside_and_the_run_starts_over(tmp_path, capsys):
    out, rows, layout = tmp_path / "f.h5", random_rows(3), FeatureLayout(K, D, A)
    old = {"extractor_config": json.dumps({"depth": 50, "min_size": 48}), "weights_sha256": "a" * 64}
    partial = PartialFeatureFile(out, 3, layout, old)
    partial.write(np.array([1]), {k: v[1:2] for k, v in rows.items()})
    partial.close()

    new = {"extractor_config": json.dumps({"depth": 50, "min_size": 50}), "weights_sha256": "b" * 64}
    fresh = PartialFeatureFile(out, 3, layout, new)
    assert not fresh.done.any()
    fresh.close()
    err = capsys.readouterr().err
    stale = [p.name for p in tmp_path.iterdir() if ".stale-" in p.name]
    assert len(stale) == 1 and stale[0].startswith("f.h5.partial.stale-")
    assert err.count("\n") == 1 and "f.h5.partial was computed from other inputs" in err
    assert "extractor_config.min_size: 48 → 50" in err and "depth" not in err
    assert "weights_sha256: aaaaaaaaaaaa… → bbbbbbbbbbbb…" in err and f"kept as {stale[0]}, starting over" in err
    with h5py.File(tmp_path / stale[0]) as f:  # the finished row is kept, with what it was computed from
        assert f["done"][()].tolist() == [0, 1, 0] and f.attrs["weights_sha256"] == "a" * 64
        np.testing.assert_array_equal(f["features"][1], rows["features"][1])
    with h5py.File(partial_path(out)) as f:
        assert f.attrs["weights_sha256"] == "b" * 64


def test_partial_file_without_finished_rows_is_simply_replaced(tmp_path, capsys):
    out, layout = tmp_path / "f.h5", FeatureLayout(K, D, A)
    PartialFeatureFile(out, 3, layout, {"weights": "bad.pkl"}).close()  # e.g. a run refused its weights
    fresh = PartialFeatureFile(out, 3, layout, {"weights": "good.pkl"})
    fresh.close()
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5.partial"]
    with h5py.File(partial_path(out)) as f:
        assert f.attrs["weights"] == "good.pkl"


def test_kill_while_creating_the_partial_file_leaves_nothing_in_the_way(tmp_path, monkeypatch):
    out, layout = tmp_path / "f.h5", FeatureLayout(K, D, A)
    real = store.create_datasets

    def killed(f, *args, **kwargs):
        f.create_dataset("image_id", (3,), "int64")
        raise KeyboardInterrupt  # killed halfway through creating the datasets

    monkeypatch.setattr(store, "create_datasets", killed)
    with pytest.raises(KeyboardInterrupt):
        PartialFeatureFile(out, 3, layout, {"source": "a"})
    monkeypatch.setattr(store, "create_datasets", real)
    partial = PartialFeatureFile(out, 3, layout, {"source": "a"})
    assert partial.done.tolist() == [False] * 3
    partial.close()


def _kill_at(monkeypatch, path):
    """os.replace(path, ...) and path.unlink() raise KeyboardInterrupt, as if the process were killed there."""
    real_replace, real_unlink = os.replace, Path.unlink

    def replace(src, dst):
        if Path(src) == path:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    def unlink(self, *args, **kwargs):
        if self == path:
            raise KeyboardInterrupt
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)


def test_kill_between_closing_and_renaming_a_finished_file_loses_nothing(tmp_path, monkeypatch):
    out, rows, layout = tmp_path / "f.h5", random_rows(3), FeatureLayout(K, D, A)
    partial = PartialFeatureFile(out, 3, layout, {"source": "a"})
    partial.write(np.arange(3), rows)
    with monkeypatch.context() as m:
        _kill_at(m, partial_path(out))
        with pytest.raises(KeyboardInterrupt):
            partial.finalize({"skipped_images": []})
    assert not out.exists()

    rerun = PartialFeatureFile(out, 3, layout, {"source": "a"})
    assert rerun.done.all()  # nothing to compute again
    rerun.finalize({"skipped_images": []})
    assert not partial_path(out).exists()
    with h5py.File(out) as f:
        assert "done" not in f and f.attrs["skipped_images"] == "[]"
        for name, values in rows.items():
            np.testing.assert_array_equal(f[name][()], values, err_msg=name)


@pytest.mark.parametrize("step", ["while compacting", "before the rename", "before removing the partial file"])
def test_kill_at_any_step_of_the_compaction_loses_nothing(tmp_path, monkeypatch, step):
    out, rows, layout = tmp_path / "f.h5", random_rows(4), FeatureLayout(K, D, A)
    compact = Path(f"{out}.compact")
    done = np.array([0, 3])
    partial = PartialFeatureFile(out, 4, layout, {"source": "a"})
    partial.write(done, {k: v[done] for k, v in rows.items()})
    with monkeypatch.context() as m:
        _kill_at(m, partial_path(out) if step == "before removing the partial file" else compact)
        with pytest.raises(KeyboardInterrupt):
            partial.finalize({"skipped_images": [{"image_id": 1}]})
    if step == "while compacting":
        compact.write_bytes(b"half a file")

    rerun = PartialFeatureFile(out, 4, layout, {"source": "a"})
    assert rerun.done.tolist() == [True, False, False, True]
    rerun.finalize({"skipped_images": [{"image_id": 1}]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]
    with h5py.File(out) as f:
        assert "done" not in f and json.loads(f.attrs["skipped_images"]) == [{"image_id": 1}]
        np.testing.assert_array_equal(f["image_id"][()], rows["image_id"][done])
        np.testing.assert_array_equal(f["features"][()], rows["features"][done])


def test_partial_file_with_unfinished_rows_keeps_only_done_rows(tmp_path):
    out, rows = tmp_path / "f.h5", random_rows(4)
    partial = PartialFeatureFile(out, 4, FeatureLayout(K, D, A), {})
    done = np.array([0, 3])
    partial.write(done, {k: v[done] for k, v in rows.items()})
    partial.finalize()
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["image_id"][()], rows["image_id"][done])
        np.testing.assert_array_equal(f["features"][()], rows["features"][done])


def test_reader_reads_rows_by_image_id_and_names_missing_ids(tmp_path):
    path, rows = tmp_path / "f.h5", random_rows(5)
    write_file(path, rows, FeatureLayout(K, D, A, "float16"))
    reader = FeatureReader(path)
    assert len(reader) == 5 and reader.image_ids == rows["image_id"].tolist()
    image_id = int(rows["image_id"][3])
    assert image_id in reader and reader.index_of(image_id) == 3
    item = reader.read(image_id)
    assert item["features"].dtype == np.float32 and item["features"].shape == (K, D)
    np.testing.assert_array_equal(item["features"], rows["features"][3].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(item["boxes"], rows["boxes"][3])
    assert (item["num_boxes"], item["image_w"], item["image_h"]) == (
        rows["num_boxes"][3], rows["image_w"][3], rows["image_h"][3])
    with pytest.raises(InputFormatError, match=rf"image id 12345 has no features in {path}"):
        reader.read(12345)


def _read_in_child(reader, image_id, queue):
    queue.put(float(reader.read(image_id)["features"].sum()))


def test_reader_opens_its_own_handle_in_each_process(tmp_path):
    path, rows = tmp_path / "f.h5", random_rows(3)
    write_file(path, rows)
    reader = FeatureReader(path)
    image_id = int(rows["image_id"][1])
    expected = float(reader.read(image_id)["features"].sum())  # handle open in the parent before the fork
    clone = pickle.loads(pickle.dumps(reader))  # spawn-style workers get a pickled copy without a handle
    assert clone._file is None and float(clone.read(image_id)["features"].sum()) == expected
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_read_in_child, args=(reader, image_id, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) == expected


def test_layout_errors_name_the_file_and_the_dataset(tmp_path):
    path = tmp_path / "bad.h5"
    rows = random_rows(3)
    with h5py.File(path, "w") as f:
        for name in ("image_id", "image_w", "image_h", "num_boxes", "features"):
            f[name] = rows[name]
    with pytest.raises(InputFormatError, match=rf"feature file {path} lacks dataset 'boxes'"):
        FeatureReader(path).read(int(rows["image_id"][0]))
    with h5py.File(path, "a") as f:
        f["boxes"] = np.zeros((3, K, 3), np.float32)
    with pytest.raises(InputFormatError, match=r"dataset 'boxes' has shape \(3, 5, 3\), expected \(3, 5, 4\)"):
        FeatureReader(path).read(int(rows["image_id"][0]))
    with h5py.File(path, "a") as f:
        del f["boxes"]
        f["boxes"] = np.zeros((3, K, 4), np.float32)
        del f["num_boxes"]
        f["num_boxes"] = np.zeros((2,), np.int32)
    with pytest.raises(InputFormatError, match=r"dataset 'num_boxes' has shape \(2,\), expected \(3,\)"):
        with h5py.File(path) as f:
            check_layout(f, path)
    with pytest.raises(InputFormatError, match=rf"feature file {tmp_path / 'none.h5'} does not exist"):
        FeatureReader(tmp_path / "none.h5").read(1)


# ------------------------------------------------------------------------------ LTMI


def test_import_ltmi_maps_names_and_dtypes(tmp_path):
    src, out = tmp_path / "val2018_resnet101_faster_rcnn_genome_100.h5", tmp_path / "val2018.h5"
    data = write_ltmi(src)
    import_ltmi(src, out)
    with h5py.File(out) as f:
        assert "cls_scores" not in f and "st1_boxes" not in f
        np.testing.assert_array_equal(f["proposal_boxes"][()], data["st1_boxes"])
        assert f["image_w"].dtype == np.int32 and f["cls_indices"].dtype == np.int32
        assert f["features"].chunks == (1, K, D)
        assert "val2018" in f.attrs["ltmi_attrs"]
        for name in ("image_id", "image_h", "image_w", "num_boxes", "boxes", "features", "cls_indices",
                     "top_attrs", "top_attrs_scores"):
            np.testing.assert_array_equal(f[name][()], data[name], err_msg=name)
    item = FeatureReader(out).read(7)
    np.testing.assert_array_equal(item["features"], data["features"][2])
    assert (item["image_w"], item["image_h"], item["num_boxes"]) == (640, 480, K)


def test_import_ltmi_stops_at_cur_idx(tmp_path):
    src, out = tmp_path / "ltmi.h5", tmp_path / "out.h5"
    write_ltmi(src, n=6, cur_idx=4)  # the last two rows were never written (zeros, id 0 twice)
    import_ltmi(src, out, storage_dtype="float16")
    with h5py.File(out) as f:
        assert f["image_id"][()].tolist() == [9, 3, 7, 5] and f["features"].dtype == np.float16


@pytest.mark.parametrize("drop, shape, message", [
    (("top_attrs",), None, r"lacks dataset 'top_attrs'"),
    ((), (4, K, 1024, 2), r"dataset 'features' must be \[N, K, D\], has shape \(4, 5, 1024, 2\)"),
    ((), (3, K, D), r"dataset 'features' has shape \(3, 5, 2048\), expected \(4, 5, 2048\)"),
])
def test_import_ltmi_layout_errors_name_file_and_dataset(tmp_path, drop, shape, message):
    src = tmp_path / "ltmi.h5"
    write_ltmi(src, drop=drop, features_shape=shape)
    with pytest.raises(InputFormatError, match=rf"feature file {src}.*{message}"):
        import_ltmi(src, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_import_ltmi_rejects_duplicate_image_ids(tmp_path):
    src = tmp_path / "ltmi.h5"
    write_ltmi(src, n=6)  # rows 4 and 5 both have image id 0 and no cur_idx says to stop
    with pytest.raises(InputFormatError, match=rf"feature file {src}: image id 0 has several rows"):
        import_ltmi(src, tmp_path / "out.h5")


def test_merge_accepts_an_empty_shard(tmp_path):
    from visdial_lg.features.merge import merge_shards

    layout, rows = FeatureLayout(K, D, A), random_rows(2)
    paths = []
    for index, n in enumerate([2, 0]):  # more shards than images leaves one empty
        paths.append(tmp_path / f"shard-{index}.h5")
        partial = PartialFeatureFile(paths[-1], n, layout, {"shard_index": str(index), "shard_count": "2"})
        partial.write(np.arange(n), {k: v[:n] for k, v in rows.items()})
        partial.finalize({"skipped_images": "[]"})
    for virtual in (False, True):
        merged = tmp_path / f"merged-{virtual}.h5"
        merge_shards(paths, merged, virtual=virtual)
        assert FeatureReader(merged).image_ids == rows["image_id"].tolist()
