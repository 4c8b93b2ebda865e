"""The segmentation networks: shapes for any input, the bilinear start of FCN's transposed convolutions,
SegNet's max-unpooling, U-Net's skips, DeepLab's atrous stages, and one-line errors for bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.models import create_model, get_model_entry, list_models
from deeper.models.segment import SegmentationNet, Upsample, bilinear_kernel
from deeper.models.segment.fcn import FCN

SEGMENT = list_models(family="segment")
SMALL = {  # narrow versions: the same architectures, fast enough for every shape
    "fcn32s": {"width": 4, "hidden": 16},
    "fcn16s": {"width": 4, "hidden": 16},
    "fcn8s": {"width": 4, "hidden": 16},
    "unet": {"width": 4},
    "segnet": {"width": 4},
    "segnet-basic": {"width": 4},
    "deeplabv3": {"width": 4, "aspp": 8},
    "deeplabv3plus": {"width": 4, "aspp": 8, "decoder": 8},
}


def test_the_family_is_registered():
    assert set(SEGMENT) == set(SMALL)
    for name in SEGMENT:
        entry = get_model_entry(name)
        assert entry.family == "segment" and entry.default_input == (1, 64, 84) and entry.description


@pytest.mark.parametrize("name", SEGMENT)
def test_every_segmentation_model_scores_every_pixel_of_any_input(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=11, in_chans=1, **SMALL[name])
    assert isinstance(model, SegmentationNet)
    for h, w in [(64, 84), (28, 28), (37, 53), (1, 1), (70, 129)]:
        out = model(torch.rand(2, 1, h, w))
        assert out.shape == (2, 11, h, w) and torch.isfinite(out).all(), (name, h, w)
    x = torch.rand(3, 1, 64, 84)
    model(x).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a gradient: {missing}"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    # several channels and classes
    other = create_model(name, num_classes=3, in_chans=3, **SMALL[name])
    assert other(torch.rand(2, 3, 40, 50)).shape == (2, 3, 40, 50)


@pytest.mark.parametrize("name", SEGMENT)
def test_the_default_sizes_run_on_a_scene(name):
    model = create_model(name, num_classes=11, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 84)).shape == (1, 11, 64, 84)


@pytest.mark.parametrize("name", SEGMENT)
def test_padding_to_the_stride_does_not_leak_into_the_crop(name):
    """A scene padded by the caller with black gives the same scores on the scene's own pixels."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=1, **SMALL[name]).eval()
    x = torch.rand(1, 1, 64, 84)
    stride = model.stride
    padded = F.pad(x, (0, -84 % stride, 0, -64 % stride))
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[..., :64, :84], model(x), rtol=1e-5, atol=1e-5)


def test_wrong_channels_and_empty_images_are_one_line_errors():
    model = create_model("unet", num_classes=11, in_chans=1, width=4)
    with pytest.raises(ConfigError, match=r"reads images of 1 channel\(s\).*shape \(2, 3, 64, 84\)"):
        model(torch.rand(2, 3, 64, 84))
    with pytest.raises(ConfigError, match="shape"):
        model(torch.rand(64, 84))
    with pytest.raises(ConfigError, match="empty image"):
        model(torch.rand(1, 1, 0, 5))


def test_bad_options_are_config_errors():
    for name, kwargs, message in [
        ("fcn8s", {"depth": 12}, "depth must be one of"),
        ("fcn8s", {"init": "zeros"}, "bilinear or random"),
        ("unet", {"depth": 0}, "depth"),
        ("deeplabv3", {"output_stride": 32}, "output_stride must be 4, 8 or 16"),
        ("segnet", {"width": 0}, "width"),
        ("segnet", {"stages": 6}, "stages must be 1 to 5"),
        ("deeplabv3plus", {"decoder": 0}, "decoder"),
    ]:
        with pytest.raises(ConfigError, match=message):
            create_model(name, num_classes=11, in_chans=1, **kwargs)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        create_model("unet", num_classes=1, in_chans=1)


# ----------------------------------------------------------------------------- FCN


@pytest.mark.parametrize("factor", [2, 4, 8, 16, 32])
def test_bilinear_initialisation_equals_bilinear_interpolation(factor):
    torch.manual_seed(factor)
    up = Upsample(5, factor).double()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    want = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    got = up(x)
    assert got.shape == want.shape == (2, 5, 3 * factor, 4 * factor)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    k = bilinear_kernel(factor)
    assert k.shape == (2 * factor, 2 * factor) and torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    # each output pixel is a convex combination: the weights of every phase sum to 1
    phases = k.reshape(2, factor, 2, factor).sum((0, 2))
    torch.testing.assert_close(phases, torch.ones(factor, factor, dtype=k.dtype))


