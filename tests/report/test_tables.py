"""Tables 1-7: the paper's rows and columns from the data file plus the reproduced rows,
values in range, provenance notes (EvalAI, held-back answers, oracle), tables.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers.paper_tables import assert_table_matches_paper
from helpers.tiny_runs import LG, LTMI, evaluated
from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.human import table7_rows
from visdial_lg.core.runs import LG_LOSSES
from visdial_lg.report.document import markdown
from visdial_lg.report.tables import load_evalai_results, paper_tables, render_table, write_csv

VERSIONS = ("v0.9", "v1.0")
GOLDEN = Path(__file__).parent / "golden"  # the tables as the hand-written CSV writer wrote them


def rendered(folder: Path, n: int, *args, **kwargs) -> list[list[str]]:
    """Table n as its CSV file holds it, row by row."""
    path = folder / f"rendered_table{n}.csv"
    write_csv(render_table(n, *args, **kwargs), path)
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _metrics(seed: int, ndcg: bool) -> dict:
    """Distinct, valid metrics for each (run, split, variant)."""
    r1 = 0.05 + 0.01 * (seed % 20)
    values = {"r1": r1, "r5": r1 + 0.1, "r10": r1 + 0.2, "mrr": r1 + 0.05, "mean": 10.0 + seed % 50, "count": 20}
    if ndcg:
        values.update(ndcg=0.3 + 0.01 * (seed % 30), ndcg_count=2)
    return values


def _write_evaluation(folder: Path, run: str, split: str, grounding: str, seed: int) -> Path:
    decoder = run.rsplit("-", 1)[1]
    names = {"gen": ["gen"], "disc": ["disc"], "multi": ["disc", "gen", "avg"]}[decoder]
    ndcg = run.startswith("v1.0")
    test = split == "test"
    data = {"run": run, "split": split, "grounding": grounding, "primary": "disc" if decoder == "disc" else "gen",
            "decoders": {} if test else {name: _metrics(seed + i, ndcg) for i, name in enumerate(names)},
            "scored_by": "EvalAI (submit the file)" if test else "ground truth",
            "submission": f"results/submissions/{run}_test.json" if test else None}
    if grounding == "oracle":
        data["oracle_annotations"] = "grounding.json"
    path = folder / run / f"{split}_{grounding}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _inputs(folder: Path) -> dict[int, list[Path]]:
    """The evaluations each table reads, as `table_inputs` in workflow/rules/common.smk."""
    def ev(version, model, decoder, split="val", grounding="prior"):
        run = f"{version}-{model}-{decoder}"
        seed = sum(map(ord, run + split + grounding))
        return _write_evaluation(folder, run, split, grounding, seed)

    lg = "lg_attn_kl"
    grounding = []
    for model in ("ltmi", lg):
        path = folder / "grounding" / f"v0.9-{model}-gen_val.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run": f"v0.9-{model}-gen", "annotations": "COCO instances (instances_val2014.json)",
                                    "eligible": 50, "count": 40, "top": 3, "prior": 0.4, "posterior": 0.6,
                                    "random": 0.08}))
        grounding.append(path)
    sheet, key = folder / "sheet.csv", folder / "key.json"
    return {
        1: [ev(v, m, d) for v in VERSIONS for m, d in [("ltmi", "gen"), (lg, "gen"), (lg, "multi")]],
        2: [ev(v, m, "disc", "val" if v == "v0.9" else "test") for v in VERSIONS for m in ("ltmi", lg)],
        3: grounding,
        4: [ev("v1.0", "ltmi", "gen", grounding=g) for g in ("prior", "mean", "random", "oracle")]
        + [ev("v1.0", lg, "gen")],
        5: [ev("v1.0", m, "disc") for m in ("ltmi", lg)],
        6: [ev("v1.0", "ltmi", "gen")] + [ev("v1.0", f"lg_{loss}", "gen") for loss in LG_LOSSES],
        7: [sheet, key],
    }


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    inputs = _inputs(folder)
    out = {}
    for n in range(1, 8):
        human = table7_rows(inputs[7][1], None, inputs[7][0]) if n == 7 else None
        write_csv(render_table(n, inputs[n], "demo", human_rows=human), folder / f"table{n}.csv")
        with open(folder / f"table{n}.csv", newline="") as f:
            out[n] = list(csv.reader(f))
    return out, folder, inputs


@pytest.mark.parametrize("n", range(1, 8))
def test_one_seed_without_intervals_gives_the_csv_of_the_hand_written_writer(tables, n):
    """pandas replaced the hand-written writer: the same bytes (golden files written by it)."""
    _, folder, _ = tables
    golden = (GOLDEN / f"table{n}.csv").read_bytes().replace(b"{folder}", str(folder).encode())
    assert (folder / f"table{n}.csv").read_bytes() == golden


@pytest.mark.parametrize("n", range(1, 8))
def test_rows_columns_and_ranges_are_the_papers_plus_the_reproduced(tables, n):
    assert_table_matches_paper(tables[0][n], n, "demo")


def test_every_reproduced_metric_cell_is_filled(tables):
    """Only the expected cells are empty: Table 3's Random with LG, Table 7 before judgments,
    and Table 2's test-std without an EvalAI result."""
    for n in (1, 4, 5, 6):
        assert all(all(cell for cell in row[2:-1]) for row in tables[0][n][1:] if row[1] == "demo"), n


