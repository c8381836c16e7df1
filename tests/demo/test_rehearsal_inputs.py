"""The rehearsal's inputs (`python -m visdial_lg.demo.rehearsal`): the real downloads' layout,
byte-identical reruns, a weights pickle the project's loader reads as the real file, a GloVe
file covering the dataset, and an overlay that changes nothing of config.yaml but inputs,
epochs and the CPU extraction batch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from visdial_lg.core.config import FeaturesConfig, load_config, load_yaml
from visdial_lg.core.files import sha256_of
from visdial_lg.demo import rehearsal
from visdial_lg.demo.rehearsal import Sizes, glove_vector, write_rehearsal
from visdial_lg.features.model import build_detector
from visdial_lg.text.visdial import load_visdial
from visdial_lg.text.vocab import Vocabulary, build_vocabulary, read_glove

SMALL = Sizes(images_train2014=2, images_val2014=1, images_val2018=1, images_test2018=1,
              image_width=96, image_height=72)


def _small_args(sizes: Sizes) -> list[str]:
    return [arg for field, value in vars(sizes).items() for arg in (f"--{field.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """One rehearsal folder, written through the command line."""
    out = tmp_path_factory.mktemp("rehearsal") / "inputs"
    assert rehearsal.main(["--out", str(out), *_small_args(SMALL)]) == 0
    return out


def _real_input_names(repo) -> set[str]:
    """The keys of REAL_INPUTS in workflow/rules/common.smk (the names `local:` accepts)."""
    text = (repo / "workflow/rules/common.smk").read_text()
    block = re.search(r"^REAL_INPUTS = \{\n(.*?)^\}", text, flags=re.M | re.S).group(1)
    return set(re.findall(r'^\s+"([\w.]+)":', block, flags=re.M))


def test_every_input_is_given_in_the_real_layout(inputs, repo):
    local = load_yaml(inputs / rehearsal.OVERLAY)["local"]
    assert set(local) == _real_input_names(repo)
    for name, path in local.items():
        assert Path(path).is_absolute() and Path(path).exists(), name
    assert local["images_train2014"].endswith("/train2014")
    assert local["images_val2018"].endswith("/VisualDialog_val2018")
    assert local["coco_instances_val2014"].endswith("/annotations/instances_val2014.json")
    assert local["glove"].endswith("/glove.840B.300d.txt")
    assert sorted(p.name for p in (inputs / "train2014").iterdir())[0].startswith("COCO_train2014_")
    assert len(list((inputs / "VisualDialog_val2018").glob("VisualDialog_val2018_*.jpg"))) == 1
    # only the real downloads' files: none of the demo's own (region boxes, grounding, test answers)
    names = {p.name for p in inputs.rglob("*")}
    assert not names & {"region_boxes.json", "grounding.json", "visdial_1.0_test_answers.json", ".demo"}
    manifest = json.loads((inputs / rehearsal.MANIFEST).read_text())
    files = {p.relative_to(inputs).as_posix() for p in inputs.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {rehearsal.MANIFEST, rehearsal.OVERLAY}


def test_same_arguments_give_the_same_bytes_and_a_rerun_keeps_the_folder(inputs, tmp_path):
    again = tmp_path / "again"
    write_rehearsal(again, SMALL)
    first, second = (json.loads((d / rehearsal.MANIFEST).read_text()) for d in (inputs, again))
    assert first == second
    weights = again / rehearsal.WEIGHTS_FILE
    stamp = weights.stat().st_mtime_ns
    write_rehearsal(again, SMALL)  # complete and of the same sizes: left as it is
    assert weights.stat().st_mtime_ns == stamp
    other = tmp_path / "other"
    write_rehearsal(other, Sizes(**{**vars(SMALL), "seed": 1}))
    third = json.loads((other / rehearsal.MANIFEST).read_text())["files"]
    for name in (rehearsal.WEIGHTS_FILE, rehearsal.GLOVE_FILE, "visdial_1.0_train.json"):
        assert third[name]["sha256"] != first["files"][name]["sha256"], name


def test_weights_pickle_loads_through_the_project_loader_as_the_real_file(inputs, repo, tmp_path):
    path = inputs / rehearsal.WEIGHTS_FILE
    features = FeaturesConfig.from_dict(load_yaml(repo / "config.yaml")["features"])
    assert (features.depth, features.min_size, features.max_size) == (101, 600, 1000)
    loaded = build_detector(features, str(path), sha256=sha256_of(path))
    assert loaded.weights_sha256 == sha256_of(path)
    random = build_detector(features, "random", seed=SMALL.seed)
    state = loaded.state_dict()
    for name, value in random.state_dict().items():  # the file is the seeded random init...
        if name.startswith("roi_heads.box_predictor.bbox_pred."):  # ...but background deltas (never used)
            state[name], value = state[name][4:], value[4:]
        assert torch.allclose(state[name], value, rtol=1e-5, atol=1e-8), name
    # The download lands as resources/downloads/detector_weights, without a suffix.
    downloaded = tmp_path / "detector_weights"
    downloaded.symlink_to(path)
    head = "proposal_generator.rpn_head.objectness_logits.weight"
    assert torch.equal(build_detector(features, str(downloaded)).state_dict()[head], loaded.state_dict()[head])


def test_glove_file_parses_and_covers_every_word_of_the_dataset(inputs):
    path = inputs / rehearsal.GLOVE_FILE
    lines = path.read_text().splitlines()
    words = [line.rsplit(" ", 300)[0] for line in lines]
    assert all(len(line.rsplit(" ", 300)) == 301 for line in lines)
    assert set(rehearsal.EXTRA_WORDS) <= set(words) and len(words) == len(set(words))
    for name in ("visdial_1.0_train.json", "visdial_0.9_train.json"):
        version = "v" + name.split("_")[1]
        vocab = build_vocabulary(load_visdial(inputs / name, version, "train"), min_count=1)
        found = read_glove(path, vocab)
        assert len(found) == len(vocab) - len(Vocabulary.SPECIALS)  # every word but <PAD> <S> </S> <UNK>
        for index, vector in found.items():  # "red herring" (line 1) is not the vector of "red"
            assert np.allclose(vector, glove_vector(vocab.words[index], SMALL.seed), atol=5e-6)
        assert not set(rehearsal.EXTRA_WORDS) & set(vocab.words)


def test_overlay_changes_only_inputs_epochs_and_the_cpu_extraction_batch(inputs, repo):
    real = load_config(repo / "config.yaml")
    merged = load_config(repo / "config.yaml", inputs / rehearsal.OVERLAY)

    def flat(config, prefix=""):
        for key, value in config.items():
            if isinstance(value, dict) and key != "local":
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    real, merged = dict(flat(real)), dict(flat(merged))
    changed = {key for key in real.keys() | merged.keys() if real.get(key) != merged.get(key)}
    assert changed == {"local", "train.epochs", "features.batch_size"}
    assert merged["train.epochs"] == 1 and merged["features.weights"] == "download"
    paper = {"model.hidden": 512, "model.lstm_layers": 2, "features.depth": 101, "features.post_nms_topk": 300,
             "features.max_boxes": 100, "features.given_boxes": None, "dataset": "visdial", "text.glove": True}
    assert {key: merged[key] for key in paper} == paper
