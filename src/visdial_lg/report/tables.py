"""The paper's Tables 1-7 as CSV: the cited rows (`source=paper`, from
`resources/paper_tables.yaml`) and the rows this pipeline reproduced, marked
with the dataset they ran on (`visdial` or `demo`).

Each table is built from the metrics JSON files of `visdial-lg evaluate`
(one per run, split and grounding variant) or the grounding-accuracy files of
`visdial-lg grounding`. Which runs feed which table is written once, in `ROWS`
(and `table_inputs` for Tables 3 and 7); the workflow asks `table_inputs` for
each table's input files.

A table is a pandas DataFrame. A reproduced cell with several training seeds holds their
mean, with the sample standard deviation in a `<column>_std` column; with
`statistics.bootstrap_samples` > 0 each reproduced metric gets its 95 % interval in
`<column>_lo` / `<column>_hi` (dialogs resampled, evaluation/statistics.py; Table 3: the
Wilson interval). One seed without intervals gives the CSV the tables always had.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from ..core.errors import InputFormatError
from ..core.files import read_json
from ..core.paths import HUMAN_EVAL_KEY, HUMAN_EVAL_SHEET, evaluation_path, grounding_path, ranks_file, ranks_path
from ..core.runs import LG, VERSIONS, main_version, parse_run_id, seeded_runs
from ..evaluation import statistics

METRIC_OF_COLUMN = {"NDCG": "ndcg", "MRR": "mrr", "R@1": "r1", "R@5": "r5", "R@10": "r10", "Mean": "mean"}


def paper_tables() -> dict:
    text = resources.files("visdial_lg").joinpath("resources/paper_tables.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Cell:
    """Where one group of a reproduced row's columns comes from."""

    version: str
    model: str
    decoder: str
    split: str = "val"
    grounding: str = "prior"
    score: str | None = None  # which decoder's ranking; default: the run's primary

    @property
    def run(self) -> str:
        return f"{self.version}-{self.model}-{self.decoder}"


def _gen(version, model, decoder="gen", grounding="prior"):
    return Cell(version, model, decoder, "val", grounding, score="gen")


# table -> [(row label, {column prefix: Cell})]; a prefix selects the columns it fills.
ROWS = {
    1: [(label, {"v0.9 val": _gen("v0.9", m, d), "v1.0 val": _gen("v1.0", m, d)})
        for label, m, d in [("LTMI", "ltmi", "gen"), ("LTMI-LG", LG, "gen"), ("LTMI-LG*", LG, "multi")]],
    2: [(label, {"v0.9 val": Cell("v0.9", m, "disc"), "v1.0 test-std": Cell("v1.0", m, "disc", "test")})
        for label, m in [("LTMI", "ltmi"), ("LTMI-LG", LG)]],
    4: [("LTMI", {"": _gen("v1.0", "ltmi")}),
        ("LTMI-Mean", {"": _gen("v1.0", "ltmi", grounding="mean")}),
        ("LTMI-Random", {"": _gen("v1.0", "ltmi", grounding="random")}),
        ("LTMI-LG", {"": _gen("v1.0", LG)}),
        ("LTMI-Human", {"": _gen("v1.0", "ltmi", grounding="oracle")})],
    5: [("LTMI", {"": Cell("v1.0", "ltmi", "disc")}), ("LTMI-LG", {"": Cell("v1.0", LG, "disc")})],
    6: [("LTMI", {"": _gen("v1.0", "ltmi")})]
    + [(name, {"": _gen("v1.0", f"lg_{loss}")}) for name, loss in [
        ("LG-Attn-MSE", "attn_mse"), ("LG-Image-MSE", "image_mse"), ("LG-Attn-KL", "attn_kl"),
        ("LG-Image-KL", "image_kl"), ("Attn-KL-Image-MSE", "attn_kl_image_mse")]],
}


TABLES = tuple(range(1, 8))
STD, LO, HI = "_std", "_lo", "_hi"  # suffixes of a metric column's statistics columns


@dataclass(frozen=True)
class Statistics:
    """What the tables add to each reproduced value: `samples` bootstrap resamples of the
    dialogs (0: no intervals), drawn from `seed`, for `level` intervals."""

    samples: int = 0
    seed: int = 0
    level: float = 0.95

    @classmethod
    def of(cls, config) -> "Statistics":
        """From the config's `statistics` section."""
        return cls(config.bootstrap_samples, config.bootstrap_seed)


