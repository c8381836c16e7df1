"""The paper's Tables 1-7 as CSV: the cited rows (`source=paper`, from
`resources/paper_tables.yaml`) and the rows this pipeline reproduced, marked
with the dataset they ran on (`visdial` or `demo`).

Each table is built from the metrics JSON files of `visdial-lg evaluate`
(one per run, split and grounding variant) or the grounding-accuracy files of
`visdial-lg grounding`. Which runs feed which table is written once, in `ROWS`
(and `table_inputs` for Tables 3 and 7); the workflow asks `table_inputs` for
each table's input files.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ..core.errors import InputFormatError
from ..core.files import read_json
from ..core.paths import HUMAN_EVAL_KEY, HUMAN_EVAL_SHEET, evaluation_path, grounding_path
from ..core.runs import LG, VERSIONS, main_version

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


def table_inputs(n: int, versions: tuple[str, ...] = VERSIONS) -> list[str]:
    """The result files table n is built from, for the config's `versions`: the evaluations of
    `ROWS`, the grounding accuracies of Table 3, the human-evaluation sheet and key of Table 7
    (the judgments, a user's file, are added by the workflow once `evaluate.human_judgments` names it)."""
    if n == 3:  # grounding accuracy needs object annotations: COCO instances exist for v0.9 val (val2014)
        version = "v0.9" if "v0.9" in versions else main_version(versions)
        return [grounding_path(f"{version}-{model}-gen", "val") for model in ("ltmi", LG)]
    if n == 7:
        return [HUMAN_EVAL_SHEET, HUMAN_EVAL_KEY]
    if n not in ROWS:
        raise ValueError(f"no paper table {n}")
    paths = [evaluation_path(cell.run, cell.split, cell.grounding)
             for _, cells in ROWS[n] for cell in cells.values() if cell.version in versions]
    return list(dict.fromkeys(paths))


def index_evaluations(paths: list[Path]) -> dict[tuple, dict]:
    """(run, split, grounding) -> metrics JSON of `visdial-lg evaluate`."""
    index = {}
    for path in paths:
        data = read_json(path, "evaluation metrics")
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


def reproduced_rows(n: int, evaluations: dict, columns: list[str], evalai: dict | None = None,
                    versions: tuple[str, ...] = VERSIONS) -> list[tuple]:
    """[(label, values, note)] of the rows this pipeline produced for table n. Columns of a
    version the config does not run stay empty."""
    rows = []
    for label, cells in ROWS.get(n, []):
        values, notes = [], []
        for column in columns:
            prefix = next(p for p in sorted(cells, key=len, reverse=True) if column.startswith(p))
            cell = cells[prefix]
            if cell.version not in versions:
                values.append(None)
                notes.append(f"{cell.version} not run (config versions)")
                continue
            evaluation = evaluations.get((cell.run, cell.split, cell.grounding))
            if cell.split == "test" and evalai and cell.run in evalai:
                evaluation = evalai[cell.run]
            if evaluation is None:
                raise InputFormatError(f"table {n}: no evaluation of {cell.run} on {cell.split} ({cell.grounding}) "
                                       "among the inputs")
            values.append(_value(evaluation, cell, column))
            notes.append(_provenance(cell, evaluation))
        rows.append((label, values, "; ".join(dict.fromkeys(note for note in notes if note))))
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


def grounding_rows(paths: list[Path]) -> list[tuple]:
    """Table 3 from `visdial-lg grounding` outputs (one per run)."""
    by_model = {}
    for path in paths:
        data = read_json(path, "grounding accuracy")
        by_model[data["run"].split("-")[1]] = data
    missing = [m for m in ("ltmi", LG) if m not in by_model]
    if missing:
        raise InputFormatError(f"table 3: no grounding accuracy of the {missing[0]} run among the inputs")
    ltmi, lg = by_model["ltmi"], by_model[LG]
    source = f"{ltmi['run'].split('-')[0]} val, {ltmi['count']} sampled rounds; annotations: {ltmi['annotations']}"
    if ltmi.get("note"):
        source += f"; {ltmi['note']}"

    def percent(value):
        return None if value is None else 100 * value

    return [
        ("LTMI", [percent(ltmi["prior"]), percent(ltmi["posterior"]), percent(lg["prior"])], source),
        ("Random", [percent(ltmi["random"]), percent(ltmi["random"]), None], source),
    ]


def _fmt(value) -> str:
    return "" if value is None else f"{value:.2f}"


def render_table(n: int, inputs: list[Path], dataset: str, evalai_result: Path | None = None,
                 human_rows: list[tuple] | None = None,
                 versions: tuple[str, ...] = VERSIONS) -> list[list[str]]:
    table = paper_tables()[f"table{n}"]
    columns = table["columns"]
    header = ["model", "source", *columns, "note"]
    rows = [[r[0], "paper", *(_fmt(v) for v in r[1:]), ""] for r in table["rows"]]
    if n == 3:
        produced = grounding_rows(inputs)
    elif n == 7:
        produced = human_rows or []
    else:
        produced = reproduced_rows(n, index_evaluations(inputs), columns, load_evalai_results(evalai_result),
                                   tuple(versions))
    rows += [[label, dataset, *(_fmt(v) for v in values), note] for label, values, note in produced]
    return [header, *rows]


def write_csv(rows: list[list[str]], out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, out)


# How each table's reproduced rows were obtained (docs/evaluation.md has the details).
REPRODUCTION_NOTES = {
    1: "Reproduced rows: val of each configured version, generative decoder; LTMI-LG* = the "
       "multi-task run ranked by its generative decoder.",
    2: "Reproduced rows: discriminative decoder; v1.0 test-std comes from the EvalAI result file "
       "(`evaluate.evalai_result`) when given; otherwise the note says which submission file to upload. "
       "On the demo, test is scored against its held-back answers as the server would.",
    3: "Grounding accuracy: a round counts when one of its annotated objects overlaps some region "
       "(IoU >= 0.5); it is a hit when one of the model's top-3 regions does. Annotations are derived "
       "from COCO-format instances of the categories the round's question or answer names (or a "
       "user-supplied file); the note names the source. Random = the exact expected accuracy of 3 "
       "regions drawn uniformly. The paper's Human row needs annotators and is cited only.",
    4: "LTMI-Mean/-Random/-Human: the LTMI checkpoint with its distribution over regions replaced at "
       "inference by the uniform one, another round's (shuffled within the batch), or the uniform "
       "one over the annotated regions.",
    5: "Reproduced rows: v1.0 val, discriminative decoder.",
    6: "Reproduced rows: v1.0 val, generative decoder, one run per grounding loss.",
    7: "Reproduced rows: M1/M2 from the filled-in judgments of the blinded sheet "
       "(results/human_eval/sheet.csv); empty until `evaluate.human_judgments` names them.",
}
LEGEND = ("Marks in cited rows, as in the paper: † re-implemented by the authors from LTMI's released "
          "code; ◊ pretrained on large extra datasets; ‡ trained from scratch; * multi-task "
          "(generative + discriminative) training.")


def markdown(csv_paths: list[Path]) -> str:
    """All tables as Markdown, each under the paper's caption, with how it was reproduced."""
    papers = paper_tables()
    parts = ["# The paper's tables, cited and reproduced\n",
             "Rows with source `paper` are the numbers printed in the paper; the others were "
             "produced by this pipeline on the dataset their source names (`visdial` = the real "
             "data, `demo` = the synthetic demo, whose numbers say nothing about the paper's "
             "claims). Metrics in percent, Mean = mean rank; an empty cell was not reported "
             f"(paper) or not produced (see the note). {LEGEND}\n"]
    for path in sorted(csv_paths, key=lambda p: int(Path(p).stem.removeprefix("table"))):
        n = int(Path(path).stem.removeprefix("table"))
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        parts.append(f"## Table {n}: {papers[f'table{n}']['title']}\n")
        buffer = io.StringIO()
        buffer.write("| " + " | ".join(_cell(c) for c in rows[0]) + " |\n")
        buffer.write("|" + "---|" * len(rows[0]) + "\n")
        for row in rows[1:]:
            buffer.write("| " + " | ".join(_cell(c) for c in row) + " |\n")
        parts.append(buffer.getvalue())
        parts.append(REPRODUCTION_NOTES[n] + "\n")
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
