"""Seeds, intervals and paired significance in the tables: mean ± sample std over a row's
seeds, 95 % bootstrap intervals from the ranks files, Wilson intervals in Table 3, and the
paired tests of results/significance.csv."""

from __future__ import annotations

import csv
import json
import statistics as py_statistics
from pathlib import Path

import numpy as np
import pytest

from visdial_lg.core.errors import InputFormatError
from visdial_lg.core.runs import seed_suffix
from visdial_lg.evaluation import statistics
from visdial_lg.report.document import html, markdown
from visdial_lg.report.significance import significance_frame
from visdial_lg.report.tables import Statistics, render_table, write_csv

DIALOGS, ROUNDS = 80, 10
STATS = Statistics(samples=300, seed=0)
METRICS = ("ndcg", "mrr", "r1", "r5", "r10", "mean")


def _write_run(folder: Path, run: str, gt_rank: np.ndarray, ndcg: np.ndarray) -> Path:
    """An evaluation as `visdial-lg evaluate` writes it: metrics JSON and its ranks beside it."""
    decoder = "disc" if run.split("@")[0].endswith("disc") else "gen"
    per_dialog = statistics.PerDialog(np.arange(DIALOGS), gt_rank, ndcg)
    metrics = {m: statistics.metric_value([per_dialog], m) for m in METRICS}
    out = folder / run / "val_prior.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": run, "split": "val", "grounding": "prior", "primary": decoder,
                               "decoders": {decoder: metrics}, "scored_by": "ground truth"}))
    np.savez(out.with_suffix(".ranks.npz"), image_id=np.arange(DIALOGS),
             **{f"{decoder}_gt_rank": gt_rank.astype(np.int16), f"{decoder}_ndcg": ndcg})
    return out


def _ranks(seed: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt_rank = np.clip(rng.integers(1, 60, (DIALOGS, ROUNDS)) - shift, 1, 100)
    return gt_rank, rng.uniform(0.2, 0.8, DIALOGS)


def _table5(folder: Path, seeds, lg_shift: int = 0) -> list[Path]:
    """Table 5's two runs (v1.0 disc) for each seed; LTMI-LG's ranks `lg_shift` better."""
    paths = []
    for seed in seeds:
        gt_rank, ndcg = _ranks(seed)
        paths.append(_write_run(folder, f"v1.0-ltmi-disc{seed_suffix(seed)}", gt_rank, ndcg))
        better = np.clip(gt_rank - lg_shift, 1, 100)
        paths.append(_write_run(folder, f"v1.0-lg_attn_kl-disc{seed_suffix(seed)}", better, ndcg))
    return paths


def _rows(frame, path: Path) -> list[dict]:
    write_csv(frame, path)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_several_seeds_give_mean_sample_std_and_an_interval_per_metric(tmp_path):
    paths = _table5(tmp_path, seeds=(0, 1, 2))
    rows = _rows(render_table(5, paths, "demo", versions=("v1.0",), stats=STATS), tmp_path / "table5.csv")
    ltmi = next(r for r in rows if r["model"] == "LTMI" and r["source"] == "demo")
    seeds = [json.loads(p.read_text())["decoders"]["disc"]["mrr"] * 100 for p in paths if "ltmi" in p.parent.name]
    assert float(ltmi["MRR"]) == pytest.approx(np.mean(seeds), abs=0.005)
    assert float(ltmi["MRR_std"]) == pytest.approx(py_statistics.stdev(seeds), abs=0.005)  # sample std (n - 1)
    assert float(ltmi["MRR_lo"]) < float(ltmi["MRR"]) < float(ltmi["MRR_hi"])
    assert float(ltmi["Mean_lo"]) < float(ltmi["Mean"]) < float(ltmi["Mean_hi"])  # in ranks, not percent
    cited = next(r for r in rows if r["source"] == "paper")
    assert cited["MRR_std"] == cited["MRR_lo"] == cited["MRR_hi"] == ""  # cited rows carry no interval
    text = markdown([tmp_path / "table5.csv"])
    assert f"{ltmi['MRR']} ± {ltmi['MRR_std']} [{ltmi['MRR_lo']}, {ltmi['MRR_hi']}]" in text


def test_one_seed_has_intervals_but_no_std_columns(tmp_path):
    paths = _table5(tmp_path, seeds=(0,))
    frame = render_table(5, paths, "demo", versions=("v1.0",), stats=STATS)
    assert not any(c.endswith("_std") for c in frame.columns)
    assert list(frame.columns[2:6]) == ["NDCG", "NDCG_lo", "NDCG_hi", "MRR"]
    lo, hi = statistics.bootstrap_interval([statistics.load_per_dialog(paths[0].with_suffix(".ranks.npz"), "disc")],
                                           "mrr", STATS.samples, STATS.seed)
    ltmi = frame[(frame["model"] == "LTMI") & (frame["source"] == "demo")].iloc[0]
    assert (ltmi["MRR_lo"], ltmi["MRR_hi"]) == pytest.approx((100 * lo, 100 * hi))


def test_a_ranks_file_from_before_the_statistics_is_named(tmp_path):
    paths = _table5(tmp_path, seeds=(0,))
    ranks = paths[0].with_suffix(".ranks.npz")
    np.savez(ranks, image_id=np.arange(DIALOGS))  # as evaluations wrote it before
    with pytest.raises(InputFormatError, match=f"{ranks}: no per-round ground-truth ranks.*re-run the evaluation"):
        render_table(5, paths, "demo", versions=("v1.0",), stats=STATS)


def test_table3_gets_the_wilson_interval_of_its_sampled_rounds(tmp_path):
    paths = []
    for model, prior in (("ltmi", 0.4), ("lg_attn_kl", 0.5)):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"run": f"v0.9-{model}-gen", "annotations": "COCO instances", "count": 40,
                                    "top": 3, "prior": prior, "posterior": 0.6, "random": 0.08}))
        paths.append(path)
    frame = render_table(3, paths, "demo", stats=STATS)
    ltmi, chance = frame[frame["source"] == "demo"].to_dict("records")
    assert (ltmi["w/o Ans_lo"], ltmi["w/o Ans_hi"]) == pytest.approx(
        tuple(100 * v for v in statistics.wilson_interval(16, 40)))
    assert (ltmi["with LG_lo"], ltmi["with LG_hi"]) == pytest.approx(
        tuple(100 * v for v in statistics.wilson_interval(20, 40)))
    assert np.isnan(chance["w/o Ans_lo"])  # Random is an exact expectation


