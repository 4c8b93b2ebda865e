"""The no-pooling networks M3, M5 and M7 (An et al. 2020): the paper's layouts, sizes and options.

Shapes, gradients, determinism and ``reset_classifier`` are checked for them, as for every
registered model, by ``tests/test_models.py::test_every_registered_model``.
"""

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models import count_parameters, create_model, model_from_weights, save_weights
from deeper.models.preprocess import WidthNormalize

#: name -> (kernel size, channels, side of the last map for a 28x28 input)
PAPER = {
    "nopool-m3": (3, [32, 48, 64, 80, 96, 112, 128, 144, 160, 176], 8),
    "nopool-m5": (5, [32, 64, 96, 128, 160], 8),
    "nopool-m7": (7, [48, 96, 144, 192], 4),
}


def expected_parameters(k: int, channels: list[int], side: int, classes: int = 10) -> int:
    ins = [1, *channels[:-1]]
    convs = sum(k * k * i * o for i, o in zip(ins, channels))  # no biases
    norms = sum(2 * o for o in channels)
    return convs + norms + channels[-1] * side * side * classes + classes


@pytest.mark.parametrize("name", PAPER)
def test_the_papers_layouts(name):
    k, channels, side = PAPER[name]
    net = create_model(name)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == channels
    assert all(c.kernel_size == (k, k) and c.padding == (0, 0) and c.bias is None for c in convs)
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * len(channels)  # batch norm + ReLU after each
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d) for m in net.modules())
    with torch.no_grad():
        assert net.forward_features(torch.zeros(2, 1, 28, 28)).shape == (2, channels[-1], side, side)
    assert net.get_classifier().in_features == channels[-1] * side * side
    assert count_parameters(net) == expected_parameters(k, channels, side)


def test_every_position_of_the_last_map_has_its_own_weights():
    """Flattening (no global pool): moving a feature to another position changes the output."""
    torch.manual_seed(0)
    net = create_model("nopool-m7").eval()
    feats = torch.zeros(1, 192, 4, 4)
    a, b = feats.clone(), feats.clone()
    a[0, 0, 0, 0] = 1.0
    b[0, 0, 3, 3] = 1.0
    with torch.no_grad():
        assert not torch.allclose(net.head(a), net.head(b))


def test_other_input_sizes_and_too_small_ones():
    net = create_model("nopool-m5", in_chans=3, img_size=32, num_classes=100)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    assert net.get_classifier().in_features == 160 * 12 * 12
    with pytest.raises(ConfigError, match="too small: 4 unpadded 7x7 convolutions take 24 pixels"):
        create_model("nopool-m7", img_size=24)
    create_model("nopool-m7", img_size=25)  # 25 -> 1: the smallest that works


def test_width_norm_is_a_parameter_free_first_layer_kept_in_the_weights(tmp_path):
    plain = create_model("nopool-m5")
    net = create_model("nopool-m5", width_norm=14)
    assert isinstance(net.features[0], WidthNormalize) and net.features[0].width == 14
    assert list(net.state_dict()) == list(plain.state_dict())  # the same weight names either way
    meta = {"model": "nopool-m5", "num_classes": 10, "in_chans": 1, "model_kwargs": {"width_norm": 14}}
    save_weights(net, tmp_path / "m5.safetensors", meta)  # what `deeper train` records
    back, _ = model_from_weights(tmp_path / "m5.safetensors")
    back.eval()
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 8:20, 12:15] = 1.0  # a narrow stroke, which the width normalisation widens
    net.eval()
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
        plain.load_state_dict(net.state_dict())  # the same weights without the normalisation
        assert not torch.allclose(plain.eval()(x), net(x))


def test_convolutionalized_they_compute_the_same_and_slide_over_larger_images():
    from deeper.models import convolutionalize

    torch.manual_seed(0)
    net = create_model("nopool-m7").eval()
    fcn = convolutionalize(net, (1, 28, 28)).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fcn(x).flatten(1), net(x), atol=1e-5)
        assert fcn(torch.rand(1, 1, 40, 40)).shape == (1, 10, 13, 13)  # one window per 28x28 crop