def table_inputs(n: int, versions: tuple[str, ...] = VERSIONS, seeds: tuple[int, ...] = (0,)) -> list[str]:
    """The result files table n is built from, for the config's `versions` and training `seeds`:
    the evaluations of `ROWS` with the ranks beside them, the grounding accuracies of Table 3,
    the human-evaluation sheet and key of Table 7 (the judgments, a user's file, are added by the
    workflow once `evaluate.human_judgments` names it)."""
    if n == 3:  # grounding accuracy needs object annotations: COCO instances exist for v0.9 val (val2014)
        version = "v0.9" if "v0.9" in versions else main_version(versions)
        return [grounding_path(run, "val") for model in ("ltmi", LG)
                for run in seeded_runs(f"{version}-{model}-gen", seeds)]
    if n == 7:
        return [HUMAN_EVAL_SHEET, HUMAN_EVAL_KEY]
    if n not in ROWS:
        raise ValueError(f"no paper table {n}")
    cells = [cell for _, cells in ROWS[n] for cell in cells.values() if cell.version in versions]
    return evaluation_inputs(cells, seeds)


def evaluation_inputs(cells, seeds: tuple[int, ...]) -> list[str]:
    """The metrics JSON and ranks file of every seed's run of each cell, each once."""
    paths = [path for cell in cells for run in seeded_runs(cell.run, seeds)
             for path in (evaluation_path(run, cell.split, cell.grounding), ranks_path(run, cell.split, cell.grounding))]
    return list(dict.fromkeys(paths))


@dataclass(frozen=True)
class Evaluation:
    path: Path  # the metrics JSON of `visdial-lg evaluate` (its ranks lie beside it)
    data: dict


def index_evaluations(paths: list[Path]) -> dict[tuple, list[Evaluation]]:
    """(run without seed, split, grounding) -> the evaluations of its seeds, by seed. Other
    inputs (the ranks files beside the JSONs) are skipped."""
    index: dict[tuple, list[tuple[int, Evaluation]]] = {}
    for path in paths:
        if Path(path).suffix != ".json":
            continue
        data = read_json(path, "evaluation metrics")
        if {"run", "split", "grounding", "decoders"} <= set(data):
            spec = parse_run_id(data["run"])
            index.setdefault((spec.base_id, data["split"], data["grounding"]), []).append(
                (spec.seed, Evaluation(Path(path), data)))
    return {key: [e for _, e in sorted(seeds, key=lambda s: s[0])] for key, seeds in index.items()}


def cell_of(cells: dict[str, Cell], column: str) -> Cell:
    """The cell of a row that fills `column`: the one of the longest prefix the column starts with."""
    return cells[next(p for p in sorted(cells, key=len, reverse=True) if column.startswith(p))]


def metric_key(column: str) -> str:
    return METRIC_OF_COLUMN[column.split()[-1]]


def scale(column: str) -> float:
    """Percent for rates, rank units for the mean rank."""
    return 1.0 if column.endswith("Mean") else 100.0


def _value(evaluation: dict, cell: Cell, column: str):
    decoder = cell.score or evaluation["primary"]
    value = evaluation["decoders"].get(decoder, {}).get(metric_key(column))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return scale(column) * value


@functools.lru_cache(maxsize=256)
def _read_per_dialog(path: Path, decoder: str, modified_ns: int) -> statistics.PerDialog:
    """A table reads each ranks file once per metric column: what was read is kept (keyed by
    the file's modification time, so a rewritten file is read again; the arrays are never modified)."""
    return statistics.load_per_dialog(path, decoder)


def per_dialog(evaluations: list[Evaluation], cell: Cell) -> list[statistics.PerDialog]:
    """The per-dialog ranks of a cell's seeds (the ranks files beside their metrics)."""
    out = []
    for e in evaluations:
        path = ranks_file(e.path)
        modified = path.stat().st_mtime_ns if path.exists() else 0  # missing: load_per_dialog names it
        out.append(_read_per_dialog(path, cell.score or e.data["primary"], modified))
    return out


@dataclass
class Row:
    """A reproduced row: per column the values of its seeds, and the interval of their mean."""

    label: str
    values: dict[str, list[float | None]] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    note: str = ""


def _interval(runs: list[statistics.PerDialog], column: str, stats: Statistics) -> tuple[float, float]:
    lo, hi = statistics.bootstrap_interval(runs, metric_key(column), stats.samples, stats.seed, stats.level)
    return scale(column) * lo, scale(column) * hi


