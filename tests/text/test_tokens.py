"""Tokenizer (NLTK-exact, no data files) and the tokens HDF5 of one split."""

from __future__ import annotations

import random

import h5py
import nltk
import numpy as np
import pytest
from nltk.tokenize import NLTKWordTokenizer

from helpers.visdial_json import ANSWERS, QUESTIONS, make_dense, make_visdial, write_json
from visdial_lg.cli import main
from visdial_lg.core.config import TextConfig
from visdial_lg.text import tokenizer
from visdial_lg.text.tokens import tokenize_pools, tokenize_split
from visdial_lg.text.tokenizer import count_tokens, token_ids, tokenize, tokenize_many
from visdial_lg.text.vocab import Vocabulary, build_vocabulary_file

# ------------------------------------------------------------------ tokenizer


@pytest.mark.parametrize("text, tokens", [
    ("is it a man's hat?", ["is", "it", "a", "man", "'s", "hat", "?"]),
    ("i can't tell", ["i", "ca", "n't", "tell"]),
    ("no, it's cloudy", ["no", ",", "it", "'s", "cloudy"]),
    ("a man riding a wave on top of a surfboard.", "a man riding a wave on top of a surfboard .".split()),
    ("he's wearing a t-shirt", ["he", "'s", "wearing", "a", "t-shirt"]),
    ("i cannot see, it's 1,000 feet", ["i", "can", "not", "see", ",", "it", "'s", "1,000", "feet"]),
    ('he said "hi"', ["he", "said", "``", "hi", "''"]),
    # a mid-string sentence end is split off as Punkt + word_tokenize do
    ("no. it's brown", ["no", ".", "it", "'s", "brown"]),
    ("yes! 2 of them.", ["yes", "!", "2", "of", "them", "."]),
    # ... but not after abbreviations, initials, numbers, dotted words
    ("mr. smith in the u.s. at 2. pm", ["mr.", "smith", "in", "the", "u.s.", "at", "2.", "pm"]),
    ("  extra   spaces  ", ["extra", "spaces"]),
    ("", []),
])
def test_tokenizer_matches_treebank_splits(text, tokens):
    assert tokenize(text) == tokens


def test_tokenizer_equals_nltk_on_single_sentences():
    """Word-by-word caching gives exactly NLTKWordTokenizer's tokens (= word_tokenize on one sentence)."""
    pieces = ["can't", "cannot", "Cannot", "it's", "dogs'", "'tis", "\"hi\"", "u.s.", "dog,", "1,000", "3.5",
              "wanna", "(a)", "[b]", "--", "...", "a:b", "$5", "#1", "'quoted'", "``", "''", "e-mail", "i'm",
              "they'll", "o'clock", "&", ";", "'", '"', ".", ",", ":", "the", "man", "x", "d'ye", "more'n",
              "«a»", "“b”", "—", "*", "{}", "dog.'", "n't", '"dog."', "a,", "2:30", "gonna", "x.", "?x", "y!"]
    rng = random.Random(0)
    reference = NLTKWordTokenizer()
    for _ in range(1500):
        words = [rng.choice(pieces) for _ in range(rng.randint(1, 7))]
        out: list[str] = []
        tokenizer._tokenize_sentence(words, out)
        assert out == reference.tokenize(" ".join(words)), words


