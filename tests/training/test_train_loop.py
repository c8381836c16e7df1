"""The training loop: resume after a kill, non-finite loss, logs, checkpoints, errors."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import h5py

import pytest
import torch

from helpers.tiny_data import tiny_config, write_tiny_dataset
from visdial_lg.core.config import as_dict
from visdial_lg.core.errors import InputFormatError
from visdial_lg.training.loop import FINAL_NAME, RESUME_NAME, TrainInputs, train
from visdial_lg.training.checkpoint import load_checkpoint, load_trained_model
from visdial_lg.training.monitor import NonFiniteLossError

RUN = "v1.0-lg_attn_kl-disc"


class Killed(Exception):
    """Stands for SIGKILL between epochs: nothing after the hook runs."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    paths = write_tiny_dataset(tmp_path_factory.mktemp("data"), dialogs=4)
    return TrainInputs(tokens=paths["tokens"], features=paths["features"], vocab=paths["vocab"])


def _read_log(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "dialogs_per_s"} for row in csv.DictReader(f)]


def _kill_after(epoch):
    def hook(done):
        if done == epoch:
            raise Killed
    return hook


def test_resume_after_kill_equals_uninterrupted(tmp_path, data, capsys):
    config = tiny_config(epochs=2)  # 4 dialogs, batch 2: 2 steps an epoch; lr decays at epoch 2
    straight = train(RUN, data, tmp_path / "straight", config, device="cpu")

    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        train(RUN, data, out, config, device="cpu", on_epoch_end=_kill_after(1))
    assert load_checkpoint(out / RESUME_NAME)["epoch"] == 1 and not (out / FINAL_NAME).exists()
    with open(out / "log.csv", "a") as f:  # a row of the killed, unfinished epoch 2
        f.write("2,1,3,0.001,9.9,9.9,,9.9,1.0\n")
    (out / ".last.pt.tmp-999").write_bytes(b"half a checkpoint")  # a save cut short by the kill
    # Loader workers do not change the result (a neutral key: the state is resumed).
    resumed = train(RUN, data, out, tiny_config(epochs=2, num_workers=1), device="cpu")
    assert "resuming" in capsys.readouterr().out

    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not (out / RESUME_NAME).exists()  # removed once the final checkpoint exists
    assert not (out / ".last.pt.tmp-999").exists()
    log = _read_log(out / "log.csv")
    assert log == _read_log(tmp_path / "straight" / "log.csv")
    assert [(int(r["epoch"]), int(r["step"])) for r in log] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(math.isfinite(float(r["loss"])) and float(r["ground_loss"]) >= 0 for r in log)
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_final_checkpoint_rebuilds_the_model(tmp_path, data):
    path = train(RUN, data, tmp_path / "run", tiny_config(epochs=1), device="cpu")
    ckpt = torch.load(path, weights_only=True)  # plain types only
    assert "optimizer" not in ckpt and ckpt["epoch"] == 1 and ckpt["run"] == RUN
    model, spec, meta = load_trained_model(path, "cpu")
    assert spec.run_id == RUN and meta["vocab_size"] == 30 and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][key])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data, monkeypatch):
    import visdial_lg.training.loop as train_module

    calls = {"n": 0}
    real_to_device = train_module.batch_to

    def poisoned(batch, device, non_blocking=False):  # epoch 2 (2 steps an epoch), step 2 gets NaN features
        calls["n"] += 1
        batch = real_to_device(batch, device, non_blocking)
        if calls["n"] == 4:
            batch["img_feat"] = torch.full_like(batch["img_feat"], float("nan"))
        return batch

    monkeypatch.setattr(train_module, "batch_to", poisoned)
    out = tmp_path / "run"
    # log_every 5: the check is deferred to the epoch's end, the message still names step 2.
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2 \(global step 4\).*last.pt \(after epoch 1\)"):
        train(RUN, data, out, tiny_config(epochs=3, log_every=5), device="cpu")
    kept = load_checkpoint(out / RESUME_NAME)
    assert kept["epoch"] == 1 and not (out / FINAL_NAME).exists()
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