def test_random_initialisation_is_not_bilinear():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 4)
    up = Upsample(3, 4, init="random")
    assert not torch.allclose(up(x), F.interpolate(x, scale_factor=4, mode="bilinear"), atol=1e-2)
    with pytest.raises(ValueError, match="even"):
        Upsample(3, 3)


@pytest.mark.parametrize("variant", [32, 16, 8])
def test_fcn_upsamplers_start_bilinear_and_skip_scorers_at_zero(variant):
    torch.manual_seed(0)
    fcn = FCN(variant=variant, num_classes=11, in_chans=1, width=4, hidden=16).eval()
    ups = [m for m in fcn.modules() if isinstance(m, Upsample)]
    assert sorted(u.factor for u in ups) == {32: [32], 16: [2, 16], 8: [2, 2, 8]}[variant]
    scores = torch.randn(1, 11, 2, 3)
    for u in ups:
        want = F.interpolate(scores, scale_factor=u.factor, mode="bilinear", align_corners=False)
        torch.testing.assert_close(u(scores), want, rtol=1e-5, atol=1e-5)
    skips = [m for n, m in fcn.named_children() if n.startswith("score_pool")]
    assert len(skips) == {32: 0, 16: 1, 8: 2}[variant]
    assert all(torch.count_nonzero(s.weight) == 0 and torch.count_nonzero(s.bias) == 0 for s in skips)
    # so at the start FCN-16s and FCN-8s are FCN-32s with the upsampling split into stages
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        coarse = fcn.classifier(fcn.to_pool5(fcn.to_pool4(fcn.to_pool3(x))))
        assert coarse.shape[-2:] == (2, 3)  # stride 32
        up = coarse
        for u in sorted(ups, key=lambda u: u.factor):
            up = u(up)
        torch.testing.assert_close(fcn(x), up)


def test_fcn_without_pool1_keeps_twice_the_resolution():
    torch.manual_seed(0)
    fine = FCN(variant=8, num_classes=11, in_chans=1, width=4, hidden=16, pool1=False).eval()
    coarse = FCN(variant=8, num_classes=11, in_chans=1, width=4, hidden=16).eval()
    assert fine.stride == 16 and coarse.stride == 32
    assert isinstance(fine.to_pool3.pool1, nn.Identity) and isinstance(coarse.to_pool3.pool1, nn.MaxPool2d)
    assert sorted(u.factor for u in fine.modules() if isinstance(u, Upsample)) == [2, 2, 4]
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        assert fine.to_pool3(x).shape[-2:] == (16, 24)  # pool3 at stride 4
        assert coarse.to_pool3(x).shape[-2:] == (8, 12)  # the paper's stride 8
        assert fine(x).shape == coarse(x).shape == (1, 11, 64, 96)
    # the same weights either way: only the first max-pool is gone
    assert [n for n, _ in fine.named_parameters()] == [n for n, _ in coarse.named_parameters()]


