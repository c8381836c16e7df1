"""The rehearsal (`make rehearsal`, docs/rehearsal.md): the real config.yaml, unchanged but for
the rehearsal's overlay, runs to Table 1 on CPU on the tiny synthetic inputs, with features
from the weights file and the embedding from the GloVe file. About 10 minutes on 2 cores."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from visdial_lg.core.files import sha256_of
from visdial_lg.demo import rehearsal


@pytest.fixture(scope="module")
def rehearsed(repo, venv_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("rehearsal")
    overlay = rehearsal.write_rehearsal(base / "inputs")
    workdir = base / "work"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "results/table1.csv", "--cores", "2",
         "--directory", str(workdir), "--configfile", str(repo / "config.yaml"), str(overlay)],
        env=venv_env, capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return base / "inputs", workdir


def test_table1_has_the_reproduced_rows_of_both_versions(rehearsed):
    _, workdir = rehearsed
    with open(workdir / "results/table1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    produced = {row["model"]: row for row in rows if row["source"] == "visdial"}
    assert set(produced) == {"LTMI", "LTMI-LG", "LTMI-LG*"}
    assert any(row["source"] == "paper" for row in rows)
    for label, row in produced.items():
        for column in ("v0.9 val MRR", "v1.0 val MRR", "v1.0 val NDCG"):
            assert 0.0 <= float(row[column]) <= 100.0, (label, column, row)


def test_features_come_from_the_weights_file_and_the_detector_chooses_100_regions(rehearsed):
    inputs, workdir = rehearsed
    weights = inputs / rehearsal.WEIGHTS_FILE
    for imageset in ("trainval2014", "val2018"):
        with h5py.File(workdir / f"results/features/{imageset}.h5", "r") as f:
            assert f.attrs["weights_sha256"] == sha256_of(weights), imageset
            assert f.attrs["weights"] == weights.name
            extractor = json.loads(f.attrs["extractor_config"])
            assert (extractor["depth"], extractor["min_size"], extractor["max_size"], extractor["post_nms_topk"],
                    extractor["given_boxes"]) == (101, 600, 1000, 300, None)
            assert (np.asarray(f["num_boxes"]) == 100).all()
            assert f["features"].shape[1:] == (100, 2048)
            assert np.isfinite(np.asarray(f["features"])).all() and np.asarray(f["features"]).any()


def test_embedding_comes_from_the_glove_file_and_runs_have_the_paper_sizes(rehearsed):
    inputs, workdir = rehearsed
    vectors = {}
    for line in (inputs / rehearsal.GLOVE_FILE).read_text().splitlines():
        word, *values = line.rsplit(" ", 300)
        vectors.setdefault(word, np.array(values, dtype=np.float32))
    for version in ("v0.9", "v1.0"):
        words = json.loads((workdir / f"results/text/{version}_vocab.json").read_text())["words"]
        weight = torch.load(workdir / f"results/text/{version}_glove.pt", weights_only=True)["weight"]
        assert weight.shape == (len(words), 300)
        covered = [i for i, word in enumerate(words) if word in vectors]
        assert len(covered) == len(words) - 4  # all but <PAD> <S> </S> <UNK>
        for i in covered:
            assert torch.equal(weight[i], torch.from_numpy(vectors[words[i]])), words[i]
    checkpoint = torch.load(workdir / "results/runs/v1.0-lg_attn_kl-multi/checkpoint.pt", map_location="cpu",
                            weights_only=False)
    model, train = checkpoint["config"]["model"], checkpoint["config"]["train"]
    assert (model["hidden"], model["embed"], model["blocks"], model["lstm_layers"]) == (512, 300, 2, 2)
    assert (train["epochs"], train["batch_size"]) == (1, 32)
    # the run trained on the features of that weights file and on the GloVe embedding
    assert sha256_of(inputs / rehearsal.WEIGHTS_FILE) in checkpoint["fingerprint"]["features"]
    assert checkpoint["inputs"]["glove"] == "results/text/v1.0_glove.pt"
