"""Feature HDF5: layout checks, the resumable partial file, the reader, LTMI import."""

from __future__ import annotations

import multiprocessing
import pickle

import h5py
import numpy as np
import pytest

from visdial_lg.errors import InputFormatError, VisdialLGError
from visdial_lg.features.merge import import_ltmi
from visdial_lg.features.store import FeatureLayout, FeatureReader, PartialFeatureFile, check_layout, partial_path

K, D, A = 5, 2048, 3


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


def test_partial_file_refuses_to_resume_another_computation(tmp_path):
    out = tmp_path / "f.h5"
    PartialFeatureFile(out, 3, FeatureLayout(K, D, A), {"weights_sha256": "aaa"}).close()
    with pytest.raises(VisdialLGError, match=r"f\.h5\.partial.*'weights_sha256'.*delete it"):
        PartialFeatureFile(out, 3, FeatureLayout(K, D, A), {"weights_sha256": "bbb"})


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


def write_ltmi(path, n=4, *, cur_idx=None, drop=(), features_shape=None) -> dict:
    """A file in LTMI's generate_visdial layout: no cls_scores, `st1_boxes`, int64/float64 scalars."""
    rng = np.random.default_rng(1)
    data = {
        "image_id": np.array([9, 3, 7, 5, 0, 0][:n], np.int64), "image_h": np.full(n, 480, np.int64),
        "image_w": np.full(n, 640.0), "num_boxes": np.full(n, K, np.int64),
        "boxes": rng.random((n, K, 4), np.float32) * 400, "st1_boxes": rng.random((n, K, 4), np.float32) * 400,
        "features": rng.random(features_shape or (n, K, D), np.float32),
        "cls_indices": rng.integers(1, 1601, (n, K)), "top_attrs": rng.integers(0, 401, (n, K, A)),
        "top_attrs_scores": rng.random((n, K, A), np.float32),
    }
    with h5py.File(path, "w") as f:
        for name, value in data.items():
            if name not in drop:
                f[name] = value
        f.attrs["split"] = "val2018"
        if cur_idx is not None:
            f.attrs["cur_idx"] = cur_idx
    return data


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
