"""The train rule launches several processes through torchrun when a run has
them (one per GPU of the job; `train.cpu_processes` on CPU, gloo), and the
same rule's checkpoint evaluates like any other: a 2-process CPU run of the
micro pipeline, trained and evaluated by Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from visdial_lg.training.checkpoint import load_checkpoint

RUN = "v1.0-ltmi-disc"
CHECKPOINT = f"results/runs/{RUN}/checkpoint.pt"
EVALUATION = f"results/runs/{RUN}/val_prior.json"


@pytest.fixture(scope="module")
def two_process_run(repo, venv_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ddp")
    extra = workdir / "two-processes.yaml"  # `--config` would pass the nested value as a string
    extra.write_text("train:\n  cpu_processes: 2\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "tests/configs/micro.yaml"), str(extra),
           "--cores", "2", "--printshellcmds", EVALUATION]
    done = subprocess.run(cmd, env=venv_env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd)}\n{out[-5000:]}"
    return workdir, out


def test_the_rule_launches_two_gloo_processes(two_process_run):
    workdir, out = two_process_run
    assert "torch.distributed.run --standalone --nproc-per-node 2 -m visdial_lg train" in out
    log = (workdir / f"results/logs/train/{RUN}.log").read_text()
    assert "on 2 x cpu" in log, log[-2000:]
    assert log.count("wrote") == 1  # rank 0 writes the checkpoint, once
    rows = (workdir / f"results/runs/{RUN}/log.csv").read_text().splitlines()
    assert len(rows) >= 2  # a header and at least one step


def test_the_checkpoint_evaluates(two_process_run):
    workdir, _ = two_process_run
    assert load_checkpoint(workdir / CHECKPOINT)["model"]
    metrics = json.loads((workdir / EVALUATION).read_text())
    assert metrics["run"] == RUN and metrics["split"] == "val"
    disc = metrics["decoders"]["disc"]
    assert disc["count"] == 10 * metrics["dialogs"] > 0
    assert 0 <= disc["r1"] <= disc["r5"] <= disc["r10"] <= 1 and 0 < disc["mrr"] <= 1
    assert 1 <= disc["mean"] <= 100
    assert (workdir / f"results/logs/evaluate/{RUN}_val_prior.log").exists()


def test_one_process_by_default(repo, venv_env, two_process_run):
    """Without cpu_processes (the micro config) the same rule runs one plain process."""
    workdir, _ = two_process_run
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "tests/configs/micro.yaml"), "--cores", "1", "-n", "--printshellcmds",
           "--forcerun", "train", CHECKPOINT]
    done = subprocess.run(cmd, env=venv_env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "python -m visdial_lg train --run-id" in out and "torch.distributed.run" not in out
