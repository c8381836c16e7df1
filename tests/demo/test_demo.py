"""The synthetic demo dataset (`visdial-lg make-demo`): layout, determinism, grounding, image dependence."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from visdial_lg.cli import main
from visdial_lg.core.config import DemoConfig
from visdial_lg.demo import make as demo_module
from visdial_lg.demo.make import IMAGE_SETS, generate_image, make_demo
from visdial_lg.demo.answers import NUMBER_WORDS, answer_inventory, meaning_of, wordings
from visdial_lg.demo.scenes import COLOURS
from visdial_lg.core.errors import InputFormatError

# pycocotools' mask decoding warns under numpy 2; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

MICRO = {"seed": 0, "images_train2014": 6, "images_val2014": 3, "images_val2018": 3, "images_test2018": 3,
         "image_width": 96, "image_height": 72, "train_dense": 3, "regions_per_image": 12}
SET_FOLDERS = {"train2014": ("images/train2014", "COCO_train2014_"),
               "val2014": ("images/val2014", "COCO_val2014_"),
               "val2018": ("images/VisualDialog_val2018", "VisualDialog_val2018_"),
               "test2018": ("images/VisualDialog_test2018", "VisualDialog_test2018_")}
JSON_FILES = ["visdial_0.9_train.json", "visdial_0.9_val.json", "visdial_1.0_train.json", "visdial_1.0_val.json",
              "visdial_1.0_test.json", "visdial_1.0_val_dense_annotations.json",
              "visdial_1.0_train_dense_sample.json", "visdial_1.0_test_answers.json", "grounding.json"]


def micro(**changes) -> DemoConfig:
    return DemoConfig.from_dict({**MICRO, **changes}, "demo")


def load(root: Path, name: str):
    return json.loads((root / name).read_text())


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def decoded(visdial: dict) -> dict[int, dict]:
    """image_id -> {caption, rounds: [{question, answer?, options?, gt_index?}]} with strings."""
    data = visdial["data"]
    out = {}
    for d in data["dialogs"]:
        rounds = []
        for r in d["dialog"]:
            row = {"question": data["questions"][r["question"]]}
            if "answer" in r:
                row["answer"] = data["answers"][r["answer"]]
            if "answer_options" in r:
                row["options"] = [data["answers"][a] for a in r["answer_options"]]
            if "gt_index" in r:
                row["gt_index"] = r["gt_index"]
            rounds.append(row)
        out[d["image_id"]] = {"caption": d["caption"], "rounds": rounds}
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["make-demo", "--config", json.dumps({"demo": MICRO}), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def grounding_by_round(demo) -> dict[tuple[int, int], dict]:
    return {(g["image_id"], g["round_id"]): g for g in load(demo, "grounding.json")}


# ------------------------------------------------------------------ determinism and completion


def test_same_seed_same_bytes_other_seed_differs(demo, tmp_path):
    make_demo(micro(), tmp_path / "again")
    assert all_files(tmp_path / "again") == all_files(demo)
    make_demo(micro(seed=1), tmp_path / "other")
    other, first = all_files(tmp_path / "other"), all_files(demo)
    for name in JSON_FILES:
        assert other[name] != first[name], name
    assert sorted(k for k in other if k.endswith(".jpg")) != sorted(k for k in first if k.endswith(".jpg"))


def test_manifest_lists_every_file_with_its_checksum(demo):
    manifest = load(demo, "MANIFEST.json")
    files = all_files(demo)
    files.pop("MANIFEST.json")
    assert manifest["seed"] == 0 and manifest["sizes"] == MICRO
    assert set(manifest["files"]) == set(files)
    for name, data in files.items():
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert not [n for n in files if n.endswith(".tmp")]


def test_rerun_with_fewer_images_removes_stale_files(tmp_path):
    make_demo(micro(), tmp_path)
    make_demo(micro(images_train2014=4), tmp_path)
    files = all_files(tmp_path)
    assert len([n for n in files if n.startswith("images/train2014/")]) == 4
    assert set(files) - {"MANIFEST.json"} == set(load(tmp_path, "MANIFEST.json")["files"])


def test_interrupted_run_leaves_no_manifest(tmp_path, monkeypatch):
    make_demo(micro(), tmp_path)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "coco_instances", fail)
    with pytest.raises(KeyboardInterrupt):
        make_demo(micro(seed=3), tmp_path)
    assert not (tmp_path / "MANIFEST.json").exists()


def test_output_path_that_is_a_file_is_one_clear_error(tmp_path, capsys):
    target = tmp_path / "demo"
    target.write_text("not a folder")
    with pytest.raises(InputFormatError, match="demo"):
        make_demo(micro(), target)
    assert main(["make-demo", "--config", json.dumps({"demo": MICRO}), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0]


# ------------------------------------------------------------------ layout and structure


def test_images_are_named_per_layout_and_decode(demo):
    seen: set[int] = set()
    for name, (folder, prefix) in SET_FOLDERS.items():
        coco = load(demo, f"annotations/instances_{name}.json")
        files = sorted((demo / folder).glob("*.jpg"))
        assert len(files) == MICRO[f"images_{name}"]
        ids = {int(f.stem[-12:]) for f in files}
        assert {im["id"] for im in coco["images"]} == ids and not ids & seen
        seen |= ids
        for f in files:
            assert f.name == f"{prefix}{int(f.stem[-12:]):012d}.jpg"
            with Image.open(f) as im:
                assert im.format == "JPEG" and im.size == (96, 72) and im.mode == "RGB"
                im.load()
    assert min(int(f.stem[-12:]) for f in (demo / "images/VisualDialog_val2018").glob("*.jpg")) >= 185000


def test_splits_follow_visdial_relations(demo):
    ids = {name: {im["id"] for im in load(demo, f"annotations/instances_{name}.json")["images"]} for name in SET_FOLDERS}
    v09_train, v09_val = decoded(load(demo, "visdial_0.9_train.json")), decoded(load(demo, "visdial_0.9_val.json"))
    v10_train = decoded(load(demo, "visdial_1.0_train.json"))
    assert set(v09_train) == ids["train2014"] and set(v09_val) == ids["val2014"]
    assert set(v10_train) == ids["train2014"] | ids["val2014"]
    assert set(decoded(load(demo, "visdial_1.0_val.json"))) == ids["val2018"]
    assert set(decoded(load(demo, "visdial_1.0_test.json"))) == ids["test2018"]
    for image_id, dialog in {**v09_train, **v09_val}.items():  # the same dialog per image in both versions
        assert v10_train[image_id] == dialog
    assert load(demo, "visdial_0.9_val.json")["version"] == "0.9"
    assert load(demo, "visdial_1.0_test.json")["split"] == "test"


@pytest.mark.parametrize("name", ["visdial_1.0_train.json", "visdial_1.0_val.json", "visdial_0.9_val.json"])
def test_answered_splits_have_ten_rounds_of_100_unique_options(demo, name):
    visdial = load(demo, name)
    for text in visdial["data"]["questions"] + visdial["data"]["answers"]:
        assert text == text.lower() and not text.endswith("?") and text.strip() == text
    for d in visdial["data"]["dialogs"]:
        assert len(d["dialog"]) == 10 and d["caption"] == d["caption"].lower()
        for r in d["dialog"]:
            assert len(r["answer_options"]) == 100 and len(set(r["answer_options"])) == 100
            assert r["answer_options"][r["gt_index"]] == r["answer"]


def test_test_split_has_an_unanswered_last_round_and_held_back_answers(demo):
    visdial = load(demo, "visdial_1.0_test.json")
    answers = {a["image_id"]: a for a in load(demo, "visdial_1.0_test_answers.json")}
    for d in visdial["data"]["dialogs"]:
        *earlier, last = d["dialog"]
        assert 1 <= len(d["dialog"]) <= 10
        assert all(set(r) == {"question", "answer"} for r in earlier)
        assert set(last) == {"question", "answer_options"} and len(set(last["answer_options"])) == 100
        held = answers[d["image_id"]]
        assert held["round_id"] == len(d["dialog"])
        assert held["gt_relevance"][held["gt_index"]] == 1.0
        assert visdial["data"]["answers"][last["answer_options"][held["gt_index"]]] in answer_inventory()


@pytest.mark.parametrize("name,key,split", [("visdial_1.0_val_dense_annotations.json", "gt_relevance", "val"),
                                            ("visdial_1.0_train_dense_sample.json", "relevance", "train")])
def test_dense_relevance_scores_gt_one_paraphrases_partly(demo, name, key, split):
    dialogs = {d["image_id"]: d for d in load(demo, f"visdial_1.0_{split}.json")["data"]["dialogs"]}
    dense = load(demo, name)
    assert len(dense) == (3 if split == "val" else MICRO["train_dense"])
    assert len({e["image_id"] for e in dense}) == len(dense)
    for entry in dense:
        relevance = entry[key]
        round_ = dialogs[entry["image_id"]]["dialog"][entry["round_id"] - 1]
        assert len(relevance) == 100 and all(0.0 <= x <= 1.0 for x in relevance)
        assert relevance[round_["gt_index"]] == 1.0 and relevance.count(1.0) == 1
        assert relevance.count(0.5) == 3 and relevance.count(0.0) == 96


# ------------------------------------------------------------------ grounding and image dependence


def test_coco_instances_load_and_match_grounding(demo, grounding_by_round):
    for name in SET_FOLDERS:
        coco = COCO(str(demo / f"annotations/instances_{name}.json"))
        names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        for image_id in coco.getImgIds():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert 3 <= len(anns) <= 8
            objects = {_xyxy(a["bbox"]): names[a["category_id"]] for a in anns}
            assert all(coco.annToMask(a).sum() > 0 and a["area"] > 0 for a in anns)
            rounds = [g for (i, _), g in grounding_by_round.items() if i == image_id]
            assert rounds, image_id
            for g in rounds:
                for box, category in zip(g["boxes"], g["categories"], strict=True):
                    assert objects[tuple(box)] == category


def _xyxy(bbox) -> tuple:
    return tuple(round(v, 2) for v in (bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]))


def _pixel_colour(image: np.ndarray, box) -> str:
    """Nearest palette colour of the 3x3 pixels at the box centre."""
    cx, cy = int(round((box[0] + box[2]) / 2)), int(round((box[1] + box[3]) / 2))
    mean = image[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(0)
    return min(COLOURS, key=lambda c: float(np.sum((np.array(COLOURS[c]) - mean) ** 2)))


def _expected_answer(question: str, boxes, categories, image, coco, image_id) -> str | None:
    """The answer a reader of the image (and of the grounding) gives, or None for unknown templates."""
    w = image.shape[1]
    if question.startswith("what color is"):
        return _pixel_colour(image, boxes[0])
    if question.startswith("what shape is"):
        return f"a {categories[0]}"
    if question.startswith("where is"):
        third = int(3 * (boxes[0][0] + boxes[0][2]) / 2 / w)
        return ("on the left", "in the middle", "on the right")[third]
    if question.startswith("how big is"):
        return "big" if (boxes[0][2] - boxes[0][0]) / min(image.shape[:2]) > 0.22 else "small"
    if question.startswith("is there a"):
        return "yes" if boxes else "no"
    if question.startswith("how many"):  # how many {shapes | squares | red shapes} are there
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        words = question.split()
        if words[2] == "shapes":
            counted = anns
        elif words[2] in COLOURS:
            counted = [a for a in anns if _pixel_colour(image, _xyxy(a["bbox"])) == words[2]]
        else:
            counted = [a for a in anns if coco.cats[a["category_id"]]["name"] + "s" == words[2]]
        assert sorted(map(tuple, boxes)) == sorted(_xyxy(a["bbox"]) for a in counted)
        return NUMBER_WORDS[len(counted)]
    return None


@pytest.mark.parametrize("name,split_set", [("visdial_1.0_train.json", ("train2014", "val2014")),
                                            ("visdial_1.0_val.json", ("val2018",)),
                                            ("visdial_1.0_test.json", ("test2018",))])
def test_answers_are_read_off_the_referenced_objects(demo, grounding_by_round, name, split_set):
    cocos = {s: COCO(str(demo / f"annotations/instances_{s}.json")) for s in split_set}
    checked = collections.Counter()
    for image_id, dialog in decoded(load(demo, name)).items():
        s = next(s for s in split_set if image_id in cocos[s].imgs)
        coco = cocos[s]
        image = np.asarray(Image.open(demo / SET_FOLDERS[s][0] / coco.imgs[image_id]["file_name"]), dtype=np.float32)
        for r, row in enumerate(dialog["rounds"]):
            g = grounding_by_round[(image_id, r + 1)]
            if "answer" not in row:  # test's last round
                continue
            expected = _expected_answer(row["question"], g["boxes"], g["categories"], image, coco, image_id)
            assert expected is not None, row["question"]
            # the GT may be any wording of the meaning (annotators word answers differently)
            assert meaning_of(row["answer"]) == meaning_of(expected), (image_id, r + 1, row["question"], row["answer"])
            checked[row["question"].split()[0]] += 1
            if row["question"].endswith(" it"):  # "it" is an object named by the caption or an earlier round
                caption_shape = dialog["caption"].split()[1]
                earlier = [grounding_by_round[(image_id, k)] for k in range(1, r + 1)]
                assert g["categories"][0] == caption_shape or any(e["boxes"] == g["boxes"] for e in earlier)
    assert sum(checked.values()) > 0, checked


# ------------------------------------------------------------------ balance: the text alone does not answer


def test_question_text_alone_does_not_determine_the_answer():
    cfg = micro(image_width=160, image_height=120)
    images = [generate_image(cfg, IMAGE_SETS[0], i, i + 1) for i in range(300)]
    by_template: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    majority: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    canonical = 0
    for k, im in enumerate(images):
        for r, round_ in enumerate(im.dialog.rounds):
            assert meaning_of(im.answer(r)) == round_.meaning
            canonical += im.answer(r) == wordings(round_.meaning)[0]
            by_template[round_.template][round_.meaning] += 1
            if k < 150:
                majority[round_.question][round_.meaning] += 1
    assert 0.5 < canonical / 3000 < 0.7  # CANONICAL_PROB = 0.6
    for template, counts in by_template.items():
        top_share = counts.most_common(1)[0][1] / sum(counts.values())
        assert top_share < {"count_colour": 0.5, "count_shape": 0.5}.get(template, 0.65), (template, counts)
        assert len(counts) >= 2, template
    held_out = [(r.question, r.meaning) for im in images[150:] for r in im.dialog.rounds]
    hits = sum(majority[q].most_common(1)[0][0] == m for q, m in held_out if q in majority)
    assert hits / len(held_out) < 0.45  # measured 0.35 on 3,000 dialogs; the image answers every round


def test_region_boxes_hold_every_object_and_distractors(demo):
    regions = load(demo, "region_boxes.json")
    instances = {}
    for name in ("train2014", "val2014", "val2018", "test2018"):
        for ann in load(demo, f"annotations/instances_{name}.json")["annotations"]:
            x, y, w, h = ann["bbox"]
            instances.setdefault(str(ann["image_id"]), []).append([x, y, x + w, y + h])
    assert set(regions) == set(instances)
    for image_id, boxes in regions.items():
        assert len(boxes) == MICRO["regions_per_image"]
        assert all(x1 < x2 <= MICRO["image_width"] and y1 < y2 <= MICRO["image_height"] for x1, y1, x2, y2 in boxes)
        for box in instances[image_id]:  # each object is one of the regions, exactly
            assert any(all(abs(a - b) < 0.02 for a, b in zip(box, region)) for region in boxes)