def test_tokenizer_needs_no_nltk_data(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("NLTK data was requested")

    monkeypatch.setattr(nltk.data, "load", forbidden)
    monkeypatch.setattr(nltk.data, "find", forbidden)
    monkeypatch.setattr(nltk, "download", forbidden)
    tokenizer._word_tokens.cache_clear()
    assert tokenize("what's that? no. it isn't, i think") == \
        ["what", "'s", "that", "?", "no", ".", "it", "is", "n't", ",", "i", "think"]


def test_parallel_tokenization_is_ordered_and_equal_across_workers():
    strings = [f"is it {k}'s {k % 7}? no. w{k % 3}" for k in range(40)]
    one = tokenize_many(strings, workers=1, chunk_size=6)
    assert one == [tokenize(s) for s in strings]
    assert tokenize_many(strings, workers=2, chunk_size=6) == one
    words = ["<PAD>", "<S>", "</S>", "<UNK>", "?", "is", "it", "no", ".", "w1"]
    flat, lengths = token_ids(strings, words, workers=2, chunk_size=6)
    assert lengths.tolist() == [len(t) for t in one]
    index = {w: i for i, w in enumerate(words)}
    assert flat.tolist() == [index.get(t, 3) for t in sum(one, [])]
    weights = list(range(40))
    counts = count_tokens(strings, weights, workers=2, chunk_size=7)
    assert counts == count_tokens(strings, weights, workers=1)
    assert counts["?"] == sum(weights) and counts["w1"] == sum(w for w in weights if w % 3 == 1)


# ------------------------------------------------------------------ tokens HDF5


def _text(**kw) -> TextConfig:
    return TextConfig.from_dict({"workers": 1, "min_count": 1, **kw}, "text")


def _vocab(tmp_path, text_cfg):
    train = write_json(tmp_path / "train.json", make_visdial(3))
    build_vocabulary_file(train, tmp_path / "vocab.json", text_cfg)
    return train, tmp_path / "vocab.json", Vocabulary.load(tmp_path / "vocab.json")


def test_pool_truncates_and_pads():
    vocab = Vocabulary(["<PAD>", "<S>", "</S>", "<UNK>", "a", "b", "c"])
    pool, rows = tokenize_pools([["a b c", "", "c " * 30, "b zz"], ["a b c", "c b"]], vocab, workers=1)
    assert rows[0].tolist() == [0, 1, 2, 3] and rows[1].tolist() == [0, 4]  # "a b c" once
    ids, lengths = pool.padded(rows[0], max_len=4)
    assert ids.tolist() == [[4, 5, 6, 0], [0, 0, 0, 0], [6, 6, 6, 6], [5, 3, 0, 0]] and lengths.tolist() == [3, 0, 4, 2]
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    ids, lengths = pool.padded(rows[1], max_len=2)
    assert ids.tolist() == [[4, 5], [6, 5]] and lengths.tolist() == [2, 2]


def test_train_tokens_file(tmp_path):
    text_cfg = _text()
    train, vocab_path, vocab = _vocab(tmp_path, text_cfg)
    out = tmp_path / "v1.0_train.h5"
    tokenize_split(train, vocab_path, out, text_cfg, version="v1.0", split="train")
    assert not list(tmp_path.glob("*.tmp"))
    with h5py.File(out) as f:
        assert dict(f.attrs) == {"version": "v1.0", "split": "train", "vocab_size": len(vocab), "num_options": 100,
                                 "max_question_len": 20, "max_answer_len": 20, "max_caption_len": 40}
        assert f["question_tokens"].shape == (len(QUESTIONS), 20) and f["answer_tokens"].shape == (len(ANSWERS), 20)
        assert f["caption_tokens"].shape == (3, 40) and f["answer_options"].shape == (3, 10, 100)
        assert f["answer_options"].dtype == np.int32 and f["gt_index"].dtype == np.int16
        assert f["image_id"].dtype == np.int64 and "dense_round" not in f
        q0 = f["question_tokens"][0, : f["question_len"][0]]
        assert vocab.to_words(q0) == ["is", "it", "a", "man", "'s", "hat", "?"]  # "?" appended
        data = make_visdial(3)
        k = data["data"]["dialogs"][0]["dialog"][0]["answer"]  # a GT answer: its words are in the vocabulary
        assert vocab.to_words(f["answer_tokens"][k, : f["answer_len"][k]]) == tokenize(ANSWERS[k])  # words only
        assert f["gt_index"][1, 4] == data["data"]["dialogs"][1]["dialog"][4]["gt_index"]
        assert f["answer_options"][2, 9].tolist() == data["data"]["dialogs"][2]["dialog"][9]["answer_options"]
        assert (f["question_tokens"][0, 7:] == 0).all()


def test_truncation_lengths(tmp_path):
    long_q, long_a, long_c = " ".join(["dog"] * 30), " ".join(["cat"] * 25), " ".join(["sky"] * 50)
    data = make_visdial(1, questions=[long_q] + QUESTIONS[1:], answers=[long_a] + ANSWERS[1:], captions=[long_c])
    path = write_json(tmp_path / "train.json", data)
    text_cfg = _text()
    build_vocabulary_file(path, tmp_path / "vocab.json", text_cfg)
    tokenize_split(path, tmp_path / "vocab.json", tmp_path / "t.h5", text_cfg, version="v1.0", split="train")
    vocab = Vocabulary.load(tmp_path / "vocab.json")
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["question_len"][0] == 20 and "?" not in vocab.to_words(f["question_tokens"][0])  # LTMI: "?" cut
        assert f["answer_len"][0] == 20 and f["caption_len"][0] == 40
        assert set(vocab.to_words(f["caption_tokens"][0])) == {"sky"}


def test_unique_strings_are_tokenized_once(tmp_path, monkeypatch):
    # the caption "yes" equals an answer; captions repeat across dialogs
    data = make_visdial(6, captions=["yes", "two cats sleeping"])
    path = write_json(tmp_path / "train.json", data)
    text_cfg = _text()
    build_vocabulary_file(path, tmp_path / "vocab.json", text_cfg)
    seen: list[str] = []
    real = tokenizer.tokenize
    monkeypatch.setattr(tokenizer, "tokenize", lambda s: seen.append(s) or real(s))
    tokenize_split(path, tmp_path / "vocab.json", tmp_path / "t.h5", text_cfg, version="v1.0", split="train")
    assert sorted(seen) == sorted(set(seen))
    assert set(seen) == {q + "?" for q in QUESTIONS} | set(ANSWERS) | {"two cats sleeping"}
    with h5py.File(tmp_path / "t.h5") as f:  # pools keep their sizes; dialogs index into them
        assert len(f["question_tokens"]) == len(QUESTIONS) and len(f["answer_tokens"]) == len(ANSWERS)
        assert (f["caption_tokens"][0] == f["caption_tokens"][2]).all()


def test_test_split_padded_rounds(tmp_path):
    text_cfg = _text()
    _, vocab_path, _ = _vocab(tmp_path, text_cfg)
    path = write_json(tmp_path / "test.json", make_visdial(4, split="test"))
    tokenize_split(path, vocab_path, tmp_path / "test.h5", text_cfg, version="v1.0", split="test")
    with h5py.File(tmp_path / "test.h5") as f:
        assert f["num_rounds"][:].tolist() == [1, 2, 3, 4]
        assert f["question"][2].tolist()[3:] == [-1] * 7 and (f["question"][2, :3] >= 0).all()
        assert f["answer"][2].tolist()[2:] == [-1] * 8
        opts = f["answer_options"][:]
        assert (opts[3, 3] >= 0).all() and (opts[3, :3] == -1).all() and (opts[3, 4:] == -1).all()
        assert (f["gt_index"][:] == -1).all()


def test_dense_annotations_are_stored(tmp_path):
    text_cfg = _text()
    _, vocab_path, _ = _vocab(tmp_path, text_cfg)
    data = make_visdial(4, split="val", first_image_id=500)
    path = write_json(tmp_path / "val.json", data)
    entries = make_dense(data, every=2)  # dialogs 0 and 2
    dense = write_json(tmp_path / "dense.json", entries)
    tokenize_split(path, vocab_path, tmp_path / "val.h5", text_cfg, version="v1.0", split="val", dense_path=dense)
    with h5py.File(tmp_path / "val.h5") as f:
        assert f["dense_round"][:].tolist() == [1, 0, 2, 0] and f["dense_round"].dtype == np.int16
        rel = f["gt_relevance"][:]
        assert rel.shape == (4, 100) and rel.dtype == np.float32
        assert rel[2].tolist() == entries[1]["gt_relevance"] and (rel[1] == 0).all()


def test_output_is_deterministic(tmp_path):
    train, vocab_path, _ = _vocab(tmp_path, _text())
    tokenize_split(train, vocab_path, tmp_path / "a.h5", _text(), version="v1.0", split="train")
    tokenize_split(train, vocab_path, tmp_path / "b.h5", _text(workers=2), version="v1.0", split="train")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_cli_bad_json_is_one_line_and_keeps_nothing_partial(tmp_path, capsys):
    _, vocab_path, _ = _vocab(tmp_path, _text())
    data = make_visdial(2)
    data["data"]["dialogs"][1]["dialog"][3]["answer_options"][0] = 10**6
    path = write_json(tmp_path / "val.json", data | {"split": "val"})
    out = tmp_path / "val.h5"
    rc = main(["tokenize", "--json", str(path), "--vocab", str(vocab_path), "--out", str(out),
               "--version", "v1.0", "--split", "val"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("visdial-lg: error: ") and "round 4: answer_options[0] = 1000000" in err[-1]
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
