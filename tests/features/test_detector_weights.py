"""Weights: public layouts round trip to identical outputs; unsafe, corrupt or unfitting files fail clearly."""

import functools
import os
import pickle

import numpy as np
import pytest
import torch

from visdial_lg.features.anchors import caffe_cell_anchors
from visdial_lg.features.model import build_detector, preprocess
from visdial_lg.features.weights import (WeightsError, read_weights_file, save_public_pickle, to_internal,
                                         to_public)
from visdial_lg.core.config import FeaturesConfig
from visdial_lg.core.files import sha256_of

SECTION = {"depth": 50, "res5_halve": True, "min_size": 64, "max_size": 96, "post_nms_topk": 6,
           "min_boxes": 3, "max_boxes": 5, "top_attrs": 4}
FEATURES = FeaturesConfig.from_dict(SECTION)


@functools.lru_cache(maxsize=1)
def _detector():
    detector = build_detector(FEATURES, "random", seed=3)
    with torch.no_grad():  # make background rows and every layer matter, unlike the tiny random heads
        detector.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.05)
        detector.proposal_generator.rpn_head.objectness_logits.weight.normal_(0, 0.5)
    return detector


@functools.lru_cache(maxsize=1)
def _inputs():
    image = np.random.default_rng(2).integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    tensor, scale = preprocess(image, 64, 96)
    return tensor[None], torch.tensor([list(tensor.shape[1:])]), torch.tensor([scale])


@functools.lru_cache(maxsize=1)
def _reference_outputs():
    return _detector()(*_inputs())[0]


def _assert_same_outputs(loaded):
    out, ref = loaded(*_inputs())[0], _reference_outputs()
    for key in ("proposal_boxes", "features", "cls_indices", "cls_scores", "attr_indices", "attr_scores"):
        assert torch.equal(out[key], ref[key]), key
    # bbox_pred passes through x10 / /10 (detectron2 box-coder weights): equal up to float rounding
    assert torch.allclose(out["boxes"], ref["boxes"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("with_cell_anchors", [False, True])
def test_public_pickle_round_trip_gives_identical_outputs(tmp_path, with_cell_anchors):
    path = tmp_path / "faster_rcnn_from_caffe_attr.pkl"
    save_public_pickle(_detector(), path, with_cell_anchors=with_cell_anchors)
    with open(path, "rb") as f:
        raw = pickle.load(f)["model"]
    assert raw["roi_heads.box_predictor.bbox_pred.weight"].shape == (6400, 2048)
    assert raw["proposal_generator.rpn_head.objectness_logits.weight"].shape == (12, 512, 1, 1)
    loaded = build_detector(FEATURES, str(path), sha256=sha256_of(path))
    assert loaded.weights_sha256 == sha256_of(path)
    _assert_same_outputs(loaded)


def test_caffe_layout_pth_round_trip_gives_identical_outputs(tmp_path):
    path = tmp_path / "bua-caffe-frcn-r101.pth"
    public = to_public(_detector().state_dict(), layout="caffe")
    assert public["proposal_generator.rpn_head.objectness_logits.weight"].shape[0] == 24
    assert public["roi_heads.box_predictor.bbox_pred.weight"].shape[0] == 6404
    assert "roi_heads.box_predictor.attr_linear1.weight" in public
    public["backbone.stem.conv1.norm.num_batches_tracked"] = torch.tensor(0)
    torch.save({"model": public, "iteration": 1}, path)
    _assert_same_outputs(build_detector(FEATURES, str(path)))



@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_a_download_without_suffix_is_read_by_its_content(tmp_path, kind):
    """`features.weights: download` saves the file as resources/downloads/detector_weights:
    no suffix says what it is, so its first bytes do (a zip = torch.save, else a pickle)."""
    path = tmp_path / "detector_weights"
    if kind == "pickle":
        save_public_pickle(_detector(), path)
    else:
        torch.save({"model": to_public(_detector().state_dict(), layout="caffe")}, path)
    _assert_same_outputs(build_detector(FEATURES, str(path)))

def test_two_way_softmax_objectness_becomes_one_logit_per_anchor():
    fg_bg = torch.randn(24, 512, 1, 1)
    internal = to_internal({"proposal_generator.rpn_head.objectness_logits.weight": fg_bg})
    logits = internal["proposal_generator.rpn_head.objectness_logits.weight"]
    x = torch.randn(512)
    softmax_fg = torch.stack([fg_bg[:12, :, 0, 0] @ x, fg_bg[12:, :, 0, 0] @ x]).softmax(0)[1]
    assert torch.allclose(torch.sigmoid(logits[:, :, 0, 0] @ x), softmax_fg, atol=1e-6)


def test_sha256_mismatch_is_refused(tmp_path):
    path = tmp_path / "w.pkl"
    save_public_pickle(_detector(), path)
    with pytest.raises(WeightsError, match=r"w\.pkl has sha256 [0-9a-f]{64}, expected 00ff"):
        build_detector(FEATURES, str(path), sha256="00ff")


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"x": Exploit()}}, f)
    with pytest.raises(WeightsError, match=r"evil\.pkl.*refusing to load global"):
        read_weights_file(path)
    assert not (tmp_path / "pwned").exists()


def test_corrupt_and_missing_files_are_named(tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError, match=r"cannot read weights file .*cut\.pth"):
        read_weights_file(path)
    with pytest.raises(WeightsError, match="weights file not found"):
        build_detector(FEATURES, str(tmp_path / "absent.pkl"))