def test_changed_config_does_not_resume(tmp_path, data, capsys):
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train(RUN, data, out, tiny_config(epochs=2), device="cpu", on_epoch_end=_kill_after(1))
    train(RUN, data, out, tiny_config(epochs=1, lr=2e-3), device="cpu")
    assert "(config train.epochs, train.lr changed): moved to last.stale-1.pt, training from scratch" in capsys.readouterr().out
    assert [r["epoch"] for r in _read_log(out / "log.csv")] == ["1", "1"]


def _copy_inputs(data, folder, **changes) -> TrainInputs:
    folder.mkdir()
    copies = {}
    for name in ("tokens", "features", "vocab"):
        copies[name] = folder / Path(getattr(data, name)).name
        shutil.copyfile(getattr(data, name), copies[name])
    return TrainInputs(**copies)


def test_resume_refuses_a_state_of_other_inputs(tmp_path, data, capsys):
    """Kill after epoch 1, re-extract the features with another min_size, rerun: the state of the
    old features is kept aside, the run starts over and ends as a straight run on the new ones."""
    inputs = _copy_inputs(data, tmp_path / "inputs")
    with h5py.File(inputs.features, "r+") as f:
        f.attrs["extractor_config"] = json.dumps({"max_boxes": 6, "min_size": 600})
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train(RUN, inputs, out, tiny_config(epochs=2), device="cpu", on_epoch_end=_kill_after(1))
    with h5py.File(inputs.features, "r+") as f:
        f.attrs["extractor_config"] = json.dumps({"max_boxes": 6, "min_size": 400})
    capsys.readouterr()
    resumed = train(RUN, inputs, out, tiny_config(epochs=2), device="cpu")
    printed = capsys.readouterr().out
    assert "resuming" not in printed
    assert re.search(r"last.pt does not fit this training \(features \(extractor_config.min_size: 600 → 400\)\): "
                     r"moved to last.stale-1.pt, training from scratch", printed)
    assert load_checkpoint(out / "last.stale-1.pt")["epoch"] == 1  # kept, not lost
    straight = train(RUN, inputs, tmp_path / "straight", tiny_config(epochs=2), device="cpu")
    a, b = load_checkpoint(straight)["model"], load_checkpoint(resumed)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert load_checkpoint(resumed)["fingerprint"]["features"] == load_checkpoint(straight)["fingerprint"]["features"]


@pytest.mark.parametrize("changed, named", [("tokens", "tokens file content"), ("vocab", "vocab file content")])
def test_resume_refuses_changed_tokens_or_vocabulary(tmp_path, data, capsys, changed, named):
    inputs = _copy_inputs(data, tmp_path / "inputs")
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train(RUN, inputs, out, tiny_config(epochs=2), device="cpu", on_epoch_end=_kill_after(1))
    path = getattr(inputs, changed)
    if changed == "tokens":  # same sizes, other content: a re-tokenization
        with h5py.File(path, "r+") as f:
            f["question_tokens"][0, 0] = f["question_tokens"][0, 0] % 29 + 1
    else:  # same vocabulary size, another word order
        words = json.loads(path.read_text())
        path.write_text(json.dumps(words, indent=2))
    capsys.readouterr()
    train(RUN, inputs, out, tiny_config(epochs=2), device="cpu")
    printed = capsys.readouterr().out
    assert f"({named})" in printed and "training from scratch" in printed and "resuming" not in printed
    assert (out / "last.stale-1.pt").exists()


def test_a_state_without_fingerprint_is_not_resumed(tmp_path, data, capsys):
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train(RUN, data, out, tiny_config(epochs=2), device="cpu", on_epoch_end=_kill_after(1))
    state = load_checkpoint(out / RESUME_NAME)
    del state["fingerprint"]  # written before fingerprints were recorded
    torch.save(state, out / RESUME_NAME)
    capsys.readouterr()
    train(RUN, data, out, tiny_config(epochs=2), device="cpu")
    assert "(it records no input fingerprint)" in capsys.readouterr().out


