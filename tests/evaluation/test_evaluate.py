"""`visdial-lg evaluate` on tiny trained checkpoints: val metrics (+ NDCG), the test split's
EvalAI submission, held-back test answers scored as the server would, grounding variants,
saved ranks, on the two tiny runs of tests/helpers/tiny_runs.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from helpers.synthetic import O, R
from helpers.tiny_runs import DIALOGS, LG, LTMI, TEST_ROUNDS, evaluated, tiny_runs
from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.evaluate import EvalInputs, evaluate, load_test_answers, ranks_file
from visdial_lg.evaluation.metrics import ndcg

def _in_range(metrics: dict) -> None:
    for key in ("r1", "r5", "r10", "mrr"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert 1.0 <= metrics["mean"] <= O
    assert metrics["r1"] <= metrics["r5"] <= metrics["r10"]
    assert metrics["mrr"] >= metrics["r1"]


# ----------------------------------------------------------------------------- val


def test_val_metrics_of_every_decoder_with_ndcg(runs_base):
    result = evaluated(runs_base, LG)
    assert result["run"] == LG and result["split"] == "val" and result["grounding"] == "prior"
    assert result["primary"] == "gen" and set(result["decoders"]) == {"disc", "gen", "avg"}
    with h5py.File(tiny_runs(runs_base)["val"]) as f:
        dense_round, relevance = f["dense_round"][:], torch.from_numpy(f["gt_relevance"][:])
    with np.load(ranks_file(runs_base / LG / "val_prior.json")) as ranks:
        for name, metrics in result["decoders"].items():
            assert metrics["count"] == DIALOGS * R  # every round of every dialog
            _in_range(metrics)
            # by hand, from the saved ranks of the annotated round (1-based dense_round)
            annotated = ranks[name][np.arange(DIALOGS), dense_round - 1]  # [D, O]
            by_hand = ndcg(-torch.tensor(annotated, dtype=torch.float64), relevance)
            assert metrics["ndcg"] == pytest.approx(by_hand["ndcg"]) and metrics["ndcg_count"] == DIALOGS
            assert 0.0 <= metrics["ndcg"] <= 1.0
    assert len(result["checkpoint_sha256"]) == 64 and result["scored_by"] == "ground truth"


def test_val_ranks_are_saved_next_to_the_metrics(runs_base):
    result = evaluated(runs_base, LTMI)
    path = ranks_file(runs_base / LTMI / "val_prior.json")
    assert result["ranks"] == path.name
    with np.load(path) as ranks:
        assert set(ranks.files) == {"image_id", "gen", "gen_gt_rank", "gen_ndcg"}
        assert ranks["gen"].shape == (DIALOGS, R, O)
        assert (np.sort(ranks["gen"], axis=-1) == np.arange(1, O + 1)).all()  # a permutation per round
        with h5py.File(tiny_runs(runs_base)["val"]) as f:
            assert (ranks["image_id"] == f["image_id"][:]).all()
            gt_index = f["gt_index"][:]
        # what the statistics resample: each round's ground-truth rank and each dialog's NDCG
        gt_rank, per_dialog_ndcg = ranks["gen_gt_rank"], ranks["gen_ndcg"]
        assert gt_rank.shape == (DIALOGS, R) and per_dialog_ndcg.shape == (DIALOGS,)
        scored = gt_rank > 0
        expected = np.take_along_axis(ranks["gen"], np.clip(gt_index, 0, None)[..., None], -1)[..., 0]
        assert (gt_rank[scored] == expected[scored]).all() and scored.sum() == result["decoders"]["gen"]["count"]
        assert np.mean(1.0 / gt_rank[scored]) == pytest.approx(result["decoders"]["gen"]["mrr"])
        assert np.nanmean(per_dialog_ndcg) == pytest.approx(result["decoders"]["gen"]["ndcg"])


def test_ndcg_is_absent_without_dense_annotations(runs_base, tmp_path):
    runs = tiny_runs(runs_base)
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["tokens"], runs["features"], "val")
    result = evaluate(inputs, tmp_path / "val_prior.json", batch_size=2)
    assert "ndcg" not in result["decoders"]["gen"]


@pytest.mark.parametrize("variant", ["mean", "random", "oracle"])
def test_grounding_variants_reach_the_model(runs_base, variant, tmp_path, monkeypatch):
    """Each variant is what the model scores with; the oracle gets the regions matching the
    annotated boxes of the annotated round only."""
    from visdial_lg.models.ltmi import VisualDialogModel

    runs = tiny_runs(runs_base)
    oracle = None
    if variant == "oracle":  # round 1 of each image refers to its first two regions
        with h5py.File(runs["features"]) as f:
            entries = [{"image_id": int(i), "round_id": 1, "boxes": f["boxes"][n, :2].tolist()}
                       for n, i in enumerate(f["image_id"][:])]
        oracle = tmp_path / "grounding.json"
        oracle.write_text(json.dumps(entries))
    seen = []
    real_score = VisualDialogModel.score

    def spy(self, batch, grounding="prior", oracle_regions=None, generator=None):
        seen.append((grounding, oracle_regions))
        return real_score(self, batch, grounding, oracle_regions, generator)

    monkeypatch.setattr(VisualDialogModel, "score", spy)
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["val"], runs["features"], "val", grounding=variant,
                        oracle=oracle)
    result = evaluate(inputs, tmp_path / f"val_{variant}.json", batch_size=2)
    assert result["grounding"] == variant
    _in_range(result["decoders"]["gen"])
    assert [g for g, _ in seen] == [variant]  # one batch of two dialogs
    regions = seen[0][1]
    if variant == "oracle":
        assert result["oracle_annotations"] == "grounding.json"
        assert regions.shape == (DIALOGS, R, 6) and not regions[:, 1:].any()
        assert regions[:, 0, :2].all()  # the annotated regions themselves (IoU 1)
    else:
        assert regions is None


def test_random_variant_is_reproducible(runs_base, tmp_path):
    """The shuffle is seeded by the batch's image ids: a rerun ranks identically."""
    evaluated(runs_base, LTMI, grounding="random")
    runs = tiny_runs(runs_base)
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["val"], runs["features"], "val", grounding="random")
    evaluate(inputs, tmp_path / "val_random.json", batch_size=2)
    with np.load(ranks_file(runs_base / LTMI / "val_random.json")) as first, \
            np.load(ranks_file(tmp_path / "val_random.json")) as again:
        assert (first["gen"] == again["gen"]).all()


