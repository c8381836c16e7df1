"""The whole detector on tiny images: outputs, determinism, batching, given boxes, preprocessing, FLOPs."""

import copy
import functools

import cv2
import numpy as np
import pytest
import torch

from visdial_lg.core.config import ConfigError, FeaturesConfig
from visdial_lg.core.errors import InputFormatError
from visdial_lg.features.model import build_detector, estimate_flops, preprocess

# ResNet-50 with the halved res5 on 64-96 pixel images: the real network's layers, little compute.
SECTION = {"depth": 50, "res5_halve": True, "min_size": 64, "max_size": 96, "pre_nms_topk": 200,
           "post_nms_topk": 6, "min_boxes": 3, "max_boxes": 5, "top_attrs": 4, "batch_size": 2}
FEATURES = FeaturesConfig.from_dict(SECTION)
SHAPES = [(60, 80), (88, 52), (64, 64)]


@functools.lru_cache(maxsize=1)
def _detector():
    return build_detector(FEATURES, "random", seed=0)


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in SHAPES]


def _batch(images, dtype=torch.float32):
    """Preprocess and zero-pad bottom/right, as the extraction pipeline does."""
    pre = [preprocess(image, SECTION["min_size"], SECTION["max_size"]) for image in images]
    H = max(x.shape[1] for x, _ in pre)
    W = max(x.shape[2] for x, _ in pre)
    batch = torch.zeros(len(pre), 3, H, W, dtype=dtype)
    for i, (x, _) in enumerate(pre):
        batch[i, :, : x.shape[1], : x.shape[2]] = x
    sizes = torch.tensor([list(x.shape[1:]) for x, _ in pre])
    scales = torch.tensor([s for _, s in pre])
    return batch, sizes, scales


def test_outputs_have_the_documented_shapes_and_dtypes():
    outputs = _detector()(*_batch(_images()))
    assert len(outputs) == 3
    for out, (h, w) in zip(outputs, SHAPES):
        K = out["features"].shape[0]
        # min_boxes = 3, but a tiny image may yield fewer distinct proposals after the RPN's NMS
        assert 1 <= K <= SECTION["max_boxes"]
        expected = {"proposal_boxes": ((K, 4), torch.float32), "boxes": ((K, 4), torch.float32),
                    "features": ((K, 2048), torch.float32), "cls_indices": ((K,), torch.int64),
                    "cls_scores": ((K,), torch.float32), "attr_indices": ((K, 4), torch.int64),
                    "attr_scores": ((K, 4), torch.float32)}
        assert {k: (tuple(v.shape), v.dtype) for k, v in out.items()} == expected
        assert torch.isfinite(out["features"]).all()
        assert out["cls_indices"].max() < 1600 and out["attr_indices"].max() < 400
        # Refined boxes are clipped to the original image; proposals to the resized one (then unscaled, as BUTD).
        for key, (x_max, y_max) in (("boxes", (w - 1, h - 1)), ("proposal_boxes", (w - 0.5, h - 0.5))):
            boxes = out[key]
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
            assert (boxes[:, 2] <= x_max + 1e-4).all() and (boxes[:, 3] <= y_max + 1e-4).all()


def test_random_weights_are_deterministic_and_seeded():
    again = build_detector(FEATURES, "random", seed=0)
    other = build_detector(FEATURES, "random", seed=1)
    state, state_again = _detector().state_dict(), again.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    assert not torch.equal(state["backbone.stem.conv1.weight"], other.state_dict()["backbone.stem.conv1.weight"])
    inputs = _batch(_images()[:1])
    first, second = _detector()(*inputs)[0], again(*inputs)[0]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_batch_gives_each_image_what_it_gets_alone():
    # float64 so that near-tied random scores cannot reorder; padding must not leak into any step.
    detector = copy.deepcopy(_detector()).double()
    images = _images()
    batched = detector(*_batch(images, torch.float64))
    for image, out in zip(images, batched):
        alone = detector(*_batch([image], torch.float64))[0]
        for key in out:
            assert out[key].shape == alone[key].shape, key
            assert torch.allclose(out[key].double(), alone[key].double(), rtol=1e-6, atol=1e-6), key


def test_given_boxes_give_their_features_in_batches_as_alone():
    detector = _detector()
    images = _images()[:2]
    given = [torch.tensor([[0.0, 0.0, 39.0, 29.0], [5.0, 6.0, 20.0, 25.0]]), torch.tensor([[3.0, 4.0, 25.0, 43.0]])]
    batched = detector(*_batch(images), given_boxes=given)
    for image, boxes, out in zip(images, given, batched):
        alone = detector(*_batch([image]), given_boxes=[boxes])[0]
        assert torch.equal(out["proposal_boxes"], boxes) and torch.equal(out["boxes"], boxes)  # not regressed
        assert torch.allclose(out["features"], alone["features"], rtol=1e-4, atol=1e-4)
    empty = detector(*_batch(images), given_boxes=[torch.zeros(0, 4), given[1]])
    assert empty[0]["features"].shape == (0, 2048) and empty[1]["features"].shape == (1, 2048)
    with pytest.raises(InputFormatError, match=r"given_boxes\[1\]"):
        detector(*_batch(images), given_boxes=[given[0], torch.tensor([[5.0, 5.0, 1.0, 9.0]])])


def test_preprocess_subtracts_the_mean_before_a_bilinear_resize():
    image = np.random.default_rng(1).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    tensor, scale = preprocess(image, 600, 1000)
    assert scale == 1.25 and tensor.shape == (3, 600, 800) and tensor.dtype == torch.float32
    means = np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
    expected = cv2.resize(image.astype(np.float32) - means, None, None, fx=1.25, fy=1.25,
                          interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(tensor.numpy().transpose(1, 2, 0), expected)
    _, scale = preprocess(np.zeros((300, 1500, 3), np.uint8), 600, 1000)  # long side capped
    assert scale == pytest.approx(1000 / 1500)
    with pytest.raises(InputFormatError, match="uint8"):
        preprocess(np.zeros((30, 40), np.uint8), 600, 1000)


def test_config_from_the_features_section():
    cfg = FeaturesConfig.from_dict({"depth": 50, "weights": "random", "shards": 4})
    assert cfg.depth == 50 and cfg.post_nms_topk == 300 and cfg.min_boxes == 100 and cfg.top_attrs == 20
    with pytest.raises(ConfigError, match="min_boxes"):
        FeaturesConfig.from_dict({"min_boxes": 50, "max_boxes": 10})


def test_flops_of_the_real_config_match_the_published_arithmetic():
    flops = estimate_flops(FeaturesConfig.from_dict({}), (600, 1000))  # published: ~83 GMAC + 300 x 2.93 GMAC
    assert flops["resized_hw"] == (600, 1000)
    assert flops["backbone"] == pytest.approx(2 * 83e9, rel=0.05)
    assert flops["roi_heads"] == pytest.approx(2 * 300 * 2.93e9, rel=0.05)
    assert flops["total"] == pytest.approx(1.9e12, rel=0.05)
