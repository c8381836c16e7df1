"""Table 7: the blinded sheet from two val evaluations, its key, and M1/M2 from judgments."""

from __future__ import annotations

import csv
import json

import h5py
import pytest

from helpers.tiny_runs import DIALOGS, LG, LTMI, evaluated, tiny_runs
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.human import SHEET_HEADER, answer_text, score_judgments, table7_rows, top_answers, write_sheet


@pytest.fixture(scope="module")
def sheet(runs_base, tmp_path_factory):  # noqa: F811
    runs = tiny_runs(runs_base)
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    out = tmp_path_factory.mktemp("human")
    evaluations = {"ltmi": runs_base / LTMI / "val_prior.json", "lg": runs_base / LG / "val_prior.json"}
    write_sheet(evaluations, runs["val"], runs["vocab"], out / "sheet.csv", out / "key.json", samples=5)
    with open(out / "sheet.csv", newline="") as f:
        rows = list(csv.reader(f))
    return rows, json.loads((out / "key.json").read_text()), evaluations, runs


def test_sheet_is_complete_and_blinded(sheet):
    rows, key, evaluations, runs = sheet
    assert rows[0] == SHEET_HEADER
    assert len(rows) - 1 == DIALOGS  # samples capped at the number of dialogs
    assert set(key) == {"1", "2"} and all(sorted(v.values()) == ["human", "lg", "ltmi"] for v in key.values())
    assert all(set(v) == {"A", "B", "C"} for v in key.values())

    vocab = Vocabulary.load(runs["vocab"])
    with h5py.File(runs["val"]) as f:
        a_pool, a_len, answers = f["answer_tokens"][:], f["answer_len"][:], f["answer"][:]
        options, image_ids = f["answer_options"][:], f["image_id"][:].tolist()
    best = {system: top_answers(path)[1] for system, path in evaluations.items()}
    for row in rows[1:]:
        item, image_id = row[0], int(row[1])
        d = image_ids.index(image_id)
        expected = {"human": answer_text(vocab, a_pool, a_len, answers[d, 9])}
        for system in ("ltmi", "lg"):
            expected[system] = answer_text(vocab, a_pool, a_len, options[d, 9, best[system][d, 9]])
        shown = dict(zip("ABC", row[4:7]))
        assert {letter: expected[system] for letter, system in key[item].items()} == shown
        assert row[7] == expected["human"]  # the reference column for M2
        assert row[2].count(" | ") == 9 and row[2].split(" | ")[1].startswith("Q: ")  # caption + 9 rounds


def test_the_order_is_shuffled_per_item(runs_base, tmp_path):  # noqa: F811
    """Over many items, each system appears under more than one letter."""
    runs = tiny_runs(runs_base)
    evaluations = {"ltmi": runs_base / LTMI / "val_prior.json", "lg": runs_base / LG / "val_prior.json"}
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    letters = set()
    for seed in range(6):
        write_sheet(evaluations, runs["val"], runs["vocab"], tmp_path / "s.csv", tmp_path / "k.json", 5, seed)
        letters |= {v for item in json.loads((tmp_path / "k.json").read_text()).values() for v in
                    [next(k for k, s in item.items() if s == "human")]}
    assert len(letters) > 1


KEY = {"1": {"A": "human", "B": "ltmi", "C": "lg"},
       "2": {"A": "lg", "B": "human", "C": "ltmi"}}


def _judgments(path, lines):
    path.write_text("item,response,annotator,human_generated,better_or_equal\n" + "\n".join(lines) + "\n")
    return path


def test_m1_m2_by_hand(tmp_path):
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    lines = [
        # item 1: LTMI = B, judged human by 2 of 3, better by 1 of 3; LTMI-LG = C: 3 of 3, 2 of 3
        "1,B,ann1,1,0", "1,B,ann2,1,1", "1,B,ann3,0,0",
        "1,C,ann1,1,1", "1,C,ann2,1,1", "1,C,ann3,1,0",
        "1,A,ann1,1,1",  # the human response itself is not scored
        # item 2: LTMI = C: 1 of 3, 2 of 3; LTMI-LG = A: 0 of 3, 0 of 3
        "2,C,ann1,0,1", "2,c,ann2,1,1", "2,C,ann3,0,0",
        "2,A,ann1,0,0", "2,A,ann2,0,0", "2,A,ann3,0,0",
    ]
    scores = score_judgments(tmp_path / "key.json", _judgments(tmp_path / "j.csv", lines))
    assert scores["ltmi"] == {"M1": 50.0, "M2": 50.0, "items": 2}  # M1: item 1; M2: item 2
    assert scores["lg"] == {"M1": 50.0, "M2": 50.0, "items": 2}  # item 1 for both
    rows = table7_rows(tmp_path / "key.json", tmp_path / "j.csv", tmp_path / "sheet.csv")
    assert [r[0] for r in rows] == ["Method 1 (M1)", "Method 2 (M2)"]
    assert rows[0][1] == [50.0, 50.0] and "2 judged items" in rows[0][2]


def test_m1_counts_only_judged_items(tmp_path):
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    lines = ["1,B,a,1,1", "1,B,b,1,0", "1,B,c,0,0", "1,C,a,0,0", "1,C,b,0,1", "1,C,c,0,1"]
    scores = score_judgments(tmp_path / "key.json", _judgments(tmp_path / "j.csv", lines))
    assert scores["ltmi"] == {"M1": 100.0, "M2": 0.0, "items": 1}
    assert scores["lg"] == {"M1": 0.0, "M2": 100.0, "items": 1}


def test_table7_without_judgments_waits_for_them(tmp_path):
    rows = table7_rows(tmp_path / "key.json", None, tmp_path / "sheet.csv")
    assert all(values == [None, None] and "awaiting judgments" in note for _, values, note in rows)


@pytest.mark.parametrize("line, culprit", [
    ("1,B,ann1,yes,0", "line 2: human_generated must be 0 or 1, got 'yes'"),
    ("1,B,ann1,1,", "line 2: better_or_equal must be 0 or 1, got ''"),
    ("1,D,ann1,1,0", "line 2: response must be A, B or C"),
    ("7,B,ann1,1,0", "line 2: item '7' is not on the sheet"),
])
def test_a_malformed_judgment_line_is_named(tmp_path, line, culprit):
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    with pytest.raises(InputFormatError, match=culprit) as error:
        score_judgments(tmp_path / "key.json", _judgments(tmp_path / "j.csv", [line]))
    assert "j.csv" in str(error.value) and "\n" not in str(error.value)


def test_duplicate_judge_and_bad_header_are_named(tmp_path):
    (tmp_path / "key.json").write_text(json.dumps(KEY))
    with pytest.raises(InputFormatError, match="line 3: annotator 'x' judged item 1 response B twice"):
        score_judgments(tmp_path / "key.json", _judgments(tmp_path / "j.csv", ["1,B,x,1,0", "1,B,x,0,0"]))
    (tmp_path / "bad.csv").write_text("item,response,judge\n1,B,x\n")
    with pytest.raises(InputFormatError, match="header lacks annotator"):
        score_judgments(tmp_path / "key.json", tmp_path / "bad.csv")
    with pytest.raises(InputFormatError, match="not found"):
        score_judgments(tmp_path / "key.json", tmp_path / "missing.csv")
