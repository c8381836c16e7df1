"""`visdial-lg chat` on a pipeline folder (`pipeline_folder`: the micro pipeline, or `make demo`'s
for `make screenshots`): a demo val image's regions extracted as the train features were, answers
generated and retrieved from the train answers, the history carried from question to question;
each bad input one line on stderr."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

QUESTIONS = ["is there a circle", "what color is it?", "where is it"]


def _chat(folder, env, *args, timeout=300, **run_options):
    """`visdial-lg chat --directory folder ...`; run_options (input, cwd) go to subprocess.run."""
    return subprocess.run([sys.executable, "-m", "visdial_lg", "chat", "--directory", str(folder), *args],
                          env=env, capture_output=True, text=True, timeout=timeout, **run_options)


@pytest.fixture(scope="module")
def val_image(pipeline_folder):
    return sorted((pipeline_folder / "resources/demo/images/VisualDialog_val2018").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat") / "q.json"
    path.write_text(json.dumps(QUESTIONS))
    return path


@pytest.mark.parametrize("run", ["v1.0-ltmi-gen", "v1.0-lg_attn_kl-multi"])
def test_chat_answers_every_question_with_its_history(pipeline_folder, venv_env, val_image, questions, run, tmp_path):
    figure = tmp_path / "rounds.png"
    result = _chat(pipeline_folder, venv_env, "--run", run, "--image", str(val_image), "--questions", str(questions),
                   "--caption", "some shapes", "--figure", str(figure))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    w, h = out["image_size"]
    rounds = out["rounds"]
    assert [r["question"] for r in rounds] == QUESTIONS
    for r in rounds:
        assert isinstance(r["generated"], str) and r["retrieved"] and all(a["answer"] for a in r["retrieved"])
        assert len(r["regions"]) == 3
        for region in r["regions"]:
            x1, y1, x2, y2 = region["box"]
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h and 0 < region["weight"] <= 1
    assert rounds[0]["history"] == ["some shapes"]
    first = f"{rounds[0]['question_words']} {rounds[0]['generated']}".rstrip()
    assert rounds[1]["history"] == ["some shapes", first] and rounds[2]["history"][1] == first
    assert figure.is_file()


def test_chat_with_a_discriminative_run_retrieves_only(pipeline_folder, venv_env, val_image, questions):
    result = _chat(pipeline_folder, venv_env, "--run", "v1.0-ltmi-disc", "--image", str(val_image),
                   "--questions", str(questions))
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = json.loads(result.stdout)["rounds"]
    assert all(r["generated"] is None and "only retrieval" in r["generation_unavailable"] and r["retrieved"]
               for r in rounds)
    assert rounds[1]["history"][1].endswith(rounds[0]["retrieved"][0]["answer"])
    (line,) = result.stderr.strip().splitlines()
    assert "no generative decoder" in line


@pytest.mark.parametrize("case,expected", [
    ("missing image", r"image file \S*nowhere.jpg not found"),
    ("untrained run", r"run v1.0-lg_attn_mse-disc has no checkpoint in .*checkpoint.pt not found"),
    ("not a list", r"questions file \S*bad.json must hold a JSON list of strings"),
    ("empty question", r"questions file \S*bad.json: question 2 is empty"),
    ("no given boxes", r"image \S*photo.jpg has no given boxes .* random weights"),
])
def test_chat_bad_input_is_one_line(pipeline_folder, venv_env, val_image, tmp_path, case, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not a list": "is there a circle", "empty question": ["is there a circle", ""]}
                              .get(case, ["is there a circle"])))
    image = {"missing image": tmp_path / "nowhere.jpg",
             "no given boxes": shutil.copy(val_image, tmp_path / "photo.jpg")}.get(case, val_image)
    run = "v1.0-lg_attn_mse-disc" if case == "untrained run" else "v1.0-ltmi-gen"
    result = _chat(pipeline_folder, venv_env, "--run", run, "--image", str(image), "--questions", str(bad))
    assert result.returncode != 0 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and re.search(expected, line), result.stderr


def test_a_typed_dialog_gives_the_readmes_transcript(pipeline_folder, venv_env, val_image, screenshot_dir):
    """Questions typed in the terminal (piped): each answered in turn; `make screenshots` keeps
    the transcript for the README (run from the pipeline folder, so it names the image as a user would)."""
    image = val_image.relative_to(pipeline_folder)
    result = _chat(".", venv_env, "--run", "v1.0-lg_attn_kl-gen", "--image", str(image),
                   "--caption", "some shapes on a dark background",
                   input="\n".join(QUESTIONS) + "\n", cwd=pipeline_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    for i, question in enumerate(QUESTIONS, start=1):
        assert f"Q{i}> {question}" in result.stdout and f"A{i}:" in result.stdout
    if screenshot_dir:
        (screenshot_dir / "chat.txt").write_text(result.stdout)
