"""Vocabulary: specials, min count, occurrence counting, order, file round trip, GloVe init."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.visdial_json import make_visdial, write_json
from visdial_lg.cli import main
from visdial_lg.core.config import TextConfig
from visdial_lg.text.visdial import load_visdial
from visdial_lg.text.vocab import Vocabulary, build_vocabulary, build_vocabulary_file, count_words
from visdial_lg.core.errors import InputFormatError


def _split(tmp_path, **kw):
    return load_visdial(write_json(tmp_path / "train.json", make_visdial(**kw)), "v1.0", "train")


def _text(**kw) -> TextConfig:
    return TextConfig.from_dict({"workers": 1, **kw}, "text")


def test_counts_are_per_occurrence_of_captions_questions_and_gt_answers(tmp_path):
    questions = ["is it red", "is it blue"]
    answers = ["zebra"] + [f"opt{i}" for i in range(120)]
    split = _split(tmp_path, num_dialogs=2, questions=questions, answers=answers, captions=["a red bus"])
    d = split.dialogs
    counts = count_words(split)
    assert counts["?"] == 20  # every question gets "?" (LTMI), 20 rounds
    assert counts["is"] == 20 and counts["red"] == 10 + 2  # 10 questions + 2 captions
    assert counts["a"] == 2 and counts["bus"] == 2
    gt = np.bincount(d.answer.ravel(), minlength=len(answers))
    for k in (0, 5, 77):  # GT answers count per round; options that are never the answer do not
        assert counts[answers[k]] == gt[k]
    assert sum(counts[a] for a in answers) == 20


def test_specials_min_count_and_order(tmp_path):
    split = _split(tmp_path, num_dialogs=3)
    counts = count_words(split)
    vocab = build_vocabulary(split, min_count=3)
    assert vocab.words[:4] == ["<PAD>", "<S>", "</S>", "<UNK>"]
    assert (Vocabulary.PAD, Vocabulary.SOS, Vocabulary.EOS, Vocabulary.UNK) == (0, 1, 2, 3)
    words = vocab.words[4:]
    assert words[0] == "?"  # as in LTMI: "?" ends all 30 questions
    assert set(words) == {w for w, c in counts.items() if c >= 3}
    keys = [(-counts[w], w) for w in words]
    assert keys == sorted(keys)  # by count descending, ties alphabetical
    assert "surfboard" not in vocab and vocab.index("surfboard") == Vocabulary.UNK  # count 1 < 3


def test_vocabulary_api(tmp_path):
    vocab = Vocabulary(["<PAD>", "<S>", "</S>", "<UNK>", "?", "is", "it"])
    assert len(vocab) == 7 and vocab.index("is") == 5 and vocab.index("nope") == 3
    assert vocab.to_ids(["is", "it", "blue", "?"]) == [5, 6, 3, 4]
    assert vocab.to_words(np.array([1, 5, 6, 2, 0])) == ["<S>", "is", "it", "</S>", "<PAD>"]
    with pytest.raises(InputFormatError, match="must start with"):
        Vocabulary(["is", "<PAD>"])


def test_vocabulary_file_round_trip_and_determinism(tmp_path):
    train = write_json(tmp_path / "train.json", make_visdial(3))
    out1, out2 = tmp_path / "v1.json", tmp_path / "v2.json"
    vocab = build_vocabulary_file(train, out1, _text(min_count=2))
    build_vocabulary_file(train, out2, _text(min_count=2, workers=2))
    assert out1.read_bytes() == out2.read_bytes()
    stored = json.loads(out1.read_text())
    assert stored["min_count"] == 2 and stored["source"] == str(train)
    assert Vocabulary.load(out1).words == vocab.words
    assert not list(tmp_path.glob("*.tmp"))


def test_vocabulary_load_errors(tmp_path):
    bad = tmp_path / "vocab.json"
    bad.write_text('{"words": ["a", "b"]}')
    with pytest.raises(InputFormatError, match=r"vocab\.json: a vocabulary must start with <PAD>"):
        Vocabulary.load(bad)


def _glove_line(word: str, value: float) -> str:
    return word + " " + " ".join(f"{value + k / 1000:.4f}" for k in range(300)) + "\n"


def test_glove_embedding(tmp_path):
    train = write_json(tmp_path / "train.json", make_visdial(3))
    glove = tmp_path / "glove.txt"
    # ". . ." is a 840B-style word with spaces: its first part "." must not be taken for "."
    glove.write_text(_glove_line("is", 1.0) + _glove_line(". . .", 9.0) + _glove_line("?", 2.0)
                     + _glove_line("is", 5.0) + _glove_line("notinvocab", 3.0))
    out, pt = tmp_path / "vocab.json", tmp_path / "glove.pt"
    vocab = build_vocabulary_file(train, out, _text(min_count=1), glove_path=glove, glove_out=pt)
    weight = torch.load(pt)["weight"]
    assert weight.dtype == torch.float32 and weight.shape == (len(vocab), 300)
    expected = torch.tensor([k / 1000 for k in range(300)])
    assert torch.allclose(weight[vocab.index("is")], 1.0 + expected, atol=1e-4)  # first occurrence wins
    assert torch.allclose(weight[vocab.index("?")], 2.0 + expected, atol=1e-4)
    others = weight[[i for i, w in enumerate(vocab.words) if w not in ("is", "?")]]
    assert abs(others.std().item() - 300**-0.5) < 0.01 and abs(others.mean().item()) < 0.01
    # the `glove` command (the pipeline's rule) gives the same, seeded table
    assert main(["glove", "--vocab", str(out), "--glove", str(glove), "--out", str(tmp_path / "again.pt")]) == 0
    assert torch.equal(torch.load(tmp_path / "again.pt")["weight"], weight)


def test_glove_bad_line_names_file_and_line(tmp_path):
    train = write_json(tmp_path / "train.json", make_visdial(1))
    glove = tmp_path / "glove.txt"
    glove.write_text(_glove_line("the", 0.0) + "is 0.1 0.2\n")
    with pytest.raises(InputFormatError, match=r"glove\.txt: line 2: expected a word and 300 numbers"):
        build_vocabulary_file(train, tmp_path / "v.json", _text(min_count=1), glove_path=glove,
                              glove_out=tmp_path / "g.pt")
    assert not (tmp_path / "v.json").exists()
