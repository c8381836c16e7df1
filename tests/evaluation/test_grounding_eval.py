"""Table 3: category phrases in questions/answers, round boxes from COCO instances, the
random baseline, and the grounding accuracy of tiny trained checkpoints."""

from __future__ import annotations

import json
import shutil
from math import comb

import h5py
import numpy as np
import pytest
import torch

from helpers.tiny_runs import LG, LTMI, tiny_runs
from visdial_lg.evaluation.annotations import matching_regions
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.core.errors import InputFormatError
from visdial_lg.evaluation.grounding import (
    category_phrases, coco_round_boxes, grounding_accuracy, load_annotations, named_categories,
    random_hit_probability,
)

COCO_NAMES = ["person", "dog", "hot dog", "dining table", "bus", "skis", "cell phone", "sports ball"]


@pytest.fixture(scope="module")
def phrases():
    return category_phrases(COCO_NAMES)


@pytest.mark.parametrize("sentence, expected", [
    ("is the dog asleep ?", {"dog"}),
    ("how many dogs are there ?", {"dog"}),  # plural -s
    ("are the buses red ?", {"bus"}),  # plural -es
    ("is he eating a hot dog ?", {"hot dog"}),  # bigram, not also "dog"
    ("two hot dogs and a dog", {"hot dog", "dog"}),
    ("is there a dining table", {"dining table"}),
    ("any people on the table ?", {"person", "dining table"}),  # synonyms from the list
    ("she holds a cell phone", {"cell phone"}),
    ("a pair of skis", {"skis"}),  # the name itself is plural
    ("he wears a ski suit", {"skis"}),
    ("the sky is blue", set()),
    ("", set()),
])
def test_named_categories(phrases, sentence, expected):
    assert named_categories(sentence.split(), phrases) == expected


def test_only_categories_of_the_instance_file_are_matched():
    assert named_categories(["a", "ball"], category_phrases(["circle"])) == {"circle"}  # the demo's shapes
    assert named_categories(["a", "ball"], category_phrases(["sports ball"])) == {"sports ball"}
    assert named_categories(["a", "ball"], category_phrases(["dog"])) == set()


@pytest.mark.parametrize("valid, matching, top, expected", [
    (10, 1, 3, 3 / 10),  # one target among 10: 3 draws hit it with 3/10
    (10, 2, 3, 1 - (8 * 7 * 6) / (10 * 9 * 8)),  # 1 - P(all three miss)
    (4, 4, 3, 1.0),
    (2, 1, 3, 1.0),  # fewer regions than draws: all are drawn
    (36, 1, 3, 3 / 36),
    (5, 0, 3, 0.0),
])
def test_random_hit_probability_by_hand(valid, matching, top, expected):
    assert random_hit_probability(valid, matching, top) == pytest.approx(expected)


# ----------------------------------------------------------------- COCO-derived boxes

WORDS = ["<PAD>", "<S>", "</S>", "<UNK>", "is", "the", "dog", "dogs", "hot", "?", "yes", "no", "sky", "people",
         "blue", "a"]


def _ids(sentence):
    return [WORDS.index(w) for w in sentence.split()]


def _write_tokens(path, image_ids, rounds):
    """rounds: per dialog [(question, answer)] sentences; answer None = unknown (test)."""
    questions = sorted({q for d in rounds for q, _ in d})
    answers = sorted({a for d in rounds for _, a in d if a is not None})

    def pool(sentences):
        tokens = np.zeros((len(sentences), 20), np.int32)
        for i, s in enumerate(sentences):
            tokens[i, : len(_ids(s))] = _ids(s)
        return tokens, np.array([len(_ids(s)) for s in sentences], np.int32)

    with h5py.File(path, "w") as f:
        f["question_tokens"], f["question_len"] = pool(questions)
        f["answer_tokens"], f["answer_len"] = pool(answers)
        f["image_id"] = np.array(image_ids, np.int64)
        q = np.full((len(rounds), 10), -1, np.int32)
        a = np.full((len(rounds), 10), -1, np.int32)
        for d, dialog in enumerate(rounds):
            for r, (question, answer) in enumerate(dialog):
                q[d, r] = questions.index(question)
                a[d, r] = answers.index(answer) if answer is not None else -1
        f["question"], f["answer"] = q, a


