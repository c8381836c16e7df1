"""VisDial JSON reader / validator: valid layouts load; each malformation is one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.visdial_json import make_dense, make_visdial, write_json
from visdial_lg.text import visdial
from visdial_lg.text.visdial import VisDialFormatError, load_dense, load_visdial
from visdial_lg.core.errors import InputFormatError


def _error(tmp_path, data, version="v1.0", split="train", name="bad.json") -> str:
    path = write_json(tmp_path / name, data)
    with pytest.raises(InputFormatError) as info:
        load_visdial(path, version, split)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_train_split_loads_as_arrays(tmp_path):
    data = make_visdial(4)
    split = load_visdial(write_json(tmp_path / "t.json", data), "v1.0", "train")
    d = split.dialogs
    assert len(d) == 4 and split.split == "train" and split.version == "v1.0"
    assert d.image_id.tolist() == [100, 101, 102, 103] and d.image_id.dtype == np.int64
    assert d.question.shape == (4, 10) and d.answer_options.shape == (4, 10, 100)
    assert d.num_rounds.tolist() == [10] * 4
    raw = data["data"]["dialogs"][2]["dialog"][3]
    assert d.question[2, 3] == raw["question"] and d.gt_index[2, 3] == raw["gt_index"]
    assert d.answer_options[2, 3].tolist() == raw["answer_options"]
    assert d.caption[1] == data["data"]["dialogs"][1]["caption"]
    assert split.questions[0] == "is it a man's hat"


def test_v09_loads_with_the_same_schema(tmp_path):
    split = load_visdial(write_json(tmp_path / "v.json", make_visdial(2, split="val", version="0.9")), "v0.9", "val")
    assert len(split.dialogs) == 2


def test_test_split_pads_rounds_with_minus_one(tmp_path):
    split = load_visdial(write_json(tmp_path / "t.json", make_visdial(3, split="test")), "v1.0", "test")
    d = split.dialogs
    assert d.num_rounds.tolist() == [1, 2, 3]
    assert d.question[1].tolist()[:2] == [10, 11] and (d.question[1, 2:] == -1).all()
    assert (d.answer[1, 1:] == -1).all() and d.answer[1, 0] >= 0  # the last round has no answer
    assert (d.answer_options[2, :2] == -1).all() and (d.answer_options[2, 2] >= 0).all()
    assert (d.gt_index == -1).all()


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": {\n  "questions": ["a",]\n}}')
    with pytest.raises(InputFormatError, match=r"broken\.json: not valid JSON: .* line 2, column \d+$"):
        load_visdial(path, "v1.0", "train")


def test_missing_file(tmp_path):
    with pytest.raises(InputFormatError, match="nope.json: file not found"):
        load_visdial(tmp_path / "nope.json", "v1.0", "train")


def test_train_dialog_with_nine_rounds(tmp_path):
    data = make_visdial(3)
    del data["data"]["dialogs"][1]["dialog"][-1]
    msg = _error(tmp_path, data)
    assert msg.endswith("dialog 1 (image_id 101): a train dialog has 9 rounds, expected 10")


def test_option_index_out_of_range(tmp_path):
    data = make_visdial(3)
    data["data"]["dialogs"][2]["dialog"][4]["answer_options"][7] = len(data["data"]["answers"]) + 5
    msg = _error(tmp_path, data)
    assert "dialog 2 (image_id 102): round 5: answer_options[7] = 125 out of range [0, 120)" in msg


def test_test_option_index_out_of_range(tmp_path):
    data = make_visdial(3, split="test")
    data["data"]["dialogs"][2]["dialog"][-1]["answer_options"][0] = -3
    msg = _error(tmp_path, data, split="test")
    assert "dialog 2 (image_id 102): round 3: answer_options[0] = -3 out of range" in msg


@pytest.mark.parametrize("where, key", [("dialog", "caption"), ("dialog", "image_id"), ("round", "question"),
                                        ("round", "answer_options"), ("round", "gt_index")])
def test_missing_keys(tmp_path, where, key):
    data = make_visdial(2)
    target = data["data"]["dialogs"][1]
    if where == "round":
        target = target["dialog"][6]
    del target[key]
    msg = _error(tmp_path, data)
    assert f'dialog 1 (image_id {"?" if key == "image_id" else 101}):' in msg
    assert f'missing key "{key}"' in msg and (where == "dialog" or "round 7:" in msg)


def test_missing_top_level_pool(tmp_path):
    data = make_visdial(2)
    del data["data"]["answers"]
    assert "data.answers is missing or not a list" in _error(tmp_path, data)


@pytest.mark.parametrize("gt", [100, -1])
def test_gt_index_out_of_range(tmp_path, gt):
    data = make_visdial(2)
    data["data"]["dialogs"][0]["dialog"][9]["gt_index"] = gt
    assert f"dialog 0 (image_id 100): round 10: gt_index = {gt} out of range [0, 100)" in _error(tmp_path, data)


def test_gt_option_must_be_the_answer(tmp_path):
    data = make_visdial(2)
    rd = data["data"]["dialogs"][1]["dialog"][0]
    rd["gt_index"] = (rd["gt_index"] + 1) % 100
    assert "dialog 1 (image_id 101): round 1: answer_options[gt_index=" in _error(tmp_path, data)


def test_non_integer_and_ragged_options(tmp_path):
    data = make_visdial(2)
    data["data"]["dialogs"][1]["dialog"][2]["answer_options"][5] = "7"
    assert "round 3: answer_options[5] = '7' is not an integer" in _error(tmp_path, data)
    data = make_visdial(2)
    data["data"]["dialogs"][0]["dialog"][1]["answer_options"].pop()
    assert "dialog 0 (image_id 100): round 2: answer_options has 99 entries, expected 100" in _error(tmp_path, data)


def test_duplicate_image_ids(tmp_path):
    data = make_visdial(4)
    data["data"]["dialogs"][3]["image_id"] = 101
    assert "dialog 3 (image_id 101): duplicate image_id, already used by dialog 1" in _error(tmp_path, data)


def test_test_dialog_whose_last_round_has_an_answer(tmp_path):
    data = make_visdial(3, split="test")
    data["data"]["dialogs"][2]["dialog"][-1]["answer"] = 0
    msg = _error(tmp_path, data, split="test")
    assert 'dialog 2 (image_id 102): round 3: the last round of a test dialog must not have "answer"' in msg


def test_header_split_and_version_must_match(tmp_path):
    assert "says \"split\": 'train' but was given as split 'val'" in _error(tmp_path, make_visdial(1), split="val")
    assert "says \"version\": '1.0'" in _error(tmp_path, make_visdial(1), version="v0.9")
    with pytest.raises(InputFormatError, match="v0.9 has no split 'test'"):
        load_visdial(tmp_path / "x.json", "v0.9", "test")


# ---------------------------------------------------------------- dense annotations


def _val(tmp_path, n=4):
    data = make_visdial(n, split="val")
    return data, load_visdial(write_json(tmp_path / "val.json", data), "v1.0", "val")


@pytest.mark.parametrize("key", ["gt_relevance", "relevance"])
def test_dense_accepts_both_keys(tmp_path, key):
    data, split = _val(tmp_path)
    dense = load_dense(write_json(tmp_path / "dense.json", make_dense(data, key=key, every=2)), split)
    assert sorted(dense) == [100, 102]
    round_id, rel = dense[102]
    assert round_id == 2 and rel.dtype == np.float32 and rel.shape == (100,)
    assert rel.tolist() == make_dense(data, key=key, every=2)[1][key]


@pytest.mark.parametrize("change, expected", [
    (lambda e: e.update(image_id=999), "entry 1 (image_id 999): image_id is not in the v1.0 val dialogs"),
    (lambda e: e.update(round_id=11), "entry 1 (image_id 101): round_id 11 out of range 1..10"),
    (lambda e: e.update(round_id=0), "entry 1 (image_id 101): round_id 0 out of range 1..10"),
    (lambda e: e["gt_relevance"].pop(), "entry 1 (image_id 101): gt_relevance has 99 values, expected 100"),
    (lambda e: e.pop("gt_relevance"), 'entry 1 (image_id 101): missing key "gt_relevance" (or "relevance")'),
    (lambda e: e.update(image_id=100), "entry 1 (image_id 100): image_id is annotated twice"),
])
def test_dense_mismatches(tmp_path, change, expected):
    data, split = _val(tmp_path)
    entries = make_dense(data)
    change(entries[1])
    path = write_json(tmp_path / "dense.json", entries)
    with pytest.raises(VisDialFormatError) as info:
        load_dense(path, split)
    assert str(info.value) == f"{path}: {expected}" or str(info.value).startswith(f"{path}: {expected}")



# ------------------------------------------- numpy fast path for the option arrays


def _plain(monkeypatch, path, version="v1.0", split="train"):
    with monkeypatch.context() as m:
        m.setattr(visdial, "read_with_options", lambda p: None)
        return load_visdial(path, version, split)


def _assert_same(a, b):
    for name in ("image_id", "num_rounds", "question", "answer", "answer_options", "gt_index"):
        x, y = getattr(a.dialogs, name), getattr(b.dialogs, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.dialogs.caption == b.dialogs.caption and a.questions == b.questions and a.answers == b.answers


@pytest.mark.parametrize("split", ["train", "test"])
def test_fast_path_equals_plain_json(tmp_path, monkeypatch, split):
    data = make_visdial(12, split=split)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data, indent=2))  # arrays spread over lines, as pretty-printed files are
    plain = _plain(monkeypatch, path, split=split)
    monkeypatch.setattr(visdial, "read_json", lambda p: pytest.fail("fell back to plain json"))
    _assert_same(load_visdial(path, "v1.0", split), plain)


@pytest.mark.parametrize("change", [
    lambda d: d["data"]["dialogs"][1].update(answer_options=list(range(100))),  # an extra key elsewhere
    lambda d: d["data"]["dialogs"][0]["dialog"][2].update(note='"answer_options": [1, 2]'),  # inside a string
])
def test_fast_path_mismatch_falls_back_to_plain_json(tmp_path, monkeypatch, change):
    data = make_visdial(3)
    change(data)
    path = write_json(tmp_path / "d.json", data)
    _assert_same(load_visdial(path, "v1.0", "train"), _plain(monkeypatch, path))


@pytest.mark.parametrize("value, expected", [
    (1.5, "round 4: answer_options[6] = 1.5 is not an integer"),
    ([3], "round 4: answer_options[6] = [3] is not an integer"),
    (True, "round 4: answer_options[6] = True is not an integer"),
])
def test_fast_path_leaves_bad_values_to_plain_json(tmp_path, value, expected):
    data = make_visdial(3)
    data["data"]["dialogs"][1]["dialog"][3]["answer_options"][6] = value
    assert f"dialog 1 (image_id 101): {expected}" in _error(tmp_path, data)


def test_syntax_error_inside_options_names_the_original_line(tmp_path):
    data = make_visdial(2)
    text = json.dumps(data, indent=1).replace('"answer_options": [\n', '"answer_options": [\n ,', 1)
    path = tmp_path / "broken.json"
    path.write_text(text)
    line = text[: text.index("[\n ,")].count("\n") + 2
    with pytest.raises(InputFormatError, match=rf"broken\.json: not valid JSON: .* at line {line}, column 2$"):
        load_visdial(path, "v1.0", "train")


@pytest.mark.parametrize("key", ["question", "gt_index"])
def test_booleans_are_not_indices(tmp_path, key):
    data = make_visdial(2)
    data["data"]["dialogs"][1]["dialog"][0][key] = True
    assert f"dialog 1 (image_id 101): round 1: {key} True is not an integer" in _error(tmp_path, data)