def test_weights_that_do_not_fit_list_the_offending_keys(tmp_path):
    path = tmp_path / "r50.pkl"
    save_public_pickle(_detector(), path)
    with pytest.raises(WeightsError) as error:
        build_detector(FeaturesConfig.from_dict({**SECTION, "depth": 101}), str(path))
    message = str(error.value)
    assert "depth 101" in message and "missing (255)" in message and "backbone.res4.6.conv1.weight" in message
    assert "the file has 6 res4 blocks (depth 50)" in message
    assert "\n" not in message

    with open(path, "rb") as f:
        data = pickle.load(f)
    data["model"]["roi_heads.box_predictor.attr_score.weight"] = np.zeros((400, 512), np.float32)
    data["model"]["extra.weight"] = np.zeros(3, np.float32)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    expected = (r"unexpected \(1\): extra\.weight; wrong shape \(1\): "
                r"roi_heads\.box_predictor\.attr_score\.weight: file \(400, 512\) vs model \(401, 512\)")
    with pytest.raises(WeightsError, match=expected):
        build_detector(FEATURES, str(path))


def test_an_anchor_buffer_in_the_file_decides_the_anchor_order():
    internal = _detector().state_dict()
    public = to_public(internal, "detectron2")
    head = "proposal_generator.rpn_head."
    for name in ("objectness_logits.weight", "objectness_logits.bias", "anchor_deltas.weight", "anchor_deltas.bias"):
        public[head + name] = internal[head + name]  # Caffe order in a detectron2-layout file...
    public["proposal_generator.anchor_generator.cell_anchors.0"] = caffe_cell_anchors() + 0.5  # ...and it says so
    converted = to_internal(public)
    for name in ("objectness_logits.weight", "anchor_deltas.bias"):
        assert torch.equal(converted[head + name], internal[head + name])
    assert "proposal_generator.anchor_generator.cell_anchors.0" not in converted


def test_detectron2_layout_puts_background_and_no_attribute_last():
    """AIR/HF files: class 1600 and attribute 400 are "background" / "no attribute" (Caffe: index 0)."""
    internal = _detector().state_dict()
    public = to_public(internal, "detectron2")
    pred = "roi_heads.box_predictor."
    for name, rows in (("cls_score", 1601), ("attr_score", 401)):
        for suffix in (".weight", ".bias"):
            assert torch.equal(public[pred + name + suffix][-1], internal[pred + name + suffix][0])
            assert torch.equal(public[pred + name + suffix][:-1], internal[pred + name + suffix][1:])
    caffe = to_public(internal, "caffe")
    assert torch.equal(caffe[pred + "attr_linear2.bias"], internal[pred + "attr_score.bias"])


def test_anchor_buffer_that_is_not_a_reordering_of_the_caffe_anchors_is_refused():
    public = to_public(_detector().state_dict(), "detectron2")
    small = caffe_cell_anchors() / 16  # detectron2's default 4-32 px sizes, not the converted model's
    with pytest.raises(WeightsError, match=r"anchors \(.*\) are not a reordering of the detector's 12 Caffe anchors"):
        to_internal({**public, "proposal_generator.anchor_generator.cell_anchors.0": small})
    with pytest.raises(WeightsError, match="holds 9 anchors, expected 12"):
        to_internal({**public, "proposal_generator.anchor_generator.cell_anchors.0": caffe_cell_anchors()[:9]})


def test_pixel_statistics_in_the_file_must_match_the_caffe_preprocessing():
    public = to_public(_detector().state_dict(), "detectron2")
    caffe_means = torch.tensor([102.9801, 115.9465, 122.7717]).view(3, 1, 1)
    converted = to_internal({**public, "pixel_mean": caffe_means, "pixel_std": torch.ones(3, 1, 1)})
    assert "pixel_mean" not in converted and "pixel_std" not in converted
    with pytest.raises(WeightsError, match=r"pixel_std is \[57\.375.*std 1"):
        to_internal({**public, "pixel_std": torch.tensor([57.375, 57.12, 58.395])})


def test_pth_holding_numpy_arrays_loads_and_one_holding_code_is_refused(tmp_path):
    path = tmp_path / "numpy-arrays.pth"
    public = to_public(_detector().state_dict(), layout="caffe")
    torch.save({"model": {k: v.numpy() for k, v in public.items()}}, path)
    _assert_same_outputs(build_detector(FEATURES, str(path)))

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {"x": Exploit()}}, evil)
    with pytest.raises(WeightsError) as info:
        read_weights_file(evil)
    assert not (tmp_path / "pwned").exists()
    assert str(info.value) == (f"weights file {evil} holds pickled code or objects other than tensors/arrays "
                               f"({os.system.__module__}.system); refusing to load it (only tensor state dicts "
                               "are accepted)")  # one line of ours: none of torch's advice to load it unsafely


def test_pth_that_is_no_torch_checkpoint_gives_one_line(tmp_path):
    for name, data in (("noise.pth", b"not a checkpoint at all"), ("cut.pth", b"PK\x03\x04 truncated")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(WeightsError, match=rf"^cannot read weights file {path}: ") as info:
            read_weights_file(path)
        assert "\n" not in str(info.value) and "Re-running" not in str(info.value)


def test_detectron2_generated_anchors_give_the_assumed_size_major_order():
    """The anchors detectron2 builds for sizes 64-512 at ratios 0.5, 1, 2 (size outer, ratio inner)."""
    sides = [((s * s / r) ** 0.5, (s * s / r) ** 0.5 * r) for s in (64, 128, 256, 512) for r in (0.5, 1.0, 2.0)]
    detectron2_anchors = torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in sides])
    public = to_public(_detector().state_dict(), "detectron2")
    assumed = to_internal(dict(public))
    read = to_internal({**public, "proposal_generator.anchor_generator.cell_anchors.0": detectron2_anchors})
    for name in ("objectness_logits.weight", "anchor_deltas.weight"):
        key = "proposal_generator.rpn_head." + name
        assert torch.equal(read[key], assumed[key])
