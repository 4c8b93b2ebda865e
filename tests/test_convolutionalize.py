"""Convolutionalization (FCN): same outputs at the training size, score maps of the right size beyond it."""

import json

import pytest
import torch
from torch import nn

from deeper.analysis.summary import summarize
from deeper.cli import main
from deeper.errors import ConfigError
from deeper.models import convolutionalize, count_parameters, create_model, save_weights
from tests.test_zoo import ZOO

CNNS = [n for n in ZOO if n != "vit-tiny"] + ["deep-convnet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_notes_example_32x10x10_to_100():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3200, 100)
    )
    fcn = convolutionalize(net, (1, 20, 20))
    conv = fcn.head[0]
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (100, 32, 10, 10)
    assert count_parameters(fcn) == count_parameters(net) == 320 + 320_100  # the same weights, reshaped
    x = torch.rand(3, 1, 20, 20)
    with torch.no_grad():
        assert fcn(x).shape == (3, 100, 1, 1)
        assert torch.allclose(fcn(x).flatten(1), net(x), atol=1e-5)
        assert fcn(torch.rand(1, 1, 36, 44)).shape == (
            1,
            100,
            18 - 10 + 1,
            22 - 10 + 1,
        )  # (32, 18, 22) features


def test_the_notes_4x4x16x10_affine_layer_has_2560_weights_either_way():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 16, 10, bias=False))
    fcn = convolutionalize(nn.Sequential(nn.Identity(), *net), (16, 4, 4))
    assert (
        fcn.head[0].weight.shape == (10, 16, 4, 4)
        and fcn.head[0].weight.numel() == 2560 == net[1].weight.numel()
    )


@pytest.mark.parametrize("name", CNNS)
def test_every_zoo_cnn_convolutionalizes(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, img_size=28).eval()
    fcn = convolutionalize(model, (1, 28, 28))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        want, got = model(x), fcn(x)
    assert got.shape == (2, 10, 1, 1)
    assert torch.allclose(got.flatten(1), want, atol=1e-5, rtol=1e-4)
    s = fcn.stride()
    assert s == summarize(model, (1, 28, 28)).rows[-1 - _head_len(model)].stride  # the feature map's stride
    assert fcn.map_size(28 + 2 * s, 28 + 3 * s) == (3, 4)  # one more position per stride of input


def _head_len(model: nn.Module) -> int:
    if hasattr(model, "head"):
        return sum(1 for m in model.head.modules() if next(m.children(), None) is None)
    return 5  # deep-convnet: fc1, relu, drop1, fc2, drop2


def test_every_position_scores_its_window():
    """Without padding the map at (i, j) is exactly the classifier applied to the window at (4i, 4j)."""
    torch.manual_seed(0)
    lenet = create_model("lenet5", img_size=32).eval()  # 32x32: no padding anywhere
    fcn = convolutionalize(lenet, (1, 32, 32))
    canvas = torch.rand(1, 1, 64, 72)
    with torch.no_grad():
        scores = fcn(canvas)
        assert scores.shape == (1, 10, (64 - 32) // 4 + 1, (72 - 32) // 4 + 1)
        for i, j in ((0, 0), (3, 5), (8, 10), (2, 9)):
            window = canvas[:, :, 4 * i : 4 * i + 32, 4 * j : 4 * j + 32]
            assert torch.allclose(scores[0, :, i, j], lenet(window)[0], atol=1e-5)


def test_the_original_is_left_untouched():
    model = create_model("lenet5").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fcn = convolutionalize(model, (1, 28, 28))
    with torch.no_grad():
        for p in fcn.parameters():
            p.add_(1.0)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_batch_norm_in_the_head_becomes_2d():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )
    net.train()
    net(torch.rand(8, 1, 8, 8))  # give the batch norm some running statistics
    net.eval()
    fcn = convolutionalize(net, (1, 8, 8))
    assert isinstance(fcn.head[1], nn.BatchNorm2d)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(fcn(x).flatten(1), net(x), atol=1e-5)


def test_what_cannot_be_convolutionalized():
    with pytest.raises(ConfigError, match="no convolutional feature map"):
        convolutionalize(create_model("vit-tiny", num_classes=10, in_chans=1, img_size=28), (1, 28, 28))
    with pytest.raises(ConfigError, match="Softmax"):
        convolutionalize(
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3), nn.Softmax(1)), (1, 8, 8)
        )
    with pytest.raises(ConfigError, match="cannot convolutionalize a Linear"):
        convolutionalize(nn.Linear(4, 2), (1, 2, 2))
    uneven = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32, 3))
    with pytest.raises(ConfigError, match="uneven windows"):
        convolutionalize(uneven, (1, 9, 9))  # 7x7 -> 4x4
    with pytest.raises(ConfigError, match="one digit per image"):
        convolutionalize(create_model("deep-convnet", width_norm=14), (1, 28, 28))
    with pytest.raises(ConfigError, match="one digit per image"):  # any model with the layer
        convolutionalize(create_model("resnet20", img_size=28, width_norm=14), (1, 28, 28))


# --- deeper heatmap ---------------------------------------------------------------------------------------


@pytest.fixture
def lenet_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "lenet.safetensors"
    meta = {
        "model": "lenet5",
        "num_classes": 10,
        "in_chans": 1,
        "img_size": 28,
        "classes": [str(i) for i in range(10)],
    }
    save_weights(create_model("lenet5"), path, meta)
    return path


def test_heatmap_command(lenet_weights, tmp_path, capsys):
    out = tmp_path / "heat.png"
    code = main(
        [
            "heatmap",
            "--weights",
            str(lenet_weights),
            "--data",
            "digits",
            "--grid",
            "2x3",
            "-o",
            str(out),
            "--json",
        ]
    )
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"
    assert r["canvas_shape"] == [1, 56, 84] and r["stride"] == 4
    assert r["map_shape"] == [10, (56 - 28) // 4 + 1, (84 - 28) // 4 + 1]
    assert len(r["read"]) == 2 and len(r["read"][0]) == 3 and 0 <= r["correct"] <= 6
    from deeper.data import load_dataset

    labels = load_dataset("digits", "test").labels
    assert [labels[i].item() for i in r["indices"]] == [v for row in r["true"] for v in row]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--grid", "2by3"], "ROWSxCOLS"),
        (["-o", "x.jpg"], "must be a .png"),
        (["--weights", "missing.safetensors"], "no such run folder or weights file"),
    ],
)
def test_heatmap_errors(lenet_weights, tmp_path, capsys, argv, message):
    base = {
        "--weights": str(lenet_weights),
        "--data": "digits",
        "--grid": "1x2",
        "-o": str(tmp_path / "h.png"),
    }
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = v
    code = main(["heatmap", *[x for kv in base.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_heatmap_refuses_other_image_sizes(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(
        create_model("lenet5", img_size=32),
        path,
        {"model": "lenet5", "num_classes": 10, "in_chans": 1, "img_size": 32},
    )
    code = main(["heatmap", "--weights", str(path), "--data", "digits", "-o", str(tmp_path / "h.png")])
    assert code == 1 and "trained on 32x32 images but digits has 28x28" in capsys.readouterr().err