def test_values_come_from_the_right_evaluation(tables):
    rows, folder, _ = tables
    table4 = {r[0]: r for r in rows[4][1:] if r[1] == "demo"}
    mean_variant = json.loads((folder / "v1.0-ltmi-gen" / "val_mean.json").read_text())["decoders"]["gen"]
    assert table4["LTMI-Mean"][2:8] == [f"{100 * mean_variant[k]:.2f}" for k in ("ndcg", "mrr", "r1", "r5", "r10")] \
        + [f"{mean_variant['mean']:.2f}"]
    assert "oracle regions from grounding.json" in table4["LTMI-Human"][-1]
    # LTMI-LG* is the multi-task run ranked by its generative decoder
    multi = json.loads((folder / "v1.0-lg_attn_kl-multi" / "val_prior.json").read_text())["decoders"]["gen"]
    star = next(r for r in rows[1] if r[0] == "LTMI-LG*" and r[1] == "demo")
    assert star[rows[1][0].index("v1.0 val R@1")] == f"{100 * multi['r1']:.2f}"
    table3 = [r for r in rows[3] if r[1] == "demo"]
    assert table3[0][2:5] == ["40.00", "60.00", "40.00"] and table3[1][2:5] == ["8.00", "8.00", ""]
    assert "v0.9 val, 40 sampled rounds" in table3[0][-1] and "instances_val2014.json" in table3[0][-1]


def test_table2_test_std_says_where_the_submission_is(tables):
    rows = tables[0][2]
    header = rows[0]
    for row in (r for r in rows[1:] if r[1] == "demo"):
        assert all(row[header.index(c)] == "" for c in header if c.startswith("v1.0 test-std"))
        assert all(row[header.index(c)] != "" for c in header if c.startswith("v0.9 val"))
        assert "submit results/submissions/v1.0-" in row[-1] and "to EvalAI" in row[-1]


@pytest.mark.parametrize("form", ["percent", "fraction", "server"])
def test_table2_takes_test_std_from_the_evalai_result_file(tables, tmp_path, form):
    _, _, inputs = tables
    shown = {"R@1": 50.63, "R@5": 80.58, "R@10": 90.2, "MRR": 64.0, "Mean": 4.12, "NDCG": 58.55}
    metrics = {k: (v if k == "Mean" or form != "fraction" else v / 100) for k, v in shown.items()}
    if form == "server":
        metrics = [{"test-std": metrics}]
    path = tmp_path / "evalai.json"
    path.write_text(json.dumps({"v1.0-lg_attn_kl-disc": metrics}))
    rows = rendered(tmp_path, 2, inputs[2], "visdial", evalai_result=path)
    lg = next(r for r in rows if r[0] == "LTMI-LG" and r[1] == "visdial")
    assert lg[2 + 5: 2 + 11] == ["58.55", "64.00", "50.63", "80.58", "90.20", "4.12"]
    assert "submit" not in lg[-1]
    ltmi = next(r for r in rows if r[0] == "LTMI" and r[1] == "visdial")
    assert "submit" in ltmi[-1]  # not in the result file: still waiting


def test_evalai_file_missing_a_metric_is_named(tmp_path):
    path = tmp_path / "evalai.json"
    path.write_text(json.dumps({"v1.0-ltmi-disc": {"R@1": 50.0}}))
    with pytest.raises(InputFormatError, match="v1.0-ltmi-disc lack mean, mrr, ndcg, r10, r5"):
        load_evalai_results(path)


def test_demo_test_scored_against_held_back_answers(runs_base, tmp_path):  # noqa: F811
    """A real evaluation of the test split (tiny checkpoint) feeds Table 2's test-std columns."""
    result = evaluated(runs_base, LG, split="test")
    data = dict(result, run="v1.0-lg_attn_kl-disc", primary="gen")  # as if it were the disc run
    paths = []
    for run in ("v1.0-ltmi-disc", "v1.0-lg_attn_kl-disc"):
        path = tmp_path / run / "test_prior.json"
        path.parent.mkdir()
        path.write_text(json.dumps(dict(data, run=run)))
        paths.append(path)
    rows = rendered(tmp_path, 2, paths, "demo", versions=("v1.0",))
    lg = next(r for r in rows if r[0] == "LTMI-LG" and r[1] == "demo")
    assert lg[2:7] == ["", "", "", "", ""] and "v0.9 not run" in lg[-1]
    gen = result["decoders"]["gen"]
    assert lg[7:13] == [f"{100 * gen[k]:.2f}" for k in ("ndcg", "mrr", "r1", "r5", "r10")] + [f"{gen['mean']:.2f}"]
    assert "held-back test answers" in lg[-1]


