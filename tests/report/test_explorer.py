"""The dialog explorer's folder on tiny trained runs: what data.js holds, checked against the
saved ranks, the tokens and the models' own distributions over regions (the page itself is
tested in a real browser: tests/workflow/test_explorer_browser.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from helpers.images import images_of_features
from helpers.tiny_runs import DIALOGS, LG, LTMI, evaluated, tiny_runs
from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.human import answer_text, saved_ranks
from visdial_lg.report.explorer import (PAGE_FILES, ExplorerInputs, ExplorerSettings, build_explorer, read_data,
                                        sample_dialogs)
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.training.checkpoint import load_trained_model
from visdial_lg.training.dataset import VisDialDataset, collate


@pytest.fixture(scope="module")
def inputs(runs_base, tmp_path_factory):  # noqa: F811
    runs = tiny_runs(runs_base)
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    images = images_of_features(runs["features"], tmp_path_factory.mktemp("images"))
    return ExplorerInputs({"ltmi": runs["checkpoints"][LTMI], "lg": runs["checkpoints"][LG]},
                          {"ltmi": runs_base / LTMI / "val_prior.json", "lg": runs_base / LG / "val_prior.json"},
                          runs["val"], runs["features"], runs["vocab"], [images])


SETTINGS = ExplorerSettings(dialogs=5, top_regions=3, top_options=4, beam_width=2)


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("explorer")
    returned = build_explorer(inputs, SETTINGS, out)
    return out, returned


def test_the_folder_holds_the_page_its_data_and_the_sampled_images(built):
    out, returned = built
    assert all((out / name).is_file() for name in PAGE_FILES)
    data = read_data(out)
    assert data == returned
    assert len(data["dialogs"]) == DIALOGS  # all of them: fewer than asked for
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        d["image"].split("/")[1] for d in data["dialogs"])
    assert 'src="data.js"' in (out / "index.html").read_text()


def test_each_round_shows_the_saved_ranks_and_the_tokens(inputs, built):
    data = read_data(built[0])
    vocab = Vocabulary.load(inputs.vocab)
    with h5py.File(inputs.tokens) as f:
        q_pool, q_len, a_pool, a_len = f["question_tokens"][:], f["question_len"][:], f["answer_tokens"][:], \
            f["answer_len"][:]
        questions, answers, options, gt = f["question"][:], f["answer"][:], f["answer_options"][:], f["gt_index"][:]
        image_ids = f["image_id"][:].tolist()
    ranks = {name: saved_ranks(path)[1] for name, path in inputs.evaluations.items()}
    for dialog in data["dialogs"]:
        d = image_ids.index(dialog["image_id"])
        assert dialog["dialog"] == d and len(dialog["rounds"]) == 10
        for r, round_ in enumerate(dialog["rounds"]):
            assert round_["question"] == answer_text(vocab, q_pool, q_len, questions[d, r])
            assert round_["answer"] == answer_text(vocab, a_pool, a_len, answers[d, r])
            for name, rank in ranks.items():
                shown = round_["models"][name]
                assert shown["gt_rank"] == rank[d, r, gt[d, r]]
                best = [answer_text(vocab, a_pool, a_len, options[d, r, o]) for o in np.argsort(rank[d, r])[:4]]
                assert shown["top_options"] == best
                assert isinstance(shown["generated"], str)
            assert round_["models_disagree"] == (ranks["ltmi"][d, r].argmin() != ranks["lg"][d, r].argmin())


def test_the_regions_are_each_models_top_weights(inputs, built):
    data = read_data(built[0])
    models = {name: load_trained_model(path)[0] for name, path in inputs.checkpoints.items()}
    dataset = VisDialDataset(inputs.tokens, inputs.features, feature_dim=models["lg"].feature_dim)
    for dialog in data["dialogs"]:
        batch = collate([dataset[dialog["dialog"]]])
        valid = int(batch["num_boxes"][0])
        assert len(dialog["boxes"]) == valid
        assert np.allclose(dialog["boxes"], batch["boxes"][0, :valid].numpy(), atol=0.05)
        with torch.no_grad():
            expected = {"ltmi": models["ltmi"].region_distributions(batch)["prior"],
                        "lg_prior": models["lg"].region_distributions(batch)["prior"],
                        "lg_posterior": models["lg"].region_distributions(batch)["posterior"]}
        for r, round_ in enumerate(dialog["rounds"]):
            for key, weights in expected.items():
                top = round_["regions"][key]
                w = weights[0, r, :valid]
                assert [k for k, _ in top] == w.topk(3).indices.tolist()
                assert [v for _, v in top] == pytest.approx(w.topk(3).values.tolist(), abs=1e-4)
            prior, posterior = round_["regions"]["lg_prior"][0][0], round_["regions"]["lg_posterior"][0][0]
            assert round_["prior_posterior_disagree"] == (prior != posterior)


def test_a_rebuild_keeps_only_the_images_it_names(inputs, tmp_path):
    stale = tmp_path / "images" / "999.jpg"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    build_explorer(inputs, ExplorerSettings(dialogs=1, top_regions=2, top_options=2, beam_width=1), tmp_path)
    data = read_data(tmp_path)
    assert len(data["dialogs"]) == 1 and not stale.exists()
    assert [p.name for p in (tmp_path / "images").iterdir()] == [data["dialogs"][0]["image"].split("/")[1]]
    assert data["dialogs"][0]["dialog"] == sample_dialogs(DIALOGS, 1, seed=0)[0]


def test_a_missing_image_is_named(inputs, tmp_path):
    empty = tmp_path / "no_images"
    empty.mkdir()
    bad = ExplorerInputs(inputs.checkpoints, inputs.evaluations, inputs.tokens, inputs.features, inputs.vocab, [empty])
    with pytest.raises(InputFormatError, match=r"image 10[01] \(a sampled val dialog\) is in none of"):
        build_explorer(bad, SETTINGS, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked
