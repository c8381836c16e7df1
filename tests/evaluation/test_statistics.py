"""Bootstrap intervals, paired tests and seed tests of the VisDial metrics (resampling over dialogs)."""

import math

import numpy as np
import pytest
import torch

from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.metrics import ndcg, ndcg_per_row, scores_to_ranks, sparse_metrics
from visdial_lg.evaluation.statistics import (
    METRICS,
    PerDialog,
    bootstrap_interval,
    load_per_dialog,
    metric_value,
    paired_comparison,
    seed_test,
    wilson_interval,
)

SPARSE = ("mrr", "r1", "r5", "r10", "mean")


def random_run(dialogs=200, rounds=10, seed=0, unscored=0.1) -> PerDialog:
    """Ranks 1..99 in every round, a share of rounds not scored; an NDCG for most dialogs.
    Which rounds are scored and which dialogs have an NDCG does not depend on the seed."""
    rng, layout = np.random.default_rng(seed), np.random.default_rng(12345)
    gt_rank = rng.integers(1, 100, size=(dialogs, rounds))
    gt_rank[layout.random((dialogs, rounds)) < unscored] = 0
    ndcg_values = rng.random(dialogs)
    ndcg_values[layout.random(dialogs) < 0.2] = np.nan
    return PerDialog(image_id=np.arange(1000, 1000 + dialogs), gt_rank=gt_rank, ndcg=ndcg_values)


def constant_run(rank=3, dialogs=50, rounds=10, ndcg_value=0.5) -> PerDialog:
    return PerDialog(
        image_id=np.arange(dialogs),
        gt_rank=np.full((dialogs, rounds), rank),
        ndcg=np.full(dialogs, ndcg_value),
    )


def shifted(run: PerDialog, by: int = 1) -> PerDialog:
    """The same run with every scored round's ground truth ranked `by` lower."""
    return PerDialog(run.image_id, np.where(run.gt_rank > 0, run.gt_rank + by, 0), run.ndcg)


# ----------------------------------------------------------------- metric value


def test_metric_value_equals_the_official_metrics():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(30, 10, 100, generator=g)  # [D, R, O]
    gt_index = torch.randint(0, 100, (30, 10), generator=g)
    gt_index[torch.rand(30, 10, generator=g) < 0.2] = -1  # not scored
    ranks = scores_to_ranks(scores)
    gt_rank = ranks.gather(-1, gt_index.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (gt_index >= 0)  # [D, R]
    dense_scores = torch.randn(30, 100, generator=g)
    relevance = torch.randint(0, 3, (30, 100), generator=g).float() / 2
    relevance[::4] = 0  # dialogs without a dense annotation
    has_ndcg = (relevance != 0).any(-1)
    per_dialog_ndcg = torch.full((30,), math.nan, dtype=torch.float64)
    per_dialog_ndcg[has_ndcg] = ndcg_per_row(dense_scores, relevance)
    run = PerDialog(np.arange(30), gt_rank.numpy(), per_dialog_ndcg.numpy())

    official = sparse_metrics(ranks, gt_index)
    for metric in SPARSE:
        assert metric_value([run], metric) == pytest.approx(official[metric], rel=1e-12)
    assert metric_value([run], "ndcg") == pytest.approx(ndcg(dense_scores, relevance)["ndcg"], rel=1e-12)


def test_metric_value_by_hand_and_averaged_over_runs():
    run = PerDialog(np.arange(2), np.array([[1, 4, 0], [10, 0, 0]]), np.array([0.5, np.nan]))
    assert metric_value([run], "mean") == pytest.approx(5.0)
    assert metric_value([run], "r1") == pytest.approx(1 / 3)
    assert metric_value([run], "r5") == pytest.approx(2 / 3)
    assert metric_value([run], "r10") == pytest.approx(1.0)
    assert metric_value([run], "mrr") == pytest.approx((1 + 1 / 4 + 1 / 10) / 3)
    assert metric_value([run], "ndcg") == 0.5
    assert metric_value([run, shifted(run, 2)], "mean") == pytest.approx(6.0)


def test_metric_value_is_nan_where_undefined():
    test_split = PerDialog(np.arange(3), np.zeros((3, 1), dtype=int), np.full(3, np.nan))
    for metric in METRICS:
        assert math.isnan(metric_value([test_split], metric))
        assert all(math.isnan(x) for x in bootstrap_interval([test_split], metric, samples=10))


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="unknown metric 'map'"):
        metric_value([constant_run()], "map")


