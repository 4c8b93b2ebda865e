"""The layer table reproduces the notes' worked figures and agrees with independent oracles."""

import json

import pytest
import torch
import torchvision
from torch import nn

from deeper.analysis.summary import (
    conv_output_size,
    parse_shape,
    plot_summary,
    summarize,
    summarize_registered,
)
from deeper.errors import ConfigError
from deeper.models.googlenet import Inception

pytestmark = pytest.mark.usefixtures("one_thread")


# --- convolution arithmetic (notes 004) -------------------------------------------------------------


def test_3x3_conv_128_to_64_has_73728_weights():
    s = summarize(nn.Conv2d(128, 64, 3, padding=1, bias=False), (128, 8, 8))
    assert s.total_params == 3 * 3 * 128 * 64 == 73_728
    assert s.rows[0].output_shape == [64, 8, 8]
    assert s.total_macs == 73_728 * 8 * 8  # every weight used once per output position
    assert summarize(nn.Conv2d(128, 64, 3, padding=1), (128, 8, 8)).total_params == 73_728 + 64


def test_two_stacked_3x3_convs_see_5x5_with_fewer_weights():
    two = summarize(nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.Conv2d(1, 1, 3, bias=False)), (1, 9, 9))
    one = summarize(nn.Conv2d(1, 1, 5, bias=False), (1, 9, 9))
    assert [r.receptive_field for r in two.rows] == [3, 5]
    assert one.rows[0].receptive_field == 5
    assert (two.total_params, one.total_params) == (18, 25)  # per channel pair
    three = summarize(nn.Sequential(*(nn.Conv2d(1, 1, 3, bias=False) for _ in range(3))), (1, 9, 9))
    assert (three.rows[-1].receptive_field, three.total_params) == (7, 27)  # vs 49 for one 7x7
    wide = summarize(
        nn.Sequential(nn.Conv2d(128, 128, 3, bias=False), nn.Conv2d(128, 128, 3, bias=False)), (128, 9, 9)
    )
    assert (
        wide.total_params == 294_912
        and summarize(nn.Conv2d(128, 128, 5, bias=False), (128, 9, 9)).total_params == 409_600
    )


def test_alexnet_parameters_sit_in_the_affine_layers_and_work_in_the_convolutions():
    s = summarize_registered("alexnet")  # 3x224x224, 1000 classes
    assert s.total_params == 61_100_840
    linear, conv = s.by_type["Linear"], s.by_type["Conv2d"]
    assert linear["param_share"] > 0.95 and conv["param_share"] < 0.05
    assert conv["mac_share"] > 0.9 and linear["mac_share"] < 0.1
    fc6 = next(r for r in s.rows if r.name == "head.fc6")
    assert fc6.params == 256 * 6 * 6 * 4096 + 4096 and fc6.param_share > 0.6  # one layer, most of the network


def test_inception_1x1_reductions_save_parameters_and_macs():
    cfg = (192, 64, 96, 128, 16, 32, 32)  # inception 3a, with the paper's 5x5 branch, on a 28x28 map
    reduced = summarize(Inception(*cfg, large_kernel=5), (192, 28, 28))
    naive = summarize(Inception(*cfg, large_kernel=5, reduce=False), (192, 28, 28))
    reduced_w = 192 * 64 + (192 * 96 + 96 * 9 * 128) + (192 * 16 + 16 * 25 * 32) + 192 * 32
    naive_w = 192 * 64 + 192 * 9 * 128 + 192 * 25 * 32
    assert (reduced.by_type["Conv2d"]["params"], naive.by_type["Conv2d"]["params"]) == (reduced_w, naive_w)
    assert reduced.total_macs == reduced_w * 28 * 28 and naive.total_macs == naive_w * 28 * 28
    assert naive_w / reduced_w > 2.3
    # the notes' bottleneck figure: 3x3 128->128 directly vs 1x1 128->32 then 3x3 32->128
    direct = summarize(nn.Conv2d(128, 128, 3, padding=1, bias=False), (128, 8, 8)).total_params
    bottleneck = summarize(
        nn.Sequential(nn.Conv2d(128, 32, 1, bias=False), nn.Conv2d(32, 128, 3, padding=1, bias=False)),
        (128, 8, 8),
    ).total_params
    assert (direct, bottleneck) == (147_456, 40_960)