def test_oracle_without_annotations_is_refused(runs_base):
    runs = tiny_runs(runs_base)
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["val"], runs["features"], "val", grounding="oracle")
    with pytest.raises(InputFormatError, match="--oracle"):
        evaluate(inputs, runs_base / "unused.json")


# ---------------------------------------------------------------------------- test


def test_test_split_gives_the_evalai_submission(runs_base):
    result = evaluated(runs_base, LG, split="test")
    submission = json.loads(Path(result["submission"]).read_text())
    with h5py.File(tiny_runs(runs_base)["test"]) as f:
        image_ids = f["image_id"][:].tolist()
    assert [e["image_id"] for e in submission] == image_ids
    assert [e["round_id"] for e in submission] == TEST_ROUNDS  # round_id = num_rounds
    for entry in submission:
        assert set(entry) == {"image_id", "round_id", "ranks"}
        assert sorted(entry["ranks"]) == list(range(1, O + 1))
    with np.load(ranks_file(runs_base / LG / "test_prior.json")) as ranks:
        assert ranks["gen"].shape == (DIALOGS, O)  # the submission follows the primary decoder
        assert ranks["gen"].tolist() == [e["ranks"] for e in submission]


def test_held_back_test_answers_are_scored_as_the_server(runs_base):
    result = evaluated(runs_base, LG, split="test")
    assert result["scored_by"].startswith("held-back test answers")
    held_back = json.loads(tiny_runs(runs_base)["test_answers"].read_text())
    submission = json.loads(Path(result["submission"]).read_text())
    # by hand: the rank each submission gives the held-back answer
    gt_ranks = [entry["ranks"][answer["gt_index"]] for entry, answer in zip(submission, held_back)]
    gen = result["decoders"]["gen"]
    assert gen["count"] == DIALOGS
    assert gen["mean"] == pytest.approx(np.mean(gt_ranks))
    assert gen["mrr"] == pytest.approx(np.mean([1 / r for r in gt_ranks]))
    assert gen["r10"] == pytest.approx(np.mean([r <= 10 for r in gt_ranks]))
    relevance = torch.tensor([answer["gt_relevance"] for answer in held_back])
    by_hand = ndcg(-torch.tensor([entry["ranks"] for entry in submission], dtype=torch.float64), relevance)
    assert gen["ndcg"] == pytest.approx(by_hand["ndcg"]) and gen["ndcg_count"] == DIALOGS
    with np.load(ranks_file(runs_base / LG / "test_prior.json")) as ranks:  # what the statistics resample
        assert ranks["gen_gt_rank"].tolist() == gt_ranks
        assert np.mean(ranks["gen_ndcg"]) == pytest.approx(by_hand["ndcg"])


def test_test_without_answers_leaves_scoring_to_evalai(runs_base, tmp_path):
    runs = tiny_runs(runs_base)
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["test"], runs["features"], "test",
                        submission=tmp_path / "sub.json")
    result = evaluate(inputs, tmp_path / "test_prior.json", batch_size=2)
    assert result["decoders"] == {} and result["scored_by"].startswith("EvalAI")
    assert len(json.loads((tmp_path / "sub.json").read_text())) == DIALOGS
    assert json.loads((tmp_path / "test_prior.json").read_text())["submission"] == str(tmp_path / "sub.json")


@pytest.mark.parametrize("damage, culprit", [
    (lambda e: e.pop("gt_relevance"), "entry 0 is not"),
    (lambda e: e.update(gt_index=100), "gt_index in 0..99"),
    (lambda e: e.update(round_id=1), "is for round 1"),
])
def test_malformed_held_back_answers_name_the_culprit(runs_base, tmp_path, damage, culprit):
    runs = tiny_runs(runs_base)
    entries = json.loads(runs["test_answers"].read_text())
    damage(entries[0])
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(entries))
    inputs = EvalInputs(runs["checkpoints"][LTMI], runs["test"], runs["features"], "test", test_answers=path)
    with pytest.raises(InputFormatError, match=culprit) as error:
        evaluate(inputs, tmp_path / "out.json", batch_size=2)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.json").exists()


def test_metrics_json_is_strict_json(runs_base):
    evaluated(runs_base, LG)
    text = (runs_base / LG / "val_prior.json").read_text()
    assert "NaN" not in text and all(math.isfinite(v) for d in json.loads(text)["decoders"].values() for v in d.values())


def test_load_test_answers_reads_the_demo_layout(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([{"image_id": 5, "round_id": 4, "gt_index": 3, "gt_relevance": [0.0] * O}]))
    assert load_test_answers(path)[5]["round_id"] == 4
    path.write_text("{not json")
    with pytest.raises(InputFormatError, match="answers.json"):
        load_test_answers(path)
