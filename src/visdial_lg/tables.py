"""The paper's Tables 1-7 as CSV: the cited rows (`source=paper`, from
`resources/paper_tables.yaml`) and the rows this pipeline reproduced, marked
with the dataset they ran on (`visdial` or `demo`).

Each table is built from the metrics JSON files of `visdial-lg evaluate`
(one per run, split and grounding variant) or the grounding-accuracy files of
`visdial-lg grounding`; which runs feed which table is written in
`workflow/rules/common.smk` (`table_inputs`) and mirrored by `ROWS` below.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .errors import InputFormatError

METRIC_OF_COLUMN = {"NDCG": "ndcg", "MRR": "mrr", "R@1": "r1", "R@5": "r5", "R@10": "r10", "Mean": "mean"}
LG = "lg_attn_kl"


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


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputFormatError(f"cannot read {path}: {e}") from e


def index_evaluations(paths: list[Path]) -> dict[tuple, dict]:
    """(run, split, grounding) -> metrics JSON of `visdial-lg evaluate`."""
    index = {}
    for path in paths:
        data = _read_json(path)
        if {"run", "split", "grounding", "decoders"} <= set(data):
            index[(data["run"], data["split"], data["grounding"])] = data
    return index


def _value(evaluation: dict | None, cell: Cell, column: str):
    if evaluation is None:
        return None
    decoder = cell.score or evaluation["primary"]
    metrics = evaluation["decoders"].get(decoder, {})
    value = metrics.get(METRIC_OF_COLUMN[column.split()[-1]])
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if column.endswith("Mean") else 100.0 * value


def reproduced_rows(n: int, evaluations: dict, columns: list[str], evalai: dict | None = None) -> list[tuple]:
    """[(label, values, note)] of the rows this pipeline produced for table n."""
    rows = []
    for label, cells in ROWS.get(n, []):
        values, notes = [], []
        for column in columns:
            prefix = next(p for p in sorted(cells, key=len, reverse=True) if column.startswith(p))
            cell = cells[prefix]
            evaluation = evaluations.get((cell.run, cell.split, cell.grounding))
            if cell.split == "test" and evalai and cell.run in evalai:
                evaluation = evalai[cell.run]
            if evaluation is None and (cell.run, cell.split, cell.grounding) not in evaluations:
                raise InputFormatError(f"table {n}: no evaluation of {cell.run} on {cell.split} ({cell.grounding})")
            values.append(_value(evaluation, cell, column))
            if cell.split == "test" and evaluation.get("scored_by", "").startswith("EvalAI"):
                notes.append(f"test-std: submit {evaluation.get('submission')} to EvalAI")
        rows.append((label, values, "; ".join(dict.fromkeys(notes))))
    return rows


def load_evalai_results(path: Path | None) -> dict | None:
    """An EvalAI result file for test-std: {run: {"ndcg": .., "mrr": .., "r1": .., ...}} in
    percent or fractions as the server prints them, turned into evaluation records."""
    if not path:
        return None
    data = _read_json(path)
    out = {}
    for run, metrics in data.items():
        scaled = {k: (v / 100.0 if k != "mean" and v > 1 else v) for k, v in metrics.items()}
        out[run] = {"primary": "disc", "decoders": {"disc": scaled}, "scored_by": "EvalAI result file"}
    return out


def grounding_rows(paths: list[Path]) -> list[tuple]:
    """Table 3 from `visdial-lg grounding` outputs (one per run)."""
    by_model = {}
    for path in paths:
        data = _read_json(path)
        by_model[data["run"].split("-")[1]] = data
    missing = [m for m in ("ltmi", LG) if m not in by_model]
    if missing:
        raise InputFormatError(f"table 3: no grounding accuracy of the {missing[0]} run among the inputs")
    ltmi, lg = by_model["ltmi"], by_model[LG]
    source = f"annotations: {ltmi['annotations']}; {ltmi['count']} rounds"
    return [
        ("LTMI", [100 * ltmi["prior"], 100 * ltmi["posterior"], 100 * lg["prior"]], source),
        ("Random", [100 * ltmi["random"], 100 * ltmi["random"], None], source),
    ]


def _fmt(value) -> str:
    return "" if value is None else f"{value:.2f}"


def render_table(n: int, inputs: list[Path], dataset: str, evalai_result: Path | None = None,
                 human_rows: list[tuple] | None = None) -> list[list[str]]:
    table = paper_tables()[f"table{n}"]
    columns = table["columns"]
    header = ["model", "source", *columns, "note"]
    rows = [[r[0], "paper", *(_fmt(v) for v in r[1:]), ""] for r in table["rows"]]
    if n == 3:
        produced = grounding_rows(inputs)
    elif n == 7:
        produced = human_rows or []
    else:
        produced = reproduced_rows(n, index_evaluations(inputs), columns, load_evalai_results(evalai_result))
    rows += [[label, dataset, *(_fmt(v) for v in values), note] for label, values, note in produced]
    return [header, *rows]


def write_csv(rows: list[list[str]], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, out)


def markdown(csv_paths: list[Path]) -> str:
    """All tables as Markdown, each under the paper's caption."""
    papers = paper_tables()
    parts = ["# The paper's tables, cited and reproduced\n",
             "Rows with source `paper` are the numbers printed in the paper; the others were "
             "produced by this pipeline on the dataset their source names. Metrics in percent, "
             "Mean = mean rank.\n"]
    for path in sorted(csv_paths, key=lambda p: int(Path(p).stem.removeprefix("table"))):
        n = int(Path(path).stem.removeprefix("table"))
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        parts.append(f"## Table {n}: {papers[f'table{n}']['title']}\n")
        buffer = io.StringIO()
        buffer.write("| " + " | ".join(rows[0]) + " |\n")
        buffer.write("|" + "---|" * len(rows[0]) + "\n")
        for row in rows[1:]:
            buffer.write("| " + " | ".join(row) + " |\n")
        parts.append(buffer.getvalue())
    return "\n".join(parts)
