"""Uncertainty of the VisDial metrics: bootstrap intervals, paired tests, seed tests.

Every resampling draws dialogs with replacement, never single rounds: the rounds of a
dialog share its image and history, so their outcomes are correlated and resampling
rounds would understate the variance. The seeds of one table row (and, in a paired
comparison, both models) are evaluated on the same dialogs, so each resample uses the
same drawn dialogs for all of them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from ..core.errors import InputFormatError

METRICS = ("ndcg", "mrr", "r1", "r5", "r10", "mean")

# the per-round quantity of each sparse metric, of ground-truth ranks r >= 1 (float64)
_ROUND_QUANTITY = {
    "r1": lambda r: r <= 1,
    "r5": lambda r: r <= 5,
    "r10": lambda r: r <= 10,
    "mrr": lambda r: 1.0 / r,
    "mean": lambda r: r,
}


@dataclass(frozen=True)
class PerDialog:
    """One evaluation of one decoder, per dialog."""

    image_id: np.ndarray  # [D] int64
    gt_rank: np.ndarray  # [D, R] int, rank of the ground-truth option (1 = best), 0 = round not scored
    ndcg: np.ndarray  # [D] float64, NDCG of the dialog's densely annotated round, NaN = none


def load_per_dialog(path: str | Path, decoder: str) -> PerDialog:
    """The per-dialog data of `decoder` ("gen", "disc") in an evaluation's `*.ranks.npz`."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: no such ranks file; run the evaluation first")
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise InputFormatError(f"{path}: not a readable numpy .npz file ({error})") from None
    wanted = {
        "image_id": "no dialog image ids",
        f"{decoder}_gt_rank": f"no per-round ground-truth ranks of decoder '{decoder}'",
        f"{decoder}_ndcg": f"no per-dialog NDCG of decoder '{decoder}'",
    }
    for key, missing in wanted.items():
        if key not in arrays:
            raise InputFormatError(f"{path}: {missing} (key '{key}'); the file predates them: re-run the evaluation")
    image_id = arrays["image_id"].astype(np.int64).reshape(-1)
    gt_rank = arrays[f"{decoder}_gt_rank"].astype(np.int64)
    ndcg = arrays[f"{decoder}_ndcg"].astype(np.float64)
    if gt_rank.ndim == 1:  # test split: only the last round of each dialog is scored
        gt_rank = gt_rank[:, None]
    if gt_rank.ndim != 2 or len(gt_rank) != len(image_id) or ndcg.shape != image_id.shape:
        raise InputFormatError(
            f"{path}: shapes do not agree: image_id {image_id.shape}, {decoder}_gt_rank "
            f"{arrays[f'{decoder}_gt_rank'].shape}, {decoder}_ndcg {ndcg.shape} (want [D], [D, R], [D])"
        )
    return PerDialog(image_id=image_id, gt_rank=gt_rank, ndcg=ndcg)


def metric_value(runs: Sequence[PerDialog], metric: str) -> float:
    """The official metric of each run, averaged over the runs; NaN where undefined
    (no scored round, resp. no dialog with an NDCG)."""
    sums, counts = _stacked_sums(runs, metric)
    return float(_ratio(sums.sum(0), counts.sum(0)).mean())


def bootstrap_interval(
    runs: Sequence[PerDialog], metric: str, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of `metric_value(runs, metric)` over `samples` resamples of the
    dialogs (the same resampled dialogs for every run); (nan, nan) where it is undefined."""
    if math.isnan(metric_value(runs, metric)):
        return math.nan, math.nan
    weights = _resample_weights(len(runs[0].image_id), samples, seed)
    return _percentile_interval(_resampled_values(runs, metric, weights), level)


def paired_comparison(
    a: Sequence[PerDialog],
    b: Sequence[PerDialog],
    metric: str,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Row `a` against row `b` (e.g. the seeds of LTMI-LG and of LTMI) on the same dialogs.

    Returns `{diff, lo, hi, p, dialogs}`: diff = metric_value(a) − metric_value(b); lo, hi =
    paired-bootstrap percentile interval of diff; p = two-sided paired t-test over the
    per-dialog values (mean of the per-round quantity over a dialog's scored rounds, or
    its NDCG; averaged over each row's runs); dialogs = number of dialogs in the test.
    """
    named = [(f"a[{i}]", run) for i, run in enumerate(a)] + [(f"b[{i}]", run) for i, run in enumerate(b)]
    _check_aligned(named, metric)
    diff = metric_value(a, metric) - metric_value(b, metric)
    if math.isnan(diff):
        lo, hi = math.nan, math.nan
    else:
        weights = _resample_weights(len(a[0].image_id), samples, seed)
        lo, hi = _percentile_interval(
            _resampled_values(a, metric, weights) - _resampled_values(b, metric, weights), level
        )
    per_dialog_a, per_dialog_b = (_ratio(*_stacked_sums(runs, metric)).mean(1) for runs in (a, b))
    valued = np.isfinite(per_dialog_a) & np.isfinite(per_dialog_b)
    per_dialog_a, per_dialog_b = per_dialog_a[valued], per_dialog_b[valued]
    dialogs = int(valued.sum())
    if dialogs < 2:
        p = math.nan
    elif np.allclose(per_dialog_a, per_dialog_b, rtol=1e-12, atol=1e-12):
        # no difference (up to rounding, e.g. of averaging seeds): ttest_rel would give 0/0 = NaN,
        # or a p-value of rounding noise
        p = 1.0
    else:
        with warnings.catch_warnings():  # near-constant differences warn of precision loss; p is still ~0
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(per_dialog_a, per_dialog_b).pvalue)
    return {"diff": diff, "lo": lo, "hi": hi, "p": p, "dialogs": dialogs}