def test_output_size_formula_and_its_error():
    assert conv_output_size(28, 5) == 24
    assert conv_output_size(28, 3, 1, 1) == 28
    assert conv_output_size(227, 11, 4) == 55  # AlexNet's real input size
    with pytest.raises(ConfigError, match=r"55\.25 is not an integer.*floor it to 55"):
        conv_output_size(224, 11, 4, 2)  # the paper's 224
    with pytest.raises(ConfigError, match="does not fit"):
        conv_output_size(4, 7)
    with pytest.raises(ConfigError, match="stride"):
        conv_output_size(28, 3, 0)
    assert conv_output_size(28, 3, 1, 2, dilation=2) == 28


def test_layers_that_floor_are_flagged():
    s = summarize_registered("alexnet")
    conv1 = next(r for r in s.rows if r.name == "features.conv1")
    assert conv1.exact is False and conv1.output_shape == [64, 55, 55]
    assert next(r for r in s.rows if r.name == "features.conv2").exact is True
    assert "drops the last rows/columns" in s.table()


# --- receptive field and stride -------------------------------------------------------------------------


def _empirical_receptive_field(net: nn.Module, c: int, size: int) -> tuple[int, int]:
    """Width of the input region the centre output depends on, from the gradient (all-ones weights)."""
    for p in net.parameters():
        nn.init.ones_(p)
    x = torch.zeros(1, c, size, size, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum(0).sum(0)).flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def test_receptive_field_matches_the_gradient_oracle():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),
        nn.AvgPool2d(2),
        nn.Conv2d(2, 2, 3, dilation=2, padding=2, bias=False),
        nn.AvgPool2d(3, stride=2),
        nn.Conv2d(2, 2, 5, stride=2, padding=2, bias=False),
        nn.Conv2d(2, 1, (3, 1), padding=(1, 0), bias=False),
    )
    s = summarize(net, (1, 128, 128))
    assert s.rows[-1].receptive_field == list(_empirical_receptive_field(net, 1, 128))
    assert [r.stride for r in s.rows] == [1, 2, 2, 4, 8, 8]


def test_alexnet_receptive_field_is_the_published_one():
    s = summarize_registered("alexnet")
    pool5 = next(r for r in s.rows if r.name == "features.pool5")
    assert (pool5.receptive_field, pool5.stride) == (195, 32)
    fc6 = next(r for r in s.rows if r.name == "head.fc6")
    assert fc6.receptive_field is None  # after the flatten: the whole image


def test_branches_take_the_widest_path():
    s = summarize(Inception(8, 4, 4, 4, 4, 4, 4, large_kernel=5), (8, 16, 16))
    out = next(r for r in s.rows if r.name == "branch3.1.relu")  # after the 5x5
    assert out.receptive_field == 5
    pool_proj = next(r for r in s.rows if r.name == "branch4.1.conv")  # 3x3 pool then 1x1
    assert pool_proj.receptive_field == 3