def reproduced_rows(n: int, evaluations: dict, columns: list[str], evalai: dict | None = None,
                    versions: tuple[str, ...] = VERSIONS, stats: Statistics = Statistics()) -> list[Row]:
    """The rows this pipeline produced for table n. Columns of a version the config does not
    run stay empty."""
    rows = []
    for label, cells in ROWS.get(n, []):
        row, notes = Row(label), []
        for column in columns:
            cell = cell_of(cells, column)
            if cell.version not in versions:
                row.values[column] = [None]
                notes.append(f"{cell.version} not run (config versions)")
                continue
            seeds = evaluations.get((cell.run, cell.split, cell.grounding))
            if cell.split == "test" and evalai and cell.run in evalai:
                row.values[column] = [_value(evalai[cell.run], cell, column)]  # the server's: no ranks
                notes.append(_provenance(cell, evalai[cell.run]))
                continue
            if not seeds:
                raise InputFormatError(f"table {n}: no evaluation of {cell.run} on {cell.split} ({cell.grounding}) "
                                       "among the inputs")
            row.values[column] = [_value(e.data, cell, column) for e in seeds]
            if stats.samples:
                row.intervals[column] = _interval(per_dialog(seeds, cell), column, stats)
            notes.append(_provenance(cell, seeds[0].data))
        row.note = "; ".join(dict.fromkeys(note for note in notes if note))
        rows.append(row)
    return rows


def _provenance(cell: Cell, evaluation: dict) -> str:
    """What a reader must know about where a reproduced value comes from."""
    scored_by = evaluation.get("scored_by", "")
    if cell.split == "test" and scored_by.startswith("EvalAI ("):
        return f"{cell.version} test-std: submit {evaluation.get('submission')} to EvalAI"
    if cell.split == "test":
        return f"{cell.version} test: {scored_by}"
    if cell.grounding == "oracle":
        return f"oracle regions from {evaluation.get('oracle_annotations')}"
    return ""


_EVALAI_KEYS = {"r1": "r1", "r@1": "r1", "r5": "r5", "r@5": "r5", "r10": "r10", "r@10": "r10",
               "mrr": "mrr", "mean": "mean", "mean rank": "mean", "ndcg": "ndcg"}


def load_evalai_results(path: Path | None) -> dict | None:
    """The test-std results the EvalAI server returned, as evaluation records by run.

    File: `{run id: metrics}`, metrics as the server shows them, either a flat
    `{"R@1": .., "R@5": .., "R@10": .., "MRR": .., "Mean": .., "NDCG": ..}` or the
    server's `[{"test-std": {...}}]`. Keys are read case-insensitively; R@k/MRR/NDCG
    given in percent (any of them > 1) are scaled to fractions."""
    if not path:
        return None
    data = read_json(path, "EvalAI results")
    if not isinstance(data, dict):
        raise InputFormatError(f"{path}: expected {{run id: test-std metrics}}")
    out = {}
    for run, metrics in data.items():
        if isinstance(metrics, list):  # the server's [{"test-std": {...}}]
            metrics = next((m["test-std"] for m in metrics if isinstance(m, dict) and "test-std" in m), None)
        try:
            values = {_EVALAI_KEYS[k.strip().lower()]: float(v) for k, v in metrics.items()
                      if k.strip().lower() in _EVALAI_KEYS}
        except (AttributeError, TypeError, ValueError) as e:
            raise InputFormatError(f"{path}: the metrics of {run} are not a mapping of numbers ({e})") from e
        if set(values) != set(_EVALAI_KEYS.values()):
            missing = sorted(set(_EVALAI_KEYS.values()) - set(values))
            raise InputFormatError(f"{path}: the test-std metrics of {run} lack {', '.join(missing)}")
        percent = any(v > 1 for k, v in values.items() if k != "mean")
        scaled = {k: (v / 100.0 if percent and k != "mean" else v) for k, v in values.items()}
        out[run] = {"primary": "disc", "decoders": {"disc": scaled}, "scored_by": f"EvalAI result file {Path(path).name}"}
    return out


TABLE3_COLUMNS = ("w/o Ans", "w/ Ans", "with LG")