def _write_instances(path):
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 54, "name": "hot dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 18, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 18, "bbox": [50, 5, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 54, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        ],
    }
    path.write_text(json.dumps(coco))


def test_round_boxes_from_coco_instances(tmp_path):
    vocab = Vocabulary(WORDS)
    tokens = tmp_path / "tokens.h5"
    rounds = [
        [("is the dog blue ?", "no"), ("is the sky blue ?", "yes"), ("a ?", "people")],
        [("hot dog ?", "yes"), ("is the sky blue ?", None)],
    ]
    _write_tokens(tokens, [1, 2], rounds)
    _write_instances(tmp_path / "instances.json")
    table = coco_round_boxes(tmp_path / "instances.json", tokens, vocab)
    assert set(table) == {(1, 1), (1, 3), (2, 1)}  # rounds naming nothing annotated are left out
    assert table[(1, 1)].tolist() == [[10, 20, 40, 60], [50, 5, 60, 15]]  # every dog, xywh -> x1y1x2y2
    assert table[(1, 3)].tolist() == [[0, 0, 5, 5]]  # named in the answer only
    assert table[(2, 1)].tolist() == [[1, 2, 4, 6]]  # the hot dog, not a dog


def test_a_broken_instance_file_is_named(tmp_path):
    (tmp_path / "instances.json").write_text("{")
    tokens = tmp_path / "tokens.h5"
    _write_tokens(tokens, [1], [[("is the dog blue ?", "no")]])
    with pytest.raises(InputFormatError, match="instances.json"):
        coco_round_boxes(tmp_path / "instances.json", tokens, Vocabulary(WORDS))


def test_load_annotations_says_where_they_came_from(tmp_path):
    path = tmp_path / "rounds.json"
    path.write_text(json.dumps([{"image_id": 1, "round_id": 2, "boxes": [[0, 0, 4, 4]]}]))
    table, source = load_annotations(None, path, tmp_path / "unused.h5", None)
    assert list(table) == [(1, 2)] and "rounds.json" in source
    with pytest.raises(InputFormatError, match="--coco-instances"):
        load_annotations(None, None, tmp_path / "unused.h5", None)


# ------------------------------------------------------------------- the accuracy


@pytest.fixture(scope="module")
def round_boxes(runs_base):  # noqa: F811
    """Every round of every image refers to region r % K (its exact box)."""
    with h5py.File(tiny_runs(runs_base)["features"]) as f:
        boxes, ids = f["boxes"][:], f["image_id"][:]
    return {(int(i), r + 1): torch.tensor(boxes[n, r % boxes.shape[1]][None]) for n, i in enumerate(ids)
            for r in range(10)}, torch.tensor(boxes), ids


@pytest.mark.parametrize("run", [LTMI, LG])
def test_grounding_accuracy_file(runs_base, round_boxes, tmp_path, run):  # noqa: F811
    table, boxes, ids = round_boxes
    runs = tiny_runs(runs_base)
    out = tmp_path / "grounding.json"
    result = grounding_accuracy(runs["checkpoints"][run], runs["val"], runs["features"], out,
                                annotations=table, source="test boxes", samples=15, batch_size=2)
    assert json.loads(out.read_text()) == result
    assert set(result) == {"run", "annotations", "annotated", "eligible", "count", "top", "prior", "posterior",
                           "random"}
    assert result["annotated"] == 20
    assert result["run"] == run and result["annotations"] == "test boxes" and result["top"] == 3
    assert result["eligible"] == 20 and result["count"] == 15  # 2 dialogs x 10 rounds, 15 sampled
    for key in ("prior", "posterior", "random"):
        assert 0.0 <= result[key] <= 1.0
    # every round's target is one region of 6 (plus the regions overlapping it by IoU >= 0.5)
    matches = [int(matching_regions(boxes[n], boxes[n, r % 6][None]).sum()) for n in range(len(ids)) for r in range(10)]
    expected = [random_hit_probability(6, m) for m in matches]
    assert min(expected) - 1e-9 <= result["random"] <= max(expected) + 1e-9