def test_real_val_evaluations_feed_table1(runs_base, tmp_path):  # noqa: F811
    real = [runs_base / LTMI / "val_prior.json", runs_base / LG / "val_prior.json"]
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    lg_gen = _write_evaluation(tmp_path, "v1.0-lg_attn_kl-gen", "val", "prior", 3)
    rows = rendered(tmp_path, 1, [*real, lg_gen], "demo", versions=("v1.0",))
    star = next(r for r in rows if r[0] == "LTMI-LG*" and r[1] == "demo")
    gen = json.loads(real[1].read_text())["decoders"]["gen"]
    assert star[rows[0].index("v1.0 val NDCG")] == f"{100 * gen['ndcg']:.2f}"


def test_a_missing_evaluation_is_named(tables):
    _, _, inputs = tables
    with pytest.raises(InputFormatError, match="table 5: no evaluation of v1.0-lg_attn_kl-disc on val"):
        render_table(5, inputs[5][:1], "demo")


def test_tables_markdown_holds_every_table_and_its_notes(tables):
    _, folder, _ = tables
    text = markdown([folder / f"table{n}.csv" for n in (3, 1, 7, 2, 4, 6, 5)])
    headings = [line for line in text.splitlines() if line.startswith("## Table")]
    assert headings == [f"## Table {n}: {paper_tables()[f'table{n}']['title']}" for n in range(1, 8)]
    shown = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
             if line.startswith("|") and not line.startswith("|:")]
    for n in range(1, 8):
        with open(folder / f"table{n}.csv", newline="") as f:
            for row in csv.reader(f):
                assert row in shown
    assert "awaiting judgments" in text and "IoU >= 0.5" in text


def test_table3_without_measurable_rounds_is_empty_with_the_reason(tmp_path):
    paths = []
    for model in ("ltmi", "lg_attn_kl"):
        path = tmp_path / f"{model}.json"
        path.write_text(json.dumps({"run": f"v0.9-{model}-gen", "annotations": "COCO instances", "annotated": 4,
                                    "eligible": 0, "count": 0, "top": 3, "prior": None, "posterior": None,
                                    "random": None, "note": "none of the 4 annotated rounds has an object"}))
        paths.append(path)
    rows = rendered(tmp_path, 3, paths, "demo")
    assert_table_matches_paper(rows, 3, "demo")
    for row in (r for r in rows if r[1] == "demo"):
        assert row[2:5] == ["", "", ""] and "none of the 4 annotated rounds" in row[-1]


def test_the_workflow_gives_each_table_the_files_it_is_built_from(tmp_path):
    """`table_inputs` (the workflow's inputs of `visdial-lg table N`, derived from ROWS) names
    exactly the evaluations `_inputs` builds each table from, and only the configured versions."""
    from visdial_lg.report.tables import table_inputs

    inputs = _inputs(tmp_path)
    for n in (1, 2, 4, 5, 6):
        evaluations = sorted(f"results/runs/{p.relative_to(tmp_path)}" for p in inputs[n])
        assert sorted(table_inputs(n, VERSIONS)) == sorted(evaluations + [e.replace(".json", ".ranks.npz")
                                                                          for e in evaluations]), n
    # with several seeds, every run of a row once per seed (seed 0 keeps the plain id)
    seeded = table_inputs(5, VERSIONS, seeds=(0, 2))
    assert sorted(p for p in seeded if p.endswith(".json")) == [
        "results/runs/v1.0-lg_attn_kl-disc/val_prior.json", "results/runs/v1.0-lg_attn_kl-disc@s2/val_prior.json",
        "results/runs/v1.0-ltmi-disc/val_prior.json", "results/runs/v1.0-ltmi-disc@s2/val_prior.json"]
    assert table_inputs(3, VERSIONS, seeds=(0, 1)) == [
        "results/grounding/v0.9-ltmi-gen_val.json", "results/grounding/v0.9-ltmi-gen@s1_val.json",
        "results/grounding/v0.9-lg_attn_kl-gen_val.json", "results/grounding/v0.9-lg_attn_kl-gen@s1_val.json"]
    assert table_inputs(3, VERSIONS) == [f"results/{p.relative_to(tmp_path)}" for p in inputs[3]]
    assert table_inputs(7, VERSIONS) == ["results/human_eval/sheet.csv", "results/human_eval/key.json"]
    assert all("/v1.0-" in path for path in table_inputs(1, ("v1.0",)))
