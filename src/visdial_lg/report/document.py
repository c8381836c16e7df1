"""The tables for reading: every table CSV and the significance tests as one Markdown file
(`results/tables.md`) and one HTML page (`results/tables.html`). A reproduced metric's
statistics columns are folded into its cell as `mean ± std [lo, hi]`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .significance import NOTE as SIGNIFICANCE_NOTE, display_significance
from .tables import HI, LO, STD, paper_tables

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


INTRODUCTION = ("Rows with source `paper` are the numbers printed in the paper; the others were "
                "produced by this pipeline on the dataset their source names (`visdial` = the real "
                "data, `demo` = the synthetic demo, whose numbers say nothing about the paper's "
                "claims). Metrics in percent, Mean = mean rank; an empty cell was not reported "
                f"(paper) or not produced (see the note). {LEGEND}")
STATISTICS_NOTE = ("A reproduced value `m ± s [lo, hi]` is the mean over the training seeds of its row, "
                   "their sample standard deviation (shown with two or more seeds) and the 95 % interval "
                   "of the mean (bootstrap over dialogs; Table 3: Wilson's); docs/evaluation.md says how to read them.")


def read_table(path: Path) -> pd.DataFrame:
    """A table CSV as text cells, as written (empty cells stay empty)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table for reading: each metric's statistics columns folded into its cell as
    `mean ± std [lo, hi]`."""
    shown = frame[[c for c in frame.columns if not c.endswith((STD, LO, HI))]].copy()
    for column in shown.columns:
        if column + STD in frame:
            shown[column] = [f"{v} ± {s}" if s else v for v, s in zip(shown[column], frame[column + STD])]
        if column + LO in frame:
            shown[column] = [f"{v} [{lo}, {hi}]" if lo else v
                             for v, lo, hi in zip(shown[column], frame[column + LO], frame[column + HI])]
    return shown


def _sections(csv_paths: list[Path], significance: Path | None) -> list[tuple[str, pd.DataFrame, str]]:
    """(heading, table for reading, note) of every table, by number, then the significance tests."""
    papers = paper_tables()
    sections = []
    for path in sorted(csv_paths, key=lambda p: int(Path(p).stem.removeprefix("table"))):
        n = int(Path(path).stem.removeprefix("table"))
        sections.append((f"Table {n}: {papers[f'table{n}']['title']}", display_frame(read_table(path)),
                         REPRODUCTION_NOTES[n]))
    if significance is not None:
        sections.append(("LTMI-LG against LTMI: paired significance", display_significance(read_table(significance)),
                         SIGNIFICANCE_NOTE))
    return sections


def markdown(csv_paths: list[Path], significance: Path | None = None) -> str:
    """All tables as Markdown, each under the paper's caption, with how it was reproduced."""
    parts = ["# The paper's tables, cited and reproduced\n", f"{INTRODUCTION} {STATISTICS_NOTE}\n"]
    for heading, frame, note in _sections(csv_paths, significance):
        cells = frame.map(lambda text: text.replace("|", "\\|").replace("\n", " "))
        cells.columns = [c.replace("|", "\\|") for c in frame.columns]
        parts += [f"## {heading}\n", cells.to_markdown(index=False, disable_numparse=True) + "\n", note + "\n"]
    return "\n".join(parts)


def html(csv_paths: list[Path], significance: Path | None = None) -> str:
    """The same as one self-contained HTML page."""
    from html import escape

    body = [f"<h1>The paper's tables, cited and reproduced</h1>\n<p>{escape(INTRODUCTION)} {escape(STATISTICS_NOTE)}</p>"]
    for heading, frame, note in _sections(csv_paths, significance):
        body.append(f"<h2>{escape(heading)}</h2>\n{frame.to_html(index=False, border=0)}\n<p>{escape(note)}</p>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse;font-size:90%}"
             "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>visdial-lg tables</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
