"""Two gloo processes under torchrun train like one process with the same global batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import torch

from helpers.tiny_data import tiny_config, write_tiny_dataset
from visdial_lg.core.config import Config, as_dict
from visdial_lg.training.loop import FINAL_NAME, TrainInputs, train
from visdial_lg.training.checkpoint import load_checkpoint

RUN = "v1.0-lg_attn_kl-disc"  # disc + grounding losses are means over equal per-rank counts


def _losses(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return [(int(r["global_step"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)]


def test_two_process_torchrun_matches_one_process(tmp_path):
    paths = write_tiny_dataset(tmp_path / "data", dialogs=4)
    config = as_dict(tiny_config(epochs=1, batch_size=2))  # a dict: also the --config of the torchrun
    config["model"]["dropout"] = 0.0  # per-rank dropout streams differ by design
    inputs = TrainInputs(paths["tokens"], paths["features"], paths["vocab"])
    single = train(RUN, inputs, tmp_path / "one", Config.from_dict(config), device="cpu")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "visdial_lg", "train", "--run-id", RUN, "--tokens", str(paths["tokens"]),
           "--features", str(paths["features"]), "--vocab", str(paths["vocab"]),
           "--out-dir", str(tmp_path / "two"), "--device", "cpu", "--config", json.dumps(config)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote") == 1  # only rank 0 writes

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [s for s, _, _ in one] == [s for s, _, _ in two] == [1, 2]
    for (_, loss1, lr1), (_, loss2, lr2) in zip(one, two):
        assert abs(loss1 - loss2) <= 1e-5 * abs(loss1) and lr1 == lr2
    a, b = load_checkpoint(single)["model"], load_checkpoint(tmp_path / "two" / FINAL_NAME)["model"]
    for key in a:
        # Adam turns float-rounding noise in ~zero gradients into up to lr-sized steps.
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=4 * config["train"]["lr"], msg=key)
