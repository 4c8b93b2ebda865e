import math

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models import (
    count_parameters,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)
from deeper.models.deep_convnet import DeepConvNet


def small_input(name: str) -> tuple[int, int, int]:
    """The model's design input, or 3x32x32 for ImageNet-size models (a 224x224 pass is a slow test of the zoo)."""
    c, h, w = get_model_entry(name).default_input
    return (c, h, w) if max(h, w) <= 64 else (c, 32, 32)


@pytest.mark.parametrize("name", list_models(family="classify"))
def test_every_registered_model(name):
    """Registering a model is enough to get it checked: shapes, finiteness, gradients, eval determinism."""
    c, h, w = small_input(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=c, img_size=h)
    x = torch.rand(3, c, h, w)
    out = model(x)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a gradient: {missing}"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.reset_classifier(4)
    assert model(x).shape == (3, 4)


def test_deep_convnet_is_the_books_network():
    net = create_model("deep-convnet")
    assert count_parameters(net) == 123_552
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]
    assert [c.padding for c in convs] == [(1, 1)] * 3 + [(2, 2)] + [(1, 1)] * 2
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (1024, 50, 10)
    assert net.drop1.p == 0.5 and net.drop2.p == 0.5
    feats = net.forward_features(torch.zeros(2, 1, 28, 28))
    assert feats.shape == (2, 64, 4, 4)


def test_deep_convnet_dropout_acts_on_the_logits_in_training_only():
    torch.manual_seed(0)
    net = create_model("deep-convnet")
    x = torch.rand(64, 1, 28, 28)
    net.train()
    zeros = (net(x) == 0).float().mean()
    assert 0.35 < zeros < 0.65  # half of the logits are dropped
    net.eval()
    assert (net(x) == 0).float().mean() < 0.01


def test_deep_convnet_uses_he_initialisation():
    torch.manual_seed(0)
    net = DeepConvNet()
    for layer in (net.conv5, net.conv6, net.fc1):
        fan_in = layer.weight[0].numel()
        std = layer.weight.std().item()
        assert abs(std - math.sqrt(2 / fan_in)) / math.sqrt(2 / fan_in) < 0.05
        assert torch.count_nonzero(layer.bias) == 0


def test_deep_convnet_adapts_to_other_inputs():
    net = create_model("deep-convnet", in_chans=3, img_size=32, num_classes=100)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    assert create_model("deep-convnet", img_size=64).fc1.in_features == 64 * 8 * 8
    with pytest.raises(ValueError, match="too small"):
        create_model("deep-convnet", img_size=2)


def test_mlp_options():
    m = create_model("mlp", hidden_sizes=(50, 40), activation="sigmoid", batchnorm=True, dropout=0.2)
    assert [type(x).__name__ for x in m.hidden[0]] == ["Linear", "BatchNorm1d", "Sigmoid", "Dropout"]
    assert count_parameters(m) == 784 * 50 + 50 + 2 * 50 + 50 * 40 + 40 + 2 * 40 + 40 * 10 + 10
    torch.manual_seed(0)
    xavier = create_model("mlp", hidden_sizes=(400,), activation="tanh").hidden[0].fc.weight.std().item()
    assert abs(xavier - math.sqrt(1 / 784)) < 0.002
    with pytest.raises(ConfigError, match="activation"):
        create_model("mlp", activation="gelu2")


def test_registry_errors():
    with pytest.raises(ConfigError, match="did you mean deep-convnet"):
        create_model("deep-convnt")
    with pytest.raises(ConfigError, match="does not take option"):
        create_model("deep-convnet", depth=3)
    for option in ("width", "width_norm", "dropout"):  # a number option given text is one clear line
        with pytest.raises(ConfigError, match=f"option {option} must be a number, got 'abc'"):
            create_model("deep-convnet", **{option: "abc"})
    # an int where the default is a float is fine
    assert create_model("deep-convnet", width=2).conv1.out_channels == 32
    with pytest.raises(ValueError, match="already registered"):
        register_model("deep-convnet")(lambda *, num_classes, in_chans: None)
    with pytest.raises(TypeError, match="in_chans"):
        register_model("bad-signature")(lambda *, num_classes: None)
    assert list_models("deep*", family="classify") == ["deep-convnet"]