def test_fcn_is_a_convolutionalized_vgg_classifier():
    from deeper.models.segment.fcn import WINDOW, window_classifier

    torch.manual_seed(0)
    vgg = window_classifier(depth=16, width=4, hidden=16, num_classes=11, in_chans=1, dropout=0.5).eval()
    fcn = FCN(variant=32, num_classes=11, in_chans=1, width=4, hidden=16)
    convs = [m for m in fcn.classifier.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (32, 16, (1, 1)), (16, 16, (1, 1)), (16, 11, (1, 1))
    ]  # fmt: skip
    assert not any(isinstance(m, nn.Linear) for m in fcn.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in fcn.modules()) == 13 + 3  # VGG-16's convolutions + fc6-8
    # given the classifier's weights, the trunk scores one 32x32 window as the classifier does
    x = torch.rand(2, 1, WINDOW, WINDOW)
    trunk = nn.Sequential(fcn.to_pool3, fcn.to_pool4, fcn.to_pool5, fcn.classifier).eval()
    with torch.no_grad():
        for stage in (fcn.to_pool3, fcn.to_pool4, fcn.to_pool5):
            for n, m in stage.named_children():
                m.load_state_dict(vgg.features.get_submodule(n).state_dict())
        for conv, lin in zip(convs, [m for m in vgg.head if isinstance(m, nn.Linear)]):
            conv.weight.copy_(lin.weight[:, :, None, None])
            conv.bias.copy_(lin.bias)
        torch.testing.assert_close(trunk(x).flatten(1), vgg(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- SegNet, U-Net, DeepLab


def test_segnet_upsamples_by_unpooling_to_the_pooled_positions():
    torch.manual_seed(0)
    net = create_model("segnet", num_classes=11, in_chans=1, width=4).eval()
    assert not any(
        isinstance(m, nn.ConvTranspose2d | Upsample) for m in net.modules()
    )  # no learned upsampling
    seen = {}
    net.encoder[-1].register_forward_hook(lambda m, a, out: seen.__setitem__("before_pool", out))
    net.decoder[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("unpooled", a[0]))
    with torch.no_grad():
        net(torch.rand(2, 1, 64, 96))
    x, u = seen["before_pool"], seen["unpooled"]
    assert u.shape == x.shape == (2, 32, 4, 6)
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    where = torch.zeros_like(x).flatten(2).scatter_(2, idx.flatten(2), 1.0).view_as(x).bool()
    assert torch.equal(u[where], x[where])  # the maxima went back where they came from
    assert torch.count_nonzero(u[~where]) == 0  # and nothing else is filled in
    # each 2x2 window holds exactly its maximum
    torch.testing.assert_close(F.avg_pool2d(u, 2) * 4, pooled)


def test_segnet_of_four_stages_is_vgg16s_first_ten_convolutions_at_stride_16():
    full = create_model("segnet", num_classes=11, in_chans=1, width=4)
    four = create_model("segnet", num_classes=11, in_chans=1, width=4, stages=4)
    assert full.stride == 32 and four.stride == 16 and len(four.encoder) == len(four.decoder) == 4

    def convs(modules):
        return [m for m in modules.modules() if isinstance(m, nn.Conv2d)]

    assert len(convs(full.encoder)) == 13 and len(convs(four.encoder)) == 10 == len(convs(four.decoder))
    assert [c.out_channels for c in convs(four.encoder)] == [c.out_channels for c in convs(full.encoder)][:10]
    with torch.no_grad():
        assert four(torch.rand(2, 1, 50, 70)).shape == (2, 11, 50, 70)


def test_segnet_basic_is_four_7x7_stages_without_relu_in_the_decoder():
    net = create_model("segnet-basic", num_classes=11, in_chans=1, width=8).eval()
    assert len(net.encoder) == len(net.decoder) == 4 and net.stride == 16
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7)] * 8 + [(1, 1)]
    assert all(isinstance(s[0][-1], nn.ReLU) for s in net.encoder)
    assert not any(isinstance(m, nn.ReLU) for m in net.decoder.modules())
    assert not any(isinstance(m, nn.ConvTranspose2d | Upsample) for m in net.modules())
    with torch.no_grad():
        assert net(torch.rand(2, 1, 50, 70)).shape == (2, 11, 50, 70)


def test_unet_concatenates_the_contracting_maps():
    torch.manual_seed(0)
    net = create_model("unet", num_classes=11, in_chans=1, width=4, depth=3)
    assert [m[0][0].in_channels for m in net.merge] == [8, 16, 32]  # 2x: the skip and the up-convolution
    assert [(u.kernel_size, u.stride) for u in net.up] == [((2, 2), (2, 2))] * 3
    seen = []
    for block in net.merge:
        block.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    net(torch.rand(1, 1, 64, 84))
    assert [tuple(s[1:]) for s in seen] == [
        (32, 16, 22),
        (16, 32, 44),
        (8, 64, 88),
    ]  # 84 padded to 88 (stride 8)


@pytest.mark.parametrize(("stride", "dilations"), [(8, {2, 4, 8}), (16, {1, 2, 4}), (4, {4, 8, 16})])
def test_deeplab_keeps_its_resolution_with_atrous_convolutions(stride, dilations):
    net = create_model("deeplabv3", num_classes=11, in_chans=1, width=4, aspp=8, output_stride=stride).eval()
    with torch.no_grad():
        feats = net.stages(net.stem(torch.rand(1, 1, 64, 96)))
    assert feats.shape[-2:] == (64 // stride, 96 // stride)
    last = [
        m.dilation[0]
        for m in net.stages[-1].modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert set(last) == dilations  # multi-grid (1, 2, 4) times the stage's rate
    aspp = [m.dilation[0] for m in net.aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert aspp == [2, 4, 6]
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.aspp.modules())  # the image-level branch


def test_deeplab_v3_plus_refines_the_aspp_map_with_stride_2_features():
    torch.manual_seed(0)
    plain = create_model("deeplabv3", num_classes=11, in_chans=1, width=4, aspp=8)
    plus = create_model("deeplabv3plus", num_classes=11, in_chans=1, width=4, aspp=8, decoder=8)
    assert not hasattr(plain, "refine") and plain.score.in_channels == 8
    seen = {}
    plus.refine.register_forward_pre_hook(lambda m, a: seen.__setitem__("refine", a[0].shape))
    plus.score.register_forward_pre_hook(lambda m, a: seen.__setitem__("score", a[0].shape))
    assert plus(torch.rand(2, 1, 64, 84)).shape == (2, 11, 64, 84)
    assert tuple(seen["refine"]) == (2, 8 + 8, 32, 44)  # ASPP (8) + the narrowed stage-1 map (8), stride 2
    assert tuple(seen["score"]) == (2, 8, 32, 44)