# ------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("metric", METRICS)
def test_bootstrap_of_a_constant_is_a_point(metric):
    run = constant_run(rank=3)
    value = metric_value([run], metric)
    assert value == pytest.approx({"ndcg": 0.5, "mrr": 1 / 3, "r1": 0, "r5": 1, "r10": 1, "mean": 3}[metric])
    lo, hi = bootstrap_interval([run], metric, samples=200)
    assert lo == pytest.approx(value, rel=1e-12, abs=1e-15) and hi == pytest.approx(value, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("metric", METRICS)
def test_bootstrap_interval_contains_the_value_and_is_seeded(metric):
    runs = [random_run(seed=1), random_run(seed=2)]
    value = metric_value(runs, metric)
    lo, hi = bootstrap_interval(runs, metric, seed=5)
    assert lo < value < hi
    assert bootstrap_interval(runs, metric, seed=5) == (lo, hi)
    assert bootstrap_interval(runs, metric, seed=6) != (lo, hi)
    narrower = bootstrap_interval(runs, metric, seed=5, level=0.5)
    assert lo < narrower[0] < narrower[1] < hi


def test_bootstrap_averages_over_runs():
    # two seeds at constant ranks 1 and 3: every resample's average over the seeds is 2
    runs = [constant_run(rank=1), constant_run(rank=3)]
    assert metric_value(runs, "mean") == 2.0
    assert bootstrap_interval(runs, "mean") == (2.0, 2.0)
    assert bootstrap_interval(runs, "r1") == (0.5, 0.5)
    # a run repeated is the run itself (the same dialogs are drawn for each copy)
    run = random_run(seed=3)
    assert bootstrap_interval([run, run], "mrr") == pytest.approx(bootstrap_interval([run], "mrr"), rel=1e-12)


def test_bootstrap_skips_resamples_where_the_metric_is_undefined():
    # only dialog 0 has a scored round: about a third of the resamples miss it
    gt_rank = np.zeros((20, 10), dtype=int)
    gt_rank[0, 3] = 4
    run = PerDialog(np.arange(20), gt_rank, np.full(20, np.nan))
    assert bootstrap_interval([run], "mean", samples=100) == (4.0, 4.0)


def test_bootstrap_rejects_runs_on_other_dialogs():
    run = random_run(seed=1)
    other = PerDialog(run.image_id + 1, run.gt_rank, run.ndcg)
    with pytest.raises(InputFormatError, match="run 1 and run 0 .* image ids differ"):
        bootstrap_interval([run, other], "mrr")


# ---------------------------------------------------------------- paired test


@pytest.mark.parametrize("metric", METRICS)
def test_paired_comparison_of_identical_data(metric):
    run = random_run(seed=4)
    result = paired_comparison([run], [run], metric, samples=200)
    assert result["diff"] == 0 and result["lo"] == 0 and result["hi"] == 0 and result["p"] == 1.0
    assert result["dialogs"] == (np.isfinite(run.ndcg).sum() if metric == "ndcg" else (run.gt_rank > 0).any(1).sum())


def test_paired_comparison_finds_a_planted_shift_of_one_rank():
    a = random_run(dialogs=200, rounds=10, seed=7, unscored=0.0)
    b = shifted(a)  # every ground truth one rank worse
    mean = paired_comparison([a], [b], "mean")
    assert mean["diff"] == -1.0
    assert mean["lo"] < 0 and mean["hi"] < 0 and mean["p"] < 0.01 and mean["dialogs"] == 200
    mrr = paired_comparison([a], [b], "mrr")
    assert mrr["diff"] > 0 and mrr["lo"] > 0 and mrr["p"] < 0.01


def test_paired_comparison_averages_each_rows_seeds():
    a = random_run(seed=8)
    result = paired_comparison([a, shifted(a, 2)], [shifted(a, 1)], "mean")
    assert result["diff"] == pytest.approx(0.0, abs=1e-12) and result["p"] == 1.0


def test_paired_comparison_leaves_out_dialogs_without_a_value():
    a = random_run(dialogs=40, seed=9)
    a.gt_rank[:5] = 0
    result = paired_comparison([a], [shifted(a)], "r10", samples=100)
    assert result["dialogs"] == 35


def test_paired_comparison_with_fewer_than_two_dialogs_has_no_p():
    one = constant_run(dialogs=1)
    assert math.isnan(paired_comparison([one], [shifted(one)], "mean", samples=10)["p"])


def test_paired_comparison_needs_the_same_dialogs_and_rounds():
    a = random_run(seed=10)
    other_dialogs = PerDialog(a.image_id[::-1].copy(), a.gt_rank, a.ndcg)
    with pytest.raises(InputFormatError, match=r"b\[0\] and a\[0\] .* image ids differ"):
        paired_comparison([a], [other_dialogs], "mrr")
    fewer_rounds = a.gt_rank.copy()
    fewer_rounds[0, fewer_rounds[0] > 0] = 0
    with pytest.raises(InputFormatError, match=r"b\[0\] and a\[0\] differ in their scored rounds"):
        paired_comparison([a], [PerDialog(a.image_id, fewer_rounds, a.ndcg)], "r1")
    fewer_ndcg = a.ndcg.copy()
    fewer_ndcg[np.isfinite(fewer_ndcg).argmax()] = np.nan
    with pytest.raises(InputFormatError, match=r"a\[1\] and a\[0\] differ in their dialogs with an NDCG"):
        paired_comparison([a, PerDialog(a.image_id, a.gt_rank, fewer_ndcg)], [a], "ndcg")
    # the NDCG comparison does not look at the scored rounds, nor the sparse ones at the NDCG
    paired_comparison([a], [PerDialog(a.image_id, fewer_rounds, a.ndcg)], "ndcg", samples=10)
    paired_comparison([a], [PerDialog(a.image_id, a.gt_rank, fewer_ndcg)], "mean", samples=10)


# ------------------------------------------------------------------ seed test


def test_seed_test():
    assert seed_test([0.6, 0.6, 0.6], [0.6, 0.6]) == 1.0
    assert math.isnan(seed_test([0.6], [0.5, 0.55]))
    assert math.isnan(seed_test([0.6, 0.61], []))
    assert seed_test([0.600, 0.610, 0.605], [0.500, 0.510, 0.505]) < 0.01
    assert seed_test([0.60, 0.62, 0.58], [0.61, 0.59, 0.60]) > 0.5


# ------------------------------------------------------------------- Wilson


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.959964 (z² = 3.841459): centre = (0.8 + z²/20) / (1 + z²/10) = 0.992073 / 1.384146
    # = 0.716741; half = z / 1.384146 · sqrt(0.8·0.2/10 + z²/400) = 1.959964 · 0.160011 / 1.384146
    # = 0.226577; interval 0.490164 to 0.943318
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and 0.65 < lo < 1
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    narrower = wilson_interval(8, 10, level=0.5)
    assert 0.4902 < narrower[0] < 0.8 < narrower[1] < 0.9433


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="hits=11, n=10"):
        wilson_interval(11, 10)