def grounding_rows(paths: list[Path], stats: Statistics = Statistics()) -> list[Row]:
    """Table 3 from `visdial-lg grounding` outputs (one per run and seed). The intervals are
    Wilson's over the sampled rounds (with several seeds: of their mean accuracy)."""
    by_model: dict[str, list[tuple[int, dict]]] = {}
    for path in paths:
        data = read_json(path, "grounding accuracy")
        spec = parse_run_id(data["run"])
        by_model.setdefault(spec.model, []).append((spec.seed, data))
    missing = [m for m in ("ltmi", LG) if m not in by_model]
    if missing:
        raise InputFormatError(f"table 3: no grounding accuracy of the {missing[0]} run among the inputs")
    ltmi, lg = ([data for _, data in sorted(by_model[m], key=lambda s: s[0])] for m in ("ltmi", LG))
    first = ltmi[0]
    source = f"{first['run'].split('-')[0]} val, {first['count']} sampled rounds; annotations: {first['annotations']}"
    if first.get("note"):
        source += f"; {first['note']}"

    def percent(value):
        return None if value is None else 100 * value

    measured = dict(zip(TABLE3_COLUMNS, [(ltmi, "prior"), (ltmi, "posterior"), (lg, "prior")]))
    model = Row("LTMI", {column: [percent(d[key]) for d in runs] for column, (runs, key) in measured.items()},
                note=source)
    if stats.samples and first["count"]:
        for column, (runs, key) in measured.items():
            if all(d[key] is not None for d in runs):
                share = sum(d[key] for d in runs) / len(runs)
                lo, hi = statistics.wilson_interval(share * first["count"], first["count"], stats.level)
                model.intervals[column] = (100 * lo, 100 * hi)
    chance = [percent(d["random"]) for d in ltmi]  # exact expectations: no interval
    return [model, Row("Random", {"w/o Ans": chance, "w/ Ans": chance, "with LG": [None]}, note=source)]


def render_table(n: int, inputs: list[Path], dataset: str, evalai_result: Path | None = None,
                 human_rows: list[tuple] | None = None, versions: tuple[str, ...] = VERSIONS,
                 stats: Statistics = Statistics()) -> pd.DataFrame:
    """Table n: the paper's cited rows, then the reproduced ones (see the module docstring)."""
    table = paper_tables()[f"table{n}"]
    columns = table["columns"]
    if n == 3:
        produced = grounding_rows(inputs, stats)
    elif n == 7:
        produced = [Row(label, {c: [v] for c, v in zip(columns, values)}, note=note)
                    for label, values, note in human_rows or []]
    else:
        produced = reproduced_rows(n, index_evaluations(inputs), columns, load_evalai_results(evalai_result),
                                   tuple(versions), stats)
    cited = pd.DataFrame([[r[0], "paper", *r[1:], ""] for r in table["rows"]], columns=["model", "source", *columns, "note"])
    return pd.concat([cited, _reproduced_frame(produced, columns, dataset)], ignore_index=True)[
        _column_order(columns, produced)]


def _reproduced_frame(produced: list[Row], columns: list[str], dataset: str) -> pd.DataFrame:
    """The reproduced rows: each cell's seeds aggregated (mean, sample std) with a groupby."""
    seeds = pd.DataFrame([(i, column, value) for i, row in enumerate(produced) for column in columns
                          for value in row.values.get(column, [None])], columns=["row", "column", "value"])
    seeds["value"] = seeds["value"].astype(float)
    by_cell = seeds.groupby(["row", "column"], sort=False)["value"].agg(["mean", "std"]).unstack("column")
    frame = pd.DataFrame({"model": [row.label for row in produced], "source": dataset})
    for column in columns:
        frame[column] = by_cell["mean"][column].to_numpy() if produced else []
        frame[column + STD] = by_cell["std"][column].to_numpy() if produced else []
        for suffix, end in ((LO, 0), (HI, 1)):
            frame[column + suffix] = [row.intervals.get(column, (math.nan,) * 2)[end] for row in produced]
    frame["note"] = [row.note for row in produced]
    return frame


def _column_order(columns: list[str], produced: list[Row]) -> list[str]:
    """model, source, each metric with its statistics columns where some row has them, note."""
    several_seeds = any(len(values) > 1 for row in produced for values in row.values.values())
    intervals = any(row.intervals for row in produced)
    order = ["model", "source"]
    for column in columns:
        order += [column] + [column + STD] * several_seeds + [column + LO, column + HI] * intervals
    return order + ["note"]


def write_csv(frame: pd.DataFrame, out: str | Path) -> None:
    """Values with two decimals, missing ones empty, CRLF line ends (the CSV module's dialect)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.2f", na_rep="", lineterminator="\r\n")
    os.replace(tmp, out)