def test_bad_inputs_name_the_culprit(tmp_path, data):
    bad_glove = tmp_path / "glove.pt"
    torch.save({"weight": torch.zeros(31, 8)}, bad_glove)
    inputs = TrainInputs(data.tokens, data.features, data.vocab, glove=bad_glove)
    with pytest.raises(InputFormatError, match=r"glove.pt: embedding of shape \(31, 8\)"):
        train(RUN, inputs, tmp_path / "run", tiny_config(epochs=1), device="cpu")
    corrupt = tmp_path / "run2"
    corrupt.mkdir()
    (corrupt / RESUME_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(InputFormatError, match=r"last.pt.*delete it to train from scratch"):
        train(RUN, data, corrupt, tiny_config(epochs=1), device="cpu")



def test_glove_file_initialises_the_shared_embedding(tmp_path, data):
    from helpers.tiny_data import TINY_MODEL
    from visdial_lg.core.config import LGConfig, ModelConfig
    from visdial_lg.models.ltmi import build_model
    from visdial_lg.core.runs import parse_run_id
    from visdial_lg.training.loop import _init_embedding

    model = build_model(parse_run_id(RUN), 30, ModelConfig.from_dict(TINY_MODEL, "model"), LGConfig.from_dict({}, "lg"))
    weight = torch.arange(30 * 8, dtype=torch.float32).reshape(30, 8)
    torch.save({"weight": weight}, tmp_path / "glove.pt")
    _init_embedding(model, tmp_path / "glove.pt")
    assert torch.equal(model.embedding.weight.detach(), weight)


def test_cli_reports_bad_input_in_one_line(tmp_path, data, capsys):
    from visdial_lg.cli import main

    common = ["--tokens", str(data.tokens), "--features", str(data.features), "--vocab", str(data.vocab),
              "--out-dir", str(tmp_path / "run"), "--device", "cpu"]
    assert main(["train", "--run", "v1.0-ltmi-bogus", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("visdial-lg: error: bad run id 'v1.0-ltmi-bogus'") and "\n" not in err
    assert main(["train", "--run-id", RUN, *common, "--config", '{"train": {"batchsize": 3}}']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("visdial-lg: error: unknown config key 'train.batchsize'") and "\n" not in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_ctrl_c_says_what_is_kept(tmp_path, data, capsys, monkeypatch):
    import visdial_lg.training.loop as train_module
    from visdial_lg.cli import main

    def interrupt(done):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt, match=r"last.pt \(after epoch 1\) is kept and resumes"):
        train(RUN, data, out, tiny_config(epochs=2), device="cpu", on_epoch_end=interrupt)

    def ctrl_c_in_first_step(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_step", ctrl_c_in_first_step)
    common = ["--tokens", str(data.tokens), "--features", str(data.features), "--vocab", str(data.vocab),
              "--device", "cpu", "--config", json.dumps(as_dict(tiny_config(epochs=2)))]
    assert main(["train", "--run", RUN, *common, "--out-dir", str(tmp_path / "fresh")]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "visdial-lg: interrupted; nothing was saved yet (stopped in the first epoch): the next run starts over")


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.getcwd, ())


def test_checkpoint_or_glove_with_code_is_refused_in_one_line_of_ours(tmp_path, data):
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "weight": _RunsCode()}, evil)
    expected = r"holds pickled code or objects other than tensors/arrays \(posix.getcwd\); refusing to load it"
    with pytest.raises(InputFormatError, match=rf"^checkpoint {evil} {expected}") as error:
        load_checkpoint(evil)
    assert "weights_only=False" not in str(error.value)
    inputs = TrainInputs(data.tokens, data.features, data.vocab, glove=evil)
    with pytest.raises(InputFormatError, match=rf"^GloVe embedding {evil} {expected}"):
        train(RUN, inputs, tmp_path / "run", tiny_config(epochs=1), device="cpu")
