"""Sharded extraction through Snakemake: `features.shards: 3` gives three
independent extraction jobs and one merge whose file equals the unsharded one,
and a shard that failed (a corrupt image) is the only extraction that runs again."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from helpers.snakemake_output import planned_jobs

IMAGESET = "val2018"  # 3 demo images in the micro config: one per shard
MERGED = f"results/features/{IMAGESET}.h5"


def snakemake(repo, env, workdir, nshards, *args, check=True, timeout=600):
    """Snakemake on the micro config with `features.shards: nshards` (a second config file:
    `--config` would pass the nested value as a string). One image a batch: on CPU a
    convolution's rounding depends on the batch it runs in (differences ~1e-5), so
    only the same batches give bit-equal features; sharding itself must change nothing."""
    extra = workdir / f"shards-{nshards}.yaml"
    extra.write_text(f"features:\n  shards: {nshards}\n  batch_size: 1\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "tests/configs/micro.yaml"), str(extra), "--cores", "2", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    else:
        assert done.returncode != 0, f"{' '.join(cmd)} succeeded:\n{done.stdout[-3000:]}"
    return done.stdout + done.stderr


def planned_outputs(output: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^\s+output: (.+)$", output, re.M)}


def shards(n):
    return [f"results/features/{IMAGESET}/shard-{i}-of-{n}.h5" for i in range(n)]


def extractor_config(value):
    """The extractor config attribute without `shards` (it names the split, not the features)."""
    config = json.loads(value)
    config.get("features", config).pop("shards", None)
    return config


def assert_same_features(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa.keys()) == sorted(fb.keys())
        for key in fa:
            da, db = fa[key], fb[key]
            assert da.shape == db.shape and da.dtype == db.dtype, key
            assert np.array_equal(da[()], db[()]), f"dataset {key} differs"
        assert sorted(fa.attrs) == sorted(fb.attrs)
        for key in fa.attrs:
            va, vb = fa.attrs[key], fb.attrs[key]
            if key == "merged_from":  # provenance: the shard files' names
                continue
            if key == "extractor_config":
                assert extractor_config(va) == extractor_config(vb)
            else:
                assert np.array_equal(va, vb), f"attribute {key} differs"


@pytest.fixture(scope="module")
def sharded(repo, venv_env, tmp_path_factory):
    """One workdir: the unsharded file (kept aside), then the same image set in 3 shards."""
    workdir = tmp_path_factory.mktemp("shards")
    snakemake(repo, venv_env, workdir, 1, MERGED)
    unsharded = workdir / "unsharded.h5"
    shutil.copyfile(workdir / MERGED, unsharded)
    out = snakemake(repo, venv_env, workdir, 3, MERGED)
    return workdir, unsharded, out


def test_three_shards_are_three_jobs_and_one_merge(sharded):
    workdir, _, out = sharded
    assert planned_jobs(out) == {"extract_features": 3, "merge_features": 1}
    for path in shards(3):
        with h5py.File(workdir / path, "r") as f:
            assert f["image_id"].shape[0] == 1  # 3 images, one each
    assert (workdir / f"results/logs/extract/{IMAGESET}-2-of-3.log").exists()


def test_merged_shards_equal_the_unsharded_file(sharded):
    workdir, unsharded, _ = sharded
    with h5py.File(unsharded, "r") as f:
        assert f["image_id"].shape[0] == 3
    assert_same_features(workdir / MERGED, unsharded)
    with h5py.File(workdir / MERGED, "r") as f:
        assert json.loads(f.attrs["merged_from"]) == [p.rsplit("/", 1)[1] for p in shards(3)]


def test_a_failed_shard_reruns_alone(repo, venv_env, sharded):
    workdir, unsharded, _ = sharded
    # Shard 1 of 3 holds the second image by id: corrupt it, and rerun that shard as
    # if it had not run yet (with the merge, which a failed shard leaves unrun).
    images = sorted((workdir / "resources/demo/images/VisualDialog_val2018").glob("*.jpg"))
    victim = images[1]
    original = victim.read_bytes()
    (workdir / shards(3)[1]).unlink()
    (workdir / MERGED).unlink()
    kept = {p: (workdir / p).stat().st_mtime_ns for p in (shards(3)[0], shards(3)[2])}
    victim.write_bytes(original[: len(original) // 2])  # a truncated JPEG
    failed = snakemake(repo, venv_env, workdir, 3, MERGED, "--keep-going", check=False)
    assert "Error in rule extract_features" in failed and "shard=1, nshards=3" in failed
    assert not (workdir / shards(3)[1]).exists() and not (workdir / MERGED).exists()
    assert victim.name in (workdir / f"results/logs/extract/{IMAGESET}-1-of-3.log").read_text()

    victim.write_bytes(original)
    plan = snakemake(repo, venv_env, workdir, 3, MERGED, "-n")
    assert planned_jobs(plan) == {"extract_features": 1, "merge_features": 1}
    assert planned_outputs(plan) == {shards(3)[1], MERGED}

    snakemake(repo, venv_env, workdir, 3, MERGED)
    assert {p: (workdir / p).stat().st_mtime_ns for p in kept} == kept  # the others untouched
    assert_same_features(workdir / MERGED, unsharded)