def seed_test(a_values: Sequence[float], b_values: Sequence[float]) -> float:
    """Two-sided Welch t-test over the per-seed metric values of two rows: the p-value;
    NaN when either row has fewer than 2 values, 1.0 when all values are equal."""
    a_values, b_values = np.asarray(a_values, dtype=np.float64), np.asarray(b_values, dtype=np.float64)
    if len(a_values) < 2 or len(b_values) < 2:
        return math.nan
    if np.all(np.concatenate([a_values, b_values]) == a_values[0]):
        return 1.0  # ttest_ind gives 0/0 = NaN here
    with warnings.catch_warnings():  # nearly identical values warn of precision loss
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a_values, b_values, equal_var=False).pvalue)


def wilson_interval(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion hits / n; (nan, nan) for n = 0."""
    if not 0 <= hits <= n:
        raise ValueError(f"wilson_interval needs 0 <= hits <= n, got hits={hits}, n={n}")
    if n == 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + level / 2))
    share = hits / n
    scale = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# ------------------------------------------------------------------------- helpers


def _defined(run: PerDialog, metric: str) -> np.ndarray:
    """Where the metric has a per-round quantity: the scored rounds [D, R], or, for NDCG,
    the dialogs with a finite NDCG [D]."""
    if metric == "ndcg":
        return np.isfinite(run.ndcg)
    if metric not in _ROUND_QUANTITY:
        raise ValueError(f"unknown metric '{metric}' (one of {', '.join(METRICS)})")
    return run.gt_rank > 0


def _dialog_sums(run: PerDialog, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per dialog: the sum of the metric's per-round quantity over the dialog's scored
    rounds (or its NDCG), and their number; both [D] float64."""
    defined = _defined(run, metric)
    if metric == "ndcg":
        return np.where(defined, run.ndcg, 0.0), defined.astype(np.float64)
    ranks = np.where(defined, run.gt_rank, 1).astype(np.float64)  # 1 in unscored rounds: no 1/0
    quantity = _ROUND_QUANTITY[metric](ranks) * defined
    return quantity.sum(1, dtype=np.float64), defined.sum(1).astype(np.float64)


def _stacked_sums(runs: Sequence[PerDialog], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """`_dialog_sums` of each run, as columns: sums [D, K], counts [D, K] for K runs
    (which must be on the same dialogs and rounds)."""
    _check_aligned([(f"run {i}", run) for i, run in enumerate(runs)], metric)
    sums, counts = zip(*(_dialog_sums(run, metric) for run in runs))
    return np.stack(sums, axis=1), np.stack(counts, axis=1)


def _ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts elementwise, NaN where counts = 0."""
    return np.divide(sums, counts, out=np.full(np.shape(sums), np.nan), where=counts > 0)


def _resample_weights(dialogs: int, samples: int, seed: int) -> np.ndarray:
    """[samples, dialogs] float64: how often each dialog is drawn in each resample of
    `dialogs` dialogs with replacement."""
    if samples < 1:
        raise ValueError(f"bootstrap needs samples >= 1, got {samples}")
    drawn = np.random.default_rng(seed).integers(0, dialogs, size=(samples, dialogs))  # [S, D]
    flat = (drawn + dialogs * np.arange(samples)[:, None]).ravel()  # offset each resample's row
    return np.bincount(flat, minlength=samples * dialogs).reshape(samples, dialogs).astype(np.float64)


def _resampled_values(runs: Sequence[PerDialog], metric: str, weights: np.ndarray) -> np.ndarray:
    """metric_value of each resample [S]: a dialog drawn w times counts w times in both
    the sum of its per-round quantities and the number of scored rounds."""
    sums, counts = _stacked_sums(runs, metric)
    return _ratio(weights @ sums, weights @ counts).mean(1)  # [S, K] -> [S]


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of values, skipping NaN (resamples where
    the metric is undefined); (nan, nan) if all are NaN."""
    if not 0 < level < 1:
        raise ValueError(f"the interval level must lie in (0, 1), got {level}")
    if np.isnan(values).all():
        return math.nan, math.nan
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _check_aligned(named_runs: Sequence[tuple[str, PerDialog]], metric: str) -> None:
    """All runs must be on the same dialogs with the same scored rounds (for NDCG, the
    same dialogs with an NDCG), so that resampled dialogs mean the same thing in each."""
    if not named_runs:
        raise ValueError("no runs to compute a metric of")
    first_name, first = named_runs[0]
    first_defined = _defined(first, metric)
    what = "dialogs with an NDCG" if metric == "ndcg" else "scored rounds (gt_rank > 0)"
    for name, run in named_runs[1:]:
        if not np.array_equal(run.image_id, first.image_id):
            raise InputFormatError(f"{name} and {first_name} are not on the same dialogs: their image ids differ")
        if not np.array_equal(_defined(run, metric), first_defined):
            raise InputFormatError(f"{name} and {first_name} differ in their {what}")
