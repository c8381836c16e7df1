"""The measurements of docs/demo.md, "Evidence that the chain works" (`visdial_lg.demo.evidence`):
answer types, the linear probe, the object rows of a features file, the goal verdicts; on tiny
hand-made inputs and a micro demo (no trained model)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from visdial_lg.core.config import DemoConfig
from visdial_lg.core.errors import InputFormatError
from visdial_lg.demo import evidence, probe, regenerate
from visdial_lg.demo.answers import UNINFORMATIVE, all_meanings, answer_inventory, wordings
from visdial_lg.demo.layout import DemoImage
from visdial_lg.demo.make import make_demo
from visdial_lg.demo.scenes import COLOURS, SHAPES, Scene, SceneObject, shape_polygon

pytestmark = pytest.mark.usefixtures("one_thread")

MICRO = {"seed": 0, "images_train2014": 6, "images_val2014": 3, "images_val2018": 3, "images_test2018": 3,
         "image_width": 96, "image_height": 72, "train_dense": 3, "regions_per_image": 12}


@pytest.fixture(scope="module")
def micro_demo(tmp_path_factory) -> Path:
    """A demo working directory holding only resources/demo/ (the micro dataset)."""
    root = tmp_path_factory.mktemp("evidence") / "demo"
    make_demo(DemoConfig.from_dict(MICRO, "demo"), root / "resources" / "demo")
    return root


# ------------------------------------------------------------------ answer types

def test_every_wording_has_its_meanings_type():
    for meaning in all_meanings():
        for text in wordings(meaning):
            assert regenerate.answer_type(text) == meaning[0], text
    for text in UNINFORMATIVE:
        assert regenerate.answer_type(text) == "uninformative"
    assert {regenerate.answer_type(t) for t in answer_inventory()} == set(regenerate.ANSWER_TYPES) | {"uninformative"}
    assert [regenerate.answer_type(t) for t in ("yes", "i think so", "no there is not", "looks red", "a star",
                                              "pretty small", "tiny", "to the left", "in the center", "there are none",
                                              "i count 8", "3")] == [
        "yesno", "yesno", "yesno", "colour", "shape", "size", "size", "position", "position", "count", "count", "count"]
    with pytest.raises(InputFormatError, match="not one of the demo's answer strings"):
        regenerate.answer_type("maybe")


# ------------------------------------------------------------------ the probe

def separable(n: int = 90, classes: int = 3, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0, 1, (classes, dim)) * 4
    x = centres[y] + rng.normal(0, 1, (n, dim))
    groups = np.arange(n) // 3  # 3 samples per "image"
    return x, [f"c{v}" for v in y], groups


def test_grouped_folds_keep_each_group_on_one_side():
    groups = np.repeat(np.arange(11), 3)
    masks = probe.grouped_folds(groups, 5, seed=1)
    assert len(masks) == 5
    assert (np.sum(masks, axis=0) == 1).all()  # every sample tested exactly once
    for mask in masks:
        assert not set(groups[mask]) & set(groups[~mask])
    assert [m.tolist() for m in probe.grouped_folds(groups, 5, seed=1)] == [m.tolist() for m in masks]
    with pytest.raises(InputFormatError, match="cannot be split"):
        probe.grouped_folds(np.arange(3), 5, 0)


def test_standardise_uses_the_training_part_only():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    a, b = probe.standardise(train, np.array([[2.0, 6.0]]))
    assert np.allclose(a.mean(0), 0) and np.allclose(a[:, 0].std(), 1)
    assert np.allclose(b, [[0.0, 1.0]])  # the constant column is shifted, not divided by 0


def test_the_probe_separates_separable_features():
    x, y, groups = separable()
    result = probe.probe(x, y, groups, folds=5, seed=0)
    assert result["accuracy"] == 1.0 and result["folds"] == [1.0] * 5
    assert result["chance"] == pytest.approx(1 / 3) and result["classes"] == {"c0": 30, "c1": 30, "c2": 30}


def test_the_probe_fails_on_shuffled_labels():
    x, y, groups = separable()
    shuffled = list(np.random.default_rng(3).permutation(y))
    result = probe.probe(x, shuffled, groups, folds=5, seed=0)
    assert result["accuracy"] < 0.5  # chance 1/3


# ------------------------------------------------------------------ object rows of a features file

def square_image(image_id: int, placed: list[tuple[str, str, float, float]]) -> DemoImage:
    objects = tuple(SceneObject(shape, colour, "big", shape_polygon(shape, cx, cy, 20.0))
                    for shape, colour, cx, cy in placed)
    scene = Scene(96, 72, "light", objects)
    return DemoImage("train2014", 0, image_id, f"COCO_train2014_{image_id:012d}.jpg", scene, None, (), 10, 1)


def test_object_rows_pick_the_region_with_the_objects_box(tmp_path):
    a = square_image(7, [("square", "red", 20, 20), ("circle", "blue", 70, 40)])
    b = square_image(9, [("star", "green", 30, 30)])  # not in the file
    path = tmp_path / "f.h5"
    boxes = np.zeros((1, 4, 4), np.float32)
    boxes[0, 0] = [0, 0, 90, 70]  # a distractor
    boxes[0, 1] = a.scene.objects[1].box
    boxes[0, 2] = a.scene.objects[0].box
    boxes[0, 3] = [60, 30, 80, 50]  # padding: beyond num_boxes
    with h5py.File(path, "w") as f:
        f["image_id"] = np.array([7])
        f["num_boxes"] = np.array([3])
        f["boxes"] = boxes
        f["features"] = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    rows = probe.object_rows(path, [a, b])
    assert rows.objects == 3 and rows.unmatched == 1 and rows.missing_images == 1
    assert rows.features.tolist() == [[8, 9, 10, 11], [4, 5, 6, 7]]  # region 2, then region 1
    assert rows.labels["colour"] == ["red", "blue"] and rows.labels["shape"] == ["square", "circle"]
    assert rows.labels["position"] == ["left", "right"] and rows.image_id.tolist() == [7, 7]


def test_box_iou():
    iou = probe.box_iou(np.array([[0, 0, 2, 2]]), np.array([[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 6, 6]]))
    assert np.allclose(iou, [[1.0, 1 / 3, 0.0]])


# ------------------------------------------------------------------ the demo as generated

def test_regenerate_matches_the_files_and_refuses_edited_ones(micro_demo, tmp_path):
    resources = micro_demo / "resources" / "demo"
    images = regenerate.regenerate(resources)
    assert [len(images[s]) for s in ("train2014", "val2014", "val2018", "test2018")] == [6, 3, 3, 3]
    coco = json.loads((resources / "annotations" / "instances_train2014.json").read_text())
    assert sum(len(im.scene.objects) for im in images["train2014"]) == len(coco["annotations"])
    assert evidence.check_gt_types(resources, images) == {"rounds": 60, "agree": 60}

    edited = tmp_path / "edited"
    edited.mkdir()
    for p in resources.iterdir():
        if p.is_file():
            (edited / p.name).write_bytes(p.read_bytes())
    (edited / "annotations").symlink_to(resources / "annotations")
    grounding = json.loads((resources / "grounding.json").read_text())
    grounding[0]["boxes"] = []
    (edited / "grounding.json").write_text(json.dumps(grounding))
    with pytest.raises(InputFormatError, match="grounding.json differ"):
        regenerate.regenerate(edited)


def test_probe_demo_reads_objects_from_the_features_file(micro_demo, tmp_path):
    """Features that encode colour and shape one-hot (plus noise) at the demo's regions: the probe
    finds every object and reads both."""
    demo = tmp_path / "demo"
    (demo / "resources").mkdir(parents=True)
    (demo / "resources" / "demo").symlink_to(micro_demo / "resources" / "demo")
    resources = demo / "resources" / "demo"
    images = regenerate.regenerate(resources)
    regions = json.loads((resources / "region_boxes.json").read_text())
    rows = images["train2014"] + images["val2014"]
    rng = np.random.default_rng(0)
    K, D = 12, len(COLOURS) + len(SHAPES) + 4
    boxes = np.zeros((len(rows), K, 4), np.float32)
    feats = rng.normal(0, 0.1, (len(rows), K, D)).astype(np.float32)
    for r, im in enumerate(rows):
        boxes[r] = regions[str(im.image_id)]
        for o in regenerate.object_labels(im):
            k = int(np.argmax(probe.box_iou(np.array([o["box"]]), boxes[r])[0]))
            feats[r, k, list(COLOURS).index(o["colour"])] += 1
            feats[r, k, len(COLOURS) + SHAPES.index(o["shape"])] += 1
    (demo / "results" / "features").mkdir(parents=True)
    with h5py.File(demo / "results" / "features" / "trainval2014.h5", "w") as f:
        f["image_id"] = np.array([im.image_id for im in rows])
        f["num_boxes"] = np.full(len(rows), K, np.int32)
        f["boxes"], f["features"] = boxes, feats
    result = probe.probe_demo(demo, folds=3, seed=0)
    assert result["objects"] == result["matched"] == sum(len(im.scene.objects) for im in images["train2014"])
    assert result["images"] == 6 and result["unmatched"] == 0
    assert result["attributes"]["colour"]["accuracy"] == 1.0 and result["attributes"]["shape"]["accuracy"] == 1.0
    assert result["attributes"]["colour"]["pass"] and result["pass"]
    assert "pass" not in result["attributes"]["size"]  # no threshold for size and position


# ------------------------------------------------------------------ goal 2 on a micro demo's val rounds

def write_evaluation(root: Path, run: str, grounding: str, decoders: dict, ranks: dict | None = None,
                     image_id=None) -> None:
    folder = root / "results" / "runs" / run
    folder.mkdir(parents=True, exist_ok=True)
    data = {"run": run, "split": "val", "grounding": grounding, "primary": next(iter(decoders)),
            "decoders": decoders, "ranks": f"val_{grounding}.ranks.npz"}
    (folder / f"val_{grounding}.json").write_text(json.dumps(data))
    if ranks is not None:
        np.savez(folder / f"val_{grounding}.ranks.npz", image_id=image_id, **ranks)


def ranks_in_order(first: list[int]) -> np.ndarray:
    """Ranks 1..100 of the options: `first` in that order, then the others by index."""
    order = first + [i for i in range(100) if i not in first]
    return np.argsort(order) + 1


def test_answer_fit_of_made_up_ranks(micro_demo, tmp_path):
    """Ranking the GT first fits every round; ranking an answer of another type first fits none."""
    resources = micro_demo / "resources" / "demo"
    rounds = evidence.val_rounds(resources, "v1.0")
    image_ids = np.array(sorted(rounds))
    perfect = np.zeros((len(image_ids), 10, 100), np.int16)
    wrong = np.zeros_like(perfect)
    for d, image_id in enumerate(image_ids):
        for r, (_, gt, options) in enumerate(rounds[int(image_id)]):
            g = options.index(gt)
            other = next(i for i, o in enumerate(options) if regenerate.answer_type(o) != regenerate.answer_type(gt))
            perfect[d, r] = ranks_in_order([g])
            wrong[d, r] = ranks_in_order([other, g])  # the GT second
    fit = evidence.answer_fit(perfect, image_ids, rounds)
    assert fit["rounds"] == 30 and fit["type_match"] == fit["meaning_match"] == fit["mrr"] == 1.0
    bad = evidence.answer_fit(wrong, image_ids, rounds)
    assert bad["type_match"] == bad["meaning_match"] == 0.0 and bad["mrr"] == pytest.approx(0.5)

    demo = tmp_path / "demo"
    (demo / "resources").mkdir(parents=True)
    (demo / "resources" / "demo").symlink_to(resources)
    write_evaluation(demo, "v1.0-ltmi-disc", "prior", {"disc": {"mrr": 1.0}}, {"disc": perfect}, image_ids)
    write_evaluation(demo, "v1.0-lg_attn_kl-multi", "prior", {"gen": {"mrr": 0.5}, "disc": {"mrr": 1.0},
                                                             "avg": {"mrr": 0.5}},
                     {"gen": wrong, "disc": perfect, "avg": wrong}, image_ids)
    result = evidence.answers_fit_demo(demo)
    assert result["runs"]["v1.0-ltmi-disc"]["decoders"]["disc"]["pass"]
    multi = result["runs"]["v1.0-lg_attn_kl-multi"]["decoders"]
    assert not multi["gen"]["pass"] and not multi["avg"]["judged"] and result["worst"] == 0.0 and not result["pass"]
    write_evaluation(demo, "v1.0-ltmi-disc", "prior", {"disc": {"mrr": 0.9}}, {"disc": perfect}, image_ids)
    with pytest.raises(InputFormatError, match="do not line up"):
        evidence.answers_fit_demo(demo)


# ------------------------------------------------------------------ goals 3 and 4: verdicts

def test_image_matters_verdicts():
    ok = evidence.image_matters({"prior": 40.0, "mean": 35.0, "random": 30.0, "oracle": 40.0})
    assert ok["pass"] and ok["deltas"] == {"prior_minus_mean": 5.0, "prior_minus_random": 10.0, "oracle_minus_prior": 0.0}
    assert not evidence.image_matters({"prior": 40.0, "mean": 36.0, "random": 30.0, "oracle": 41.0})["pass"]
    assert not evidence.image_matters({"prior": 40.0, "mean": 30.0, "random": 30.0, "oracle": 39.9})["pass"]
    assert not evidence.image_matters({"prior": 40.0, "mean": 30.0, "random": 30.0})["pass"]
    today = evidence.image_matters({"prior": 20.96, "mean": 20.93, "random": 20.92, "oracle": 20.96})
    assert not today["pass"]


def test_image_matters_demo_reads_table4s_metrics(tmp_path):
    for grounding, mrr in (("prior", 0.40), ("mean", 0.30), ("random", 0.32), ("oracle", 0.45)):
        write_evaluation(tmp_path, "v1.0-ltmi-gen", grounding, {"gen": {"mrr": mrr}})
    write_evaluation(tmp_path, "v1.0-lg_attn_kl-gen", "prior", {"gen": {"mrr": 0.41}})
    write_evaluation(tmp_path, "v0.9-ltmi-gen", "prior", {"gen": {"mrr": 0.2}})
    result = evidence.image_matters_demo(tmp_path)
    v10 = result["versions"]["v1.0"]
    assert v10["mrr"] == pytest.approx({"prior": 40.0, "mean": 30.0, "random": 32.0, "oracle": 45.0})
    assert v10["rows"]["LTMI-LG"]["mrr"] == pytest.approx(41.0) and v10["rows"]["LTMI-Human"]["in_table4"]
    assert v10["pass"] and result["versions"]["v0.9"]["pass"] is None and result["pass"]
    write_evaluation(tmp_path, "v1.0-ltmi-gen", "mean", {"gen": {"mrr": 0.38}})
    assert not evidence.image_matters_demo(tmp_path)["pass"]


def test_grounding_learned_verdicts(tmp_path):
    assert evidence.grounding_learned(0.65, 0.425)["pass"]
    assert not evidence.grounding_learned(0.44, 0.425)["pass"]
    assert not evidence.grounding_learned(None, None)["pass"]
    for model, prior in (("ltmi", 0.7), ("lg_attn_kl", 0.3)):
        folder = tmp_path / "results" / "runs" / f"v0.9-{model}-gen"
        folder.mkdir(parents=True)
        grounding = tmp_path / "results" / "grounding" / f"v0.9-{model}-gen_val.json"
        grounding.parent.mkdir(parents=True, exist_ok=True)
        grounding.write_text(json.dumps({"run": f"v0.9-{model}-gen", "annotations": "x", "eligible": 10, "count": 10,
                                         "prior": prior, "posterior": 0.8, "random": 0.4}))
    result = evidence.grounding_learned_demo(tmp_path)
    assert result["without_answer"] == pytest.approx(70.0) and result["delta_points"] == pytest.approx(30.0)
    assert result["pass"]


def test_one_hot_attributes_give_each_attribute_value_its_own_entry():
    layout = [(name, value) for name, values in regenerate.ATTRIBUTE_VALUES.items() for value in values]
    assert len(layout) == regenerate.ONE_HOT_DIM == 16
    red_star = {"shape": "star", "colour": "red", "size": "big", "position": "right"}
    entries = regenerate.one_hot_attributes(red_star, 5.0)
    assert [layout[i] for i, _ in entries] == [("shape", "star"), ("colour", "red"), ("size", "big"),
                                               ("position", "right")]
    assert {v for _, v in entries} == {5.0}
