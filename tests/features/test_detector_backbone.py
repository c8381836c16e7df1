"""ResNet C4 backbone: Caffe geometry, frozen BN folding, and padding that never leaks."""

import functools

import torch

from visdial_lg.features.backbone import ConvFrozenBN, ResNetC4, level_sizes


@functools.lru_cache(maxsize=1)
def _backbone() -> ResNetC4:
    torch.manual_seed(0)
    net = ResNetC4(depth=50).double().eval()
    for module in net.modules():  # non-trivial frozen statistics
        if hasattr(module, "running_var"):
            module.running_mean.uniform_(-0.1, 0.1), module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.2, 0.5), module.bias.uniform_(-0.1, 0.1)
    return net


def test_frozen_bn_folded_into_the_conv_equals_conv_then_affine():
    torch.manual_seed(0)
    conv = ConvFrozenBN(4, 6, 3, stride=2).double()
    conv.norm.running_mean.uniform_(-1, 1), conv.norm.running_var.uniform_(0.5, 2)
    conv.norm.weight.uniform_(-1, 1), conv.norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    plain = torch.nn.functional.conv2d(x, conv.weight, None, 2, 1)
    assert torch.allclose(conv(x), conv.norm(plain), atol=1e-12)


def test_caffe_stem_geometry_and_level_sizes_match_the_network():
    net = _backbone()
    with torch.no_grad():
        for h, w in [(33, 47), (18, 20)]:
            res4 = net(torch.zeros(1, 3, h, w, dtype=torch.float64))
            # 600 x 1000 -> 38 x 63 in Caffe; here small sizes through the same formulas
            assert tuple(res4.shape[2:]) == tuple(level_sizes(torch.tensor([[h, w]]))[16][0].tolist())
    assert level_sizes(torch.tensor([[600, 1000]]))[16].tolist() == [[38, 63]]
    assert net.stem.conv1.stride == (2, 2) and net.res3[0].conv1.stride == (2, 2) and net.res3[0].conv2.stride == (1, 1)


def test_zero_padding_of_a_batch_does_not_change_any_valid_feature():
    net = _backbone()
    torch.manual_seed(1)
    sizes = [(40, 56), (53, 37), (56, 56)]
    images = [torch.randn(3, h, w, dtype=torch.float64) * 50 for h, w in sizes]
    batch = torch.zeros(3, 3, 56, 56, dtype=torch.float64)
    for i, image in enumerate(images):
        batch[i, :, : image.shape[1], : image.shape[2]] = image
    with torch.no_grad():
        batched = net(batch, torch.tensor(sizes))
        for i, image in enumerate(images):
            single = net(image[None])
            h, w = single.shape[2:]
            assert torch.allclose(batched[i, :, :h, :w], single[0], rtol=1e-10, atol=1e-9)
            assert (batched[i, :, h:, :] == 0).all() and (batched[i, :, :, w:] == 0).all()
