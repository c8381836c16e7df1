"""Figures 4 and 5 on tiny trained checkpoints: PNGs with the top-3 regions of both models,
example dialogs with both models' first-ranked answers (Markdown + HTML)."""

from __future__ import annotations

import html

import h5py
import numpy as np
import pytest
from PIL import Image

from helpers.images import images_of_features
from helpers.tiny_runs import DIALOGS, LG, LTMI, evaluated, tiny_runs
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.core.errors import InputFormatError
from visdial_lg.report.figures import (RANK_COLOURS, Generation, draw_attention, attention_figures, dialog_examples,
                                      sample_rounds)
from visdial_lg.evaluation.human import answer_text, top_answers


@pytest.fixture(scope="module")
def images(runs_base, tmp_path_factory):  # noqa: F811
    return images_of_features(tiny_runs(runs_base)["features"], tmp_path_factory.mktemp("images"))


def test_sample_rounds_draws_answered_rounds_reproducibly():
    num_rounds = np.array([10, 3])
    answers = np.zeros((2, 10), np.int32)
    answers[1, 2] = -1  # the unanswered last test round
    drawn = sample_rounds(num_rounds, answers, 12, seed=3)
    assert drawn == sample_rounds(num_rounds, answers, 12, seed=3) and len(set(drawn)) == 12
    assert all(r < num_rounds[d] and answers[d, r] >= 0 for d, r in drawn)
    with pytest.raises(InputFormatError, match="only 12 answered rounds"):
        sample_rounds(num_rounds, answers, 13)


def test_attention_figures_are_written(runs_base, images, tmp_path):  # noqa: F811
    runs = tiny_runs(runs_base)
    checkpoints = {"ltmi": runs["checkpoints"][LTMI], "lg": runs["checkpoints"][LG]}
    paths = attention_figures(checkpoints, runs["val"], runs["features"], runs["vocab"], [images],
                              tmp_path, count=3)
    assert paths == [tmp_path / f"attention_{i}.png" for i in range(3)]
    for path in paths:
        with Image.open(path) as png:
            assert png.format == "PNG" and png.size == (1000, 460)  # two panels, side by side
            pixels = np.asarray(png.convert("RGB"))
        red = np.all(pixels == (0xE4, 0x1A, 0x1C), axis=-1)  # the first region's box colour
        assert red[:, :500].any() and red[:, 500:].any()  # drawn in both panels
    assert not list(tmp_path.glob("*.tmp.png"))