# --- totals against torchvision ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,weights",
    [
        ("alexnet", torchvision.models.AlexNet_Weights.IMAGENET1K_V1),
        ("resnet18", torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
        ("googlenet", torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1),
        pytest.param("resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1, marks=pytest.mark.slow),
        pytest.param(
            "densenet121", torchvision.models.DenseNet121_Weights.IMAGENET1K_V1, marks=pytest.mark.slow
        ),
        pytest.param("vgg16", torchvision.models.VGG16_Weights.IMAGENET1K_V1, marks=pytest.mark.slow),
    ],
)
def test_macs_and_params_equal_torchvisions_published_figures(name, weights):
    """torchvision's weight metadata records parameters and GMACs ("_ops") per image; nothing is downloaded."""
    s = summarize_registered(name)
    assert s.total_params == weights.meta["num_params"]
    assert round(s.total_macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=1e-3)
    assert sum(r.params for r in s.rows) == s.total_params
    assert sum(r.macs for r in s.rows) == s.total_macs


def test_attention_macs_are_counted_in_the_attention_row():
    s = summarize_registered("vit-tiny", (1, 28, 28), num_classes=10)
    attn = next(r for r in s.rows if r.name == "blocks.0.attn")
    tokens, dim = 50, 192
    assert attn.macs == 2 * tokens * tokens * dim  # q k^T and (attention) v
    assert attn.params == 0  # its weights are in the qkv and proj rows
    assert sum(r.macs for r in s.rows) == s.total_macs and sum(r.params for r in s.rows) == s.total_params


def test_shared_modules_get_a_row_per_call_and_parameters_once():
    s = summarize_registered("deep-convnet")
    relus = [r.name for r in s.rows if r.type == "ReLU"]
    assert relus[:2] == ["relu", "relu #2"] and len(relus) == 7
    assert sum(r.params for r in s.rows) == s.total_params == 123_552


def test_modules_not_called_still_count():
    s = summarize_registered("googlenet", (1, 28, 28), num_classes=10, aux_logits=True)
    idle = [r for r in s.rows if r.note]
    assert idle and all(r.name.startswith(("aux1", "aux2")) for r in idle)
    assert sum(r.params for r in s.rows) == s.total_params
    assert abs(sum(r.param_share for r in s.rows) - 1) < 1e-9


def test_defaults_errors_and_json_shape():
    s = summarize_registered("resnet20")
    assert s.input_shape == [3, 32, 32] and s.output_shape == [10]
    assert summarize_registered("resnet18").output_shape == [1000]  # ImageNet input -> 1000 classes
    d = s.to_dict()
    assert {"total_params", "total_macs", "layers", "by_type"} <= set(d) and d["layers"][0][
        "name"
    ] == "stem.conv1"
    assert parse_shape("3x32x32") == (3, 32, 32)
    for bad in ("32x32", "3x0x4", "axbxc"):
        with pytest.raises(ConfigError, match="CxHxW"):
            parse_shape(bad)
    with pytest.raises(ConfigError, match="cannot take an input of 1x8x8"):
        summarize_registered("vgg11", (1, 8, 8))


def test_bar_chart_png(tmp_path):
    for name, shape in (("alexnet", (3, 224, 224)), ("densenet-bc-100", (3, 32, 32))):  # per layer; per block
        path = tmp_path / f"{name}.png"
        plot_summary(summarize_registered(name, shape), path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# --- deeper summary ---------------------------------------------------------------------------------------


def test_summary_command_json_and_plot(tmp_path, capsys):
    from deeper.cli import main

    png = tmp_path / "vgg.png"
    code = main(
        ["summary", "vgg11", "--input", "1x28x28", "--num-classes", "7", "--plot", str(png), "--json"]
    )
    cap = capsys.readouterr()
    r = json.loads(cap.out.strip().splitlines()[-1])
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and r["plot"] == str(png)
    assert r["input_shape"] == [1, 28, 28] and r["output_shape"] == [7]
    assert r["total_params"] == sum(layer["params"] for layer in r["layers"])
    assert r["total_macs"] == sum(layer["macs"] for layer in r["layers"]) > 0
    first = r["layers"][0]
    assert (
        first["name"] == "features.conv1_1"
        and first["receptive_field"] == 3
        and first["output_shape"] == [64, 28, 28]
    )
    assert "features.conv1_1" in cap.err  # the table goes to stderr when --json owns stdout
    code = main(["summary", "googlenet", "--input", "3x32x32", "--model-arg", "aux_logits=true", "--by-type"])
    out = capsys.readouterr().out
    assert code == 0 and "inception3a" not in out and out.lstrip().startswith("type")
    assert "13,004,888" not in out and "parameters" in out  # 10 classes at 32x32: not the ImageNet count


@pytest.mark.parametrize(
    "argv,message",
    [
        (["lenet5", "--input", "28x28"], "CxHxW"),
        (["lenet6"], "did you mean lenet5"),
        (["lenet5", "--plot", "chart.svg"], "must be a .png"),
        (["vgg11", "--input", "3x8x8"], "cannot take an input of 3x8x8"),
        (["lenet5", "--model-arg", "activation=swish"], "unknown activation"),
    ],
)
def test_summary_command_errors(capsys, argv, message):
    from deeper.cli import main

    code = main(["summary", *argv])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