def _significance(tmp_path, seeds, lg_shift) -> list[dict]:
    paths = _table5(tmp_path, seeds, lg_shift)
    frame = significance_frame(paths, ("v1.0",), STATS)
    return _rows(frame, tmp_path / "significance.csv")


def test_identical_models_differ_by_nothing(tmp_path):
    rows = _significance(tmp_path, (0,), lg_shift=0)
    assert [(r["table"], r["model"], r["metric"]) for r in rows] == [
        ("5", "LTMI-LG", m) for m in ("NDCG", "MRR", "R@1", "R@5", "R@10", "Mean")]
    for row in rows:
        assert float(row["diff"]) == float(row["diff_lo"]) == float(row["diff_hi"]) == 0 and row["p"] == "1"
        assert row["dialogs"] == str(DIALOGS) and row["p_seeds"] == ""  # one seed: no test over seeds


def test_a_planted_improvement_is_detected_over_dialogs_and_seeds(tmp_path):
    rows = {r["metric"]: r for r in _significance(tmp_path, (0, 1, 2), lg_shift=2)}
    assert float(rows["Mean"]["diff"]) < 0 and float(rows["Mean"]["diff_hi"]) < 0  # LG ranks better
    assert float(rows["MRR"]["diff"]) > 0 and float(rows["MRR"]["diff_lo"]) > 0
    assert float(rows["MRR"]["p"]) < 0.01 and float(rows["MRR"]["p_seeds"]) < 0.05
    assert rows["MRR"]["seeds"] == rows["MRR"]["baseline_seeds"] == "3"
    assert float(rows["NDCG"]["diff"]) == 0  # the planted change leaves NDCG alone


def test_the_document_shows_tables_and_significance(tmp_path):
    paths = _table5(tmp_path, (0, 1), lg_shift=1)
    write_csv(render_table(5, paths, "demo", versions=("v1.0",), stats=STATS), tmp_path / "table5.csv")
    write_csv(significance_frame(paths, ("v1.0",), STATS), tmp_path / "significance.csv")
    text = markdown([tmp_path / "table5.csv"], tmp_path / "significance.csv")
    assert "## LTMI-LG against LTMI: paired significance" in text and "LTMI-LG vs LTMI" in text
    page = html([tmp_path / "table5.csv"], tmp_path / "significance.csv")
    assert page.startswith("<!DOCTYPE html>") and page.count("<table") == 2 and "±" in page
