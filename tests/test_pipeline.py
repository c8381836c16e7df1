"""End to end: Snakemake runs the real rules on the micro config (the demo
dataset at a handful of dialogs)."""

import json
import subprocess
import sys

import h5py
import pytest


@pytest.fixture(scope="module")
def micro_run(repo, venv_env, tmp_path_factory):
    """Run the text stages of the DAG once; tests below inspect the outputs."""
    workdir = tmp_path_factory.mktemp("micro")
    targets = ["results/text/v0.9_train.h5", "results/text/v0.9_val.h5",
               "results/text/v1.0_train.h5", "results/text/v1.0_val.h5", "results/text/v1.0_test.h5"]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *targets,
         "--cores", "2", "--directory", str(workdir),
         "--configfile", str(repo / "tests/configs/micro.yaml")],
        env=venv_env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


def test_demo_vocab_and_tokenize_run_through_snakemake(micro_run):
    manifest = json.loads((micro_run / "resources/demo/MANIFEST.json").read_text())
    assert manifest
    vocab = json.loads((micro_run / "results/text/v1.0_vocab.json").read_text())
    assert vocab["words"][:4] == ["<PAD>", "<S>", "</S>", "<UNK>"]
    with h5py.File(micro_run / "results/text/v1.0_train.h5") as f:
        assert f["answer_options"].shape == (9, 10, 100)  # train2014 + val2014 images
        assert (f["num_rounds"][:] == 10).all()
    with h5py.File(micro_run / "results/text/v1.0_val.h5") as f:
        assert "gt_relevance" in f and (f["dense_round"][:] >= 1).all()
    with h5py.File(micro_run / "results/text/v1.0_test.h5") as f:
        assert (f["num_rounds"][:] <= 10).all() and (f["gt_index"][:] == -1).any()
    for rule in ["make_demo.log", "vocab/v1.0.log", "tokenize/v1.0_test.log"]:
        assert (micro_run / "results/logs" / rule).exists()


def test_a_second_run_has_nothing_to_do(repo, venv_env, micro_run):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "results/text/v1.0_val.h5",
         "-n", "--cores", "1", "--directory", str(micro_run),
         "--configfile", str(repo / "tests/configs/micro.yaml")],
        env=venv_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
