"""Paired significance of every LTMI-LG variant against LTMI (`results/significance.csv`).

The paper says LTMI-LG beats LTMI with "t-test, p-value < 0.01" and shows no test. Here each
LTMI-LG row of a table is compared with the LTMI row of the same table, version, split and
decoder, on the same rounds, for every metric of its columns: the difference of the metric
(LG − LTMI, averaged over the seeds of each row), its paired-bootstrap 95 % interval over
dialogs, a paired t-test over dialogs and, with two or more seeds a row, Welch's t-test over
the seeds' values (evaluation/statistics.py; docs/evaluation.md says how to read them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.runs import VERSIONS
from ..evaluation import statistics
from .tables import (ROWS, Cell, Statistics, cell_of, evaluation_inputs, index_evaluations, metric_key, paper_tables,
                     per_dialog, scale)

BASELINE = "LTMI"  # the row every LG variant is compared with
# What the Markdown and HTML show (the CSV has every metric of the table).
SHOWN_METRICS = ("ndcg", "mrr")
NOTE = ("Difference LG − LTMI in points (Mean: in ranks; lower is better), with its 95 % paired-bootstrap "
        "interval over dialogs; p: two-sided paired t-test over dialogs, and with two or more seeds a row "
        "Welch's t-test over the seeds. NDCG and MRR are shown; results/significance.csv holds every "
        "metric. Cited rows carry no test.")


@dataclass(frozen=True)
class Comparison:
    table: int
    label: str  # the LG row's label
    column: str  # a column of the table, e.g. "v1.0 val MRR"
    lg: Cell
    ltmi: Cell


def comparisons(versions: tuple[str, ...] = VERSIONS) -> list[Comparison]:
    """Every (LG row, column) of the tables against the LTMI row's cell of that column."""
    out, papers = [], paper_tables()
    for n, rows in ROWS.items():
        baseline = dict(rows)[BASELINE]
        for label, cells in rows:
            for column in papers[f"table{n}"]["columns"]:
                lg, ltmi = cell_of(cells, column), cell_of(baseline, column)
                if lg.model.startswith("lg_") and lg.version in versions:
                    out.append(Comparison(n, label, column, lg, ltmi))
    return out


def significance_inputs(versions: tuple[str, ...] = VERSIONS, seeds: tuple[int, ...] = (0,)) -> list[str]:
    """The evaluations (metrics JSON and ranks) the comparisons read."""
    return evaluation_inputs([c for comparison in comparisons(versions) for c in (comparison.lg, comparison.ltmi)],
                             seeds)


COLUMNS = ["table", "version", "split", "decoder", "model", "baseline", "metric", "seeds", "baseline_seeds",
           "dialogs", "diff", "diff_lo", "diff_hi", "p", "p_seeds", "note"]


def significance_frame(inputs: list[Path], versions: tuple[str, ...] = VERSIONS,
                       stats: Statistics = Statistics()) -> pd.DataFrame:
    """One row per comparison and metric (COLUMNS), as text cells."""
    evaluations = index_evaluations(inputs)
    rows = []
    for c in comparisons(versions):
        lg_seeds = evaluations.get((c.lg.run, c.lg.split, c.lg.grounding), [])
        ltmi_seeds = evaluations.get((c.ltmi.run, c.ltmi.split, c.ltmi.grounding), [])
        if not lg_seeds or not ltmi_seeds:
            continue  # not among the inputs (e.g. a version the config does not run)
        decoder = c.lg.score or lg_seeds[0].data["primary"]
        row = {"table": c.table, "version": c.lg.version, "split": c.lg.split, "decoder": decoder,
               "model": c.label, "baseline": BASELINE, "metric": c.column.split()[-1],
               "seeds": len(lg_seeds), "baseline_seeds": len(ltmi_seeds), "note": ""}
        rows.append(row)
        a, b = per_dialog(lg_seeds, c.lg), per_dialog(ltmi_seeds, c.ltmi)
        metric = metric_key(c.column)
        if math.isnan(statistics.metric_value(a, metric)):
            row["note"] = "no scored rounds (the test answers are held back by the EvalAI server)"
            continue
        # samples 0 (no intervals): the t-test still runs; one resample stands in for the unused interval
        test = statistics.paired_comparison(a, b, metric, stats.samples or 1, stats.seed, stats.level)
        factor = scale(c.column)
        row.update(dialogs=test["dialogs"], diff=f"{factor * test['diff']:.2f}", p=_p(test["p"]),
                   p_seeds=_p(statistics.seed_test([statistics.metric_value([r], metric) for r in a],
                                                   [statistics.metric_value([r], metric) for r in b])))
        if stats.samples:
            row.update(diff_lo=f"{factor * test['lo']:.2f}", diff_hi=f"{factor * test['hi']:.2f}")
    return pd.DataFrame(rows, columns=COLUMNS).fillna("").astype(str)


def _p(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3g}"


def display_significance(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparisons on NDCG and MRR, one line each, for tables.md and tables.html."""
    shown = frame[frame["metric"].str.lower().isin(SHOWN_METRICS)]
    interval = [f"{d} [{lo}, {hi}]" if lo else d for d, lo, hi in zip(shown["diff"], shown["diff_lo"], shown["diff_hi"])]
    return pd.DataFrame({
        "table": shown["table"], "comparison": shown["model"] + " vs " + shown["baseline"],
        "on": shown["version"] + " " + shown["split"] + ", " + shown["decoder"], "metric": shown["metric"],
        "seeds": shown["seeds"] + " vs " + shown["baseline_seeds"], "dialogs": shown["dialogs"],
        "LG − LTMI [95 % interval]": interval, "p (dialogs)": shown["p"], "p (seeds)": shown["p_seeds"],
        "note": shown["note"]}).reset_index(drop=True)