def test_the_top_region_is_drawn_where_its_box_is(tmp_path):
    image = tmp_path / "COCO_val2014_000000000001.png"
    Image.new("RGB", (200, 100), (90, 160, 90)).save(image)
    boxes = np.array([[0, 0, 10, 10], [100, 50, 150, 90], [20, 20, 40, 40]], np.float32)
    top = {"ltmi": [(1, 0.7), (2, 0.2), (0, 0.1)]}
    # the extractor saw the image at half size: the boxes scale by 2
    draw_attention(image, boxes / 2, (100.0, 50.0), top, "Q1: where ? A: there", "image 1", tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as png:
        pixels = np.asarray(png.convert("RGB")).astype(int)
    ys, xs = np.nonzero(np.all(pixels == (90, 160, 90), axis=-1))  # the image's extent in the figure
    left, top_y, width, height = xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()
    colour = [int(RANK_COLOURS[0][i: i + 2], 16) for i in (1, 3, 5)]
    ry, rx = np.nonzero(np.all(pixels == colour, axis=-1))
    centre = ((rx.min() + rx.max()) / 2 - left) / width, ((ry.min() + ry.max()) / 2 - top_y) / height
    assert centre == pytest.approx((125 / 200, 70 / 100), abs=0.04)  # box 1 = (100, 50, 150, 90) in the file


def test_missing_image_is_named(runs_base, tmp_path):  # noqa: F811
    runs = tiny_runs(runs_base)
    with pytest.raises(InputFormatError, match="image 10[01] .* is in none of"):
        attention_figures({"ltmi": runs["checkpoints"][LTMI]}, runs["val"], runs["features"], runs["vocab"], [tmp_path],
                          tmp_path / "out", count=1)


def test_dialog_examples(runs_base, tmp_path):  # noqa: F811
    runs = tiny_runs(runs_base)
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    evaluations = {"ltmi": runs_base / LTMI / "val_prior.json", "lg": runs_base / LG / "val_prior.json"}
    examples = dialog_examples(evaluations, runs["val"], runs["vocab"], tmp_path / "d.md", tmp_path / "d.html", 5)
    assert len(examples) == DIALOGS and all(len(e["rounds"]) == 10 for e in examples)

    vocab = Vocabulary.load(runs["vocab"])
    with h5py.File(runs["val"]) as f:
        a_pool, a_len, answers = f["answer_tokens"][:], f["answer_len"][:], f["answer"][:]
        options, image_ids = f["answer_options"][:], f["image_id"][:].tolist()
    first = {name: top_answers(path)[1] for name, path in evaluations.items()}
    markdown, page = (tmp_path / "d.md").read_text(), (tmp_path / "d.html").read_text()
    for example in examples:
        d = image_ids.index(example["image_id"])
        assert f"## Image {example['image_id']}" in markdown and f"<h2>Image {example['image_id']}</h2>" in page
        for r, row in enumerate(example["rounds"]):
            assert row["human"] == answer_text(vocab, a_pool, a_len, answers[d, r])
            for name in ("ltmi", "lg"):
                assert row[name] == answer_text(vocab, a_pool, a_len, options[d, r, first[name][d, r]])
            line = f"| {r + 1} | {row['question']} | {row['human']} | {row['ltmi']} | {row['lg']} |"
            assert line in markdown
            assert html.escape(row["question"]) in page
    assert "| # | Question | Human | LTMI | LTMI-LG |" in markdown


def test_dialog_examples_show_each_models_generated_and_retrieved_answers(runs_base, tmp_path):  # noqa: F811
    """Figure 5's analogue: generated (beam search), retrieved and human answer, side by side."""
    runs = tiny_runs(runs_base)
    evaluated(runs_base, LTMI), evaluated(runs_base, LG)
    evaluations = {"ltmi": runs_base / LTMI / "val_prior.json", "lg": runs_base / LG / "val_prior.json"}
    generation = Generation({"ltmi": runs["checkpoints"][LTMI], "lg": runs["checkpoints"][LG]}, runs["features"],
                            width=3)
    examples = dialog_examples(evaluations, runs["val"], runs["vocab"], tmp_path / "d.md", tmp_path / "d.html", 2,
                               generation=generation)
    markdown = (tmp_path / "d.md").read_text()
    assert "| # | Question | Human | LTMI generated | LTMI retrieved | LTMI-LG generated | LTMI-LG retrieved |" \
        in markdown
    vocab_words = set(Vocabulary.load(runs["vocab"]).words[3:])  # <UNK> and the words, not <PAD> <S> </S>
    for example in examples:
        for r, row in enumerate(example["rounds"], start=1):
            for name in ("ltmi", "lg"):
                assert set(row[f"{name}_generated"].split()) <= vocab_words  # words, no <S>/<PAD>/</S>
            assert (f"| {r} | {row['question']} | {row['human']} | {row['ltmi_generated']} | {row['ltmi']} | "
                    f"{row['lg_generated']} | {row['lg']} |") in markdown
    # the generated answers are the models' own beam search on those rounds
    again = dialog_examples(evaluations, runs["val"], runs["vocab"], tmp_path / "e.md", tmp_path / "e.html", 2,
                            generation=generation)
    assert again == examples


def test_dialog_examples_need_val_ranks(runs_base, tmp_path):  # noqa: F811
    runs = tiny_runs(runs_base)
    evaluated(runs_base, LG, split="test")
    test_json = runs_base / LG / "test_prior.json"
    with pytest.raises(InputFormatError, match="no per-round 'gen' ranks"):
        dialog_examples({"ltmi": test_json, "lg": test_json}, runs["val"], runs["vocab"], tmp_path / "d.md",
                        tmp_path / "d.html", 2)
