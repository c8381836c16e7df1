"""`visdial-lg chat` in-process: a questions file answered as JSON (and drawn), the interactive
dialog on stdin, and each bad input as one line naming the culprit."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest
from PIL import Image

from helpers.tiny_runs import LG, LTMI
from visdial_lg.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _chat(pipeline, image, *args):
    return main(["chat", "--image", str(image), "--directory", str(pipeline), *args])


def test_a_questions_file_is_answered_as_json_and_drawn(pipeline, demo_image, tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps(["w4 w5", "w6?", "w7 w8 w9"]))
    figure = tmp_path / "rounds.png"
    assert _chat(pipeline, demo_image, "--run", LG, "--questions", str(questions), "--figure", str(figure),
                 "--pool-size", "4", "--caption", "w10 w11", "--config", '{"generation": {"beam_width": 2}}') == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["run"], out["caption"], out["beam_width"]) == (LG, "w10 w11", 2)
    assert out["answer_pool"]["answers"] == 4 and "generative" in out["answer_pool"]["scored_by"]  # multi: gen
    assert [r["question"] for r in out["rounds"]] == ["w4 w5", "w6?", "w7 w8 w9"]
    assert [len(r["history"]) for r in out["rounds"]] == [1, 2, 3]
    assert all(len(r["retrieved"]) == 4 and isinstance(r["generated"], str) for r in out["rounds"])
    with Image.open(figure) as png:
        assert png.size == (500, 3 * 460)  # one Figure 4 panel per round


def test_the_interactive_dialog_reads_questions_until_an_empty_line(pipeline, demo_image, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("w4 w5\nw6 banana\n\nw7\n"))
    assert _chat(pipeline, demo_image, "--run", LTMI) == 0
    out = capsys.readouterr().out
    assert "Q1> w4 w5\n" in out and "Q2> w6 banana\n" in out and "Q3> \n" in out and "A3:" not in out  # piped: echoed
    assert out.count("retrieved: ") == 2 and out.count("looked at: region ") == 2
    assert "read as <UNK>: banana" in out


def test_end_of_input_ends_the_dialog(pipeline, demo_image, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("w4"))
    assert _chat(pipeline, demo_image, "--run", LTMI) == 0
    assert capsys.readouterr().out.count("A1: ") == 1


def test_a_run_without_generative_decoder_says_so_and_retrieves(pipeline, demo_image, disc_run, tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps(["w4 w5"]))
    assert _chat(pipeline, demo_image, "--run", disc_run, "--questions", str(questions)) == 0
    captured = capsys.readouterr()
    (round_,) = json.loads(captured.out)["rounds"]
    assert round_["generated"] is None and "no generative decoder" in round_["generation_unavailable"]
    assert len(round_["retrieved"]) == 5
    (line,) = captured.err.strip().splitlines()
    assert f"run {disc_run}: this run has no generative decoder: only retrieval" in line


@pytest.mark.parametrize("case,expected", [
    ("missing image", "image file .*nowhere.jpg not found"),
    ("untrained run", "run v1.0-lg_attn_kl-gen has no checkpoint in .*checkpoint.pt not found"),
    ("bad run id", "bad run id 'v1.0-best-gen'"),
    ("not a list", "questions file .*q.json must hold a JSON list of strings"),
    ("not strings", "questions file .*q.json must hold a JSON list of strings"),
    ("empty question", "questions file .*q.json: question 2 is empty"),
    ("no questions", "questions file .*q.json holds no question"),
    ("too many questions", "q.json holds 11 questions; a dialog has at most 10"),
    ("not JSON", "cannot read questions file .*q.json: not valid JSON"),
    ("no given boxes", "photo.jpg has no given boxes"),
])
def test_bad_input_is_one_line_naming_it(pipeline, demo_image, tmp_path, capsys, case, expected):
    questions = tmp_path / "q.json"
    content = {"not a list": {"q": "w4"}, "not strings": ["w4", 5], "empty question": ["w4", "  "], "no questions": [],
               "too many questions": ["w4"] * 11}.get(case, ["w4"])
    questions.write_text("[w4" if case == "not JSON" else json.dumps(content))
    image, run = demo_image, LTMI
    if case == "missing image":
        image = tmp_path / "nowhere.jpg"
    elif case == "no given boxes":
        image = shutil.copy(demo_image, tmp_path / "photo.jpg")
    run = {"untrained run": "v1.0-lg_attn_kl-gen", "bad run id": "v1.0-best-gen"}.get(case, run)
    assert _chat(pipeline, image, "--run", run, "--questions", str(questions)) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("visdial-lg: error: ") and re.search(expected, line), line
    assert captured.out == ""