@pytest.mark.parametrize("far", [False, True])
def test_no_measurable_round_gives_an_empty_result_with_its_reason(runs_base, tmp_path, far):  # noqa: F811
    runs = tiny_runs(runs_base)
    with h5py.File(runs["features"]) as f:
        ids = f["image_id"][:]
    # far: every round annotated, but with a box no region overlaps; else nothing annotated
    table = {(int(i), r): torch.tensor([[1000.0, 1000.0, 1010.0, 1010.0]]) for i in ids for r in range(1, 11)} \
        if far else {}
    result = grounding_accuracy(runs["checkpoints"][LTMI], runs["val"], runs["features"], tmp_path / "g.json",
                                annotations=table, source="none", samples=5, batch_size=2)
    assert result["annotated"] == (20 if far else 0) and result["eligible"] == result["count"] == 0
    assert result["prior"] is result["posterior"] is result["random"] is None
    assert f"none of the {result['annotated']} annotated rounds" in result["note"]
    assert json.loads((tmp_path / "g.json").read_text()) == result


def test_random_is_exactly_three_of_k_when_one_region_matches(runs_base, tmp_path):  # noqa: F811
    """Disjoint regions, each annotation the box of one of them: P(hit) = 3/6."""
    runs = tiny_runs(runs_base)
    features = tmp_path / "features.h5"
    shutil.copy(runs["features"], features)
    with h5py.File(features, "a") as f:
        f["boxes"][:] = np.array([[100 * k, 0, 100 * k + 10, 10] for k in range(6)], np.float32)
        ids = f["image_id"][:]
    table = {(int(i), 1): torch.tensor([[0.0, 0.0, 10.0, 10.0]]) for i in ids}
    result = grounding_accuracy(runs["checkpoints"][LTMI], runs["val"], features, tmp_path / "g.json",
                                annotations=table, source="one box", samples=10, batch_size=2)
    assert result["eligible"] == 2 and result["random"] == pytest.approx(comb(5, 2) / comb(6, 3))


# ------------------------------------------------------------------ round-box files


def test_matching_regions_by_iou():
    regions = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 20], [5, 0, 15, 10], [50, 50, 60, 60]], dtype=torch.float32)
    # IoU with (0,0,10,10): 1, 100/200 = 0.5, 50/150 = 0.33, 0
    assert matching_regions(regions, torch.tensor([[0.0, 0.0, 10.0, 10.0]])).tolist() == [True, True, False, False]
    assert not matching_regions(regions, torch.zeros(0, 4)).any()


def test_oracle_regions_mark_only_annotated_rounds():
    from visdial_lg.evaluation.annotations import oracle_regions

    batch = {"boxes": torch.tensor([[[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]]], dtype=torch.float32),
             "num_boxes": torch.tensor([2]), "image_id": torch.tensor([7]), "ques_tokens": torch.zeros(1, 10, 20)}
    marked = oracle_regions(batch, {(7, 3): torch.tensor([[0.0, 0.0, 10.0, 10.0]]), (8, 1): torch.zeros(0, 4)})
    assert marked.shape == (1, 10, 3)
    assert marked[0, 2].tolist() == [True, False, False]  # the padded third region never counts
    assert marked.sum() == 1


@pytest.mark.parametrize("text, culprit", [
    ("[{", "not valid JSON"),
    ('{"image_id": 1}', "expected a list"),
    ('[{"image_id": 1, "round_id": 2}]', "entry 0 is not"),
    ('[{"image_id": 1, "round_id": 2, "boxes": [[1, 2, 3]]}]', "entry 0 is not"),
])
def test_malformed_round_box_file_is_named(tmp_path, text, culprit):
    from visdial_lg.evaluation.annotations import load_round_boxes

    path = tmp_path / "rounds.json"
    path.write_text(text)
    with pytest.raises(InputFormatError, match=culprit) as error:
        load_round_boxes(path)
    assert "rounds.json" in str(error.value)
    with pytest.raises(InputFormatError, match="not found"):
        load_round_boxes(tmp_path / "missing.json")