# ---------------------------------------------------------------------- loading


def test_load_per_dialog_round_trips(tmp_path):
    run = random_run(dialogs=12, seed=11)
    path = tmp_path / "val_none.ranks.npz"
    np.savez(path, image_id=run.image_id, gen_gt_rank=run.gt_rank.astype(np.int16), gen_ndcg=run.ndcg,
             gen=np.zeros((12, 10, 100), dtype=np.int16))
    loaded = load_per_dialog(path, "gen")
    assert loaded.gt_rank.dtype == np.int64 and loaded.image_id.dtype == np.int64
    assert np.array_equal(loaded.image_id, run.image_id) and np.array_equal(loaded.gt_rank, run.gt_rank)
    assert np.array_equal(loaded.ndcg, run.ndcg, equal_nan=True)


def test_load_per_dialog_of_a_test_split_has_one_round(tmp_path):
    path = tmp_path / "test_none.ranks.npz"
    np.savez(path, image_id=np.arange(3), disc_gt_rank=np.array([2, 0, 7]), disc_ndcg=np.full(3, np.nan))
    loaded = load_per_dialog(path, "disc")
    assert loaded.gt_rank.shape == (3, 1) and metric_value([loaded], "mean") == 4.5


def test_load_per_dialog_of_an_older_file_names_the_key(tmp_path):
    path = tmp_path / "val_none.ranks.npz"
    np.savez(path, image_id=np.arange(3), gen=np.zeros((3, 10, 100), dtype=np.int16))
    with pytest.raises(InputFormatError) as error:
        load_per_dialog(path, "gen")
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "'gen_gt_rank'" in message
    assert "re-run the evaluation" in message
    np.savez(path, image_id=np.arange(3), gen_gt_rank=np.ones((3, 10), dtype=int))
    with pytest.raises(InputFormatError, match="'gen_ndcg'"):
        load_per_dialog(path, "gen")
    with pytest.raises(InputFormatError, match="'disc_gt_rank'"):
        load_per_dialog(path, "disc")


def test_load_per_dialog_rejects_missing_and_malformed_files(tmp_path):
    with pytest.raises(InputFormatError, match="no such ranks file"):
        load_per_dialog(tmp_path / "absent.ranks.npz", "gen")
    path = tmp_path / "bad.ranks.npz"
    np.savez(path, image_id=np.arange(3), gen_gt_rank=np.ones((4, 10), dtype=int), gen_ndcg=np.zeros(3))
    with pytest.raises(InputFormatError, match="shapes do not agree"):
        load_per_dialog(path, "gen")
    path.write_text("not a zip")
    with pytest.raises(InputFormatError, match="not a readable"):
        load_per_dialog(path, "gen")
