"""The model zoo: torchvision parity (counts and outputs), small-image stems, and each family's particulars.

Every zoo model is also checked by ``tests/test_models.py::test_every_registered_model``
(shape, finiteness, gradients, eval determinism, reset_classifier).
"""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer as TvViT

from deeper.errors import ConfigError
from deeper.models import count_parameters, create_model, list_models
from deeper.tasks.classify import ClassificationTask

ZOO = [
    "lenet5", "alexnet", "alexnet-2group", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
    "vgg19", "vgg19_bn", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet20", "resnet56", "resnet110", "plain20", "plain56", "plain110", "densenet121", "densenet-bc-100",
    "vit-tiny",
]  # fmt: skip
IMAGENET_TWINS = [
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def imagenet(name: str, **kw) -> nn.Module:
    return create_model(name, num_classes=1000, in_chans=3, img_size=224, **kw)


def test_the_whole_zoo_is_registered():
    assert set(ZOO) <= set(list_models())


@pytest.mark.parametrize("name", IMAGENET_TWINS)
def test_imagenet_parameter_counts_equal_torchvision(name):
    with torch.device("meta"):  # counts without allocating or initialising anything
        ours = count_parameters(imagenet(name))
        theirs = count_parameters(getattr(torchvision.models, name)(weights=None))
    assert ours == theirs


def test_the_issues_reference_counts():
    with torch.device("meta"):
        counts = {
            n: count_parameters(imagenet(n))
            for n in ("alexnet", "vgg16", "googlenet", "resnet50", "densenet121")
        }
        aux = count_parameters(imagenet("googlenet", aux_logits=True))
        tv_aux = count_parameters(
            torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
        )
        vit = count_parameters(imagenet("vit-tiny"))
        tv_vit = count_parameters(TvViT(224, 16, 12, 3, 192, 768, num_classes=1000))
    assert counts == {
        "alexnet": 61_100_840,
        "vgg16": 138_357_544,
        "googlenet": 6_624_904,
        "resnet50": 25_557_032,
        "densenet121": 7_978_856,
    }
    assert aux == tv_aux == 13_004_888
    assert vit == tv_vit == 5_717_416


def _copy_by_order(src: nn.Module, dst: nn.Module) -> None:
    """Load ``src``'s tensors into ``dst`` in registration order; shapes must agree one to one."""
    s, d = src.state_dict(), dst.state_dict()
    s = {k: v for k, v in s.items() if not k.endswith("num_batches_tracked")}
    d_keys = [k for k in d if not k.endswith("num_batches_tracked")]
    assert len(s) == len(d_keys)
    new = {}
    for (sk, sv), dk in zip(s.items(), d_keys):
        assert sv.shape == d[dk].shape, f"{sk} {tuple(sv.shape)} vs {dk} {tuple(d[dk].shape)}"
        new[dk] = sv
    dst.load_state_dict(new, strict=False)


def _randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,theirs",
    [
        ("alexnet", lambda: torchvision.models.alexnet(weights=None)),
        ("vgg11_bn", lambda: torchvision.models.vgg11_bn(weights=None)),
        ("resnet18", lambda: torchvision.models.resnet18(weights=None)),
        ("resnet50", lambda: torchvision.models.resnet50(weights=None)),
        (
            "googlenet",
            lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False),
        ),
        ("densenet121", lambda: torchvision.models.densenet121(weights=None)),
    ],
)
def test_imagenet_networks_compute_what_torchvision_computes(name, theirs):
    """Same weights in, same logits out: the architectures are torchvision's layer for layer."""
    torch.manual_seed(0)
    tv = theirs().eval()
    _randomise_bn(tv, torch.Generator().manual_seed(1))
    kw = {"lrn": False} if name == "alexnet" else {}  # torchvision's AlexNet has no LRN
    ours = create_model(name, num_classes=1000, in_chans=3, img_size=64, **kw).eval()
    _copy_by_order(tv, ours)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv(x), atol=1e-4, rtol=1e-4)


def test_vit_tiny_computes_what_torchvisions_vision_transformer_computes():
    torch.manual_seed(0)
    tv = TvViT(64, 16, 12, 3, 192, 768, num_classes=10).eval()
    for p in tv.heads.parameters():  # torchvision zero-initialises its head
        nn.init.normal_(p, std=0.02)
    ours = create_model("vit-tiny", num_classes=10, in_chans=3, img_size=64).eval()
    s = tv.state_dict()
    order = ["class_token", "encoder.pos_embedding", "conv_proj.weight", "conv_proj.bias"]
    rest = [k for k in s if k not in order]
    ours.load_state_dict(dict(zip(ours.state_dict(), [s[k] for k in order + rest])))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), tv(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_takes_28x28_grey_and_32x32_colour_images(name):
    torch.manual_seed(0)
    for c, s in ((1, 28), (3, 32)):
        model = create_model(name, num_classes=5, in_chans=c, img_size=s).eval()
        with torch.no_grad():
            out = model(torch.rand(2, c, s, s))
        assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_takes_224x224_images(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=3, img_size=224).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name,expected",
    [
        ("lenet5", (16, 5, 5)),  # 28 -> (pad 2) 28 -> 14 -> 10 -> 5, the paper's maps
        ("alexnet", (256, 2, 2)),  # 5x5/1 stem: 28 -> 13 -> 6 -> 2
        ("vgg16", (512, 1, 1)),  # fifth pool dropped: 28 -> 14 -> 7 -> 3 -> 1
        ("googlenet", (1024, 2, 2)),  # 3x3/1 stem: 28 -> 14 -> 7 -> 3 -> 2
        ("resnet18", (512, 2, 2)),  # 3x3/1 stem + pool: 28 -> 14 -> 7 -> 4 -> 2
        ("resnet50", (2048, 2, 2)),
        ("densenet121", (1024, 1, 1)),  # 28 -> 14 -> 7 -> 3 -> 1
        ("resnet20", (64, 7, 7)),  # CIFAR net: 28 -> 28 -> 14 -> 7
        ("densenet-bc-100", (342, 7, 7)),
        ("vit-tiny", (50, 192)),  # 7x7 patches of 4 pixels + the class token
    ],
)
def test_small_image_stems_keep_a_feature_map(name, expected):
    model = create_model(name, num_classes=10, in_chans=1, img_size=28).eval()
    with torch.no_grad():
        assert tuple(model.forward_features(torch.rand(1, 1, 28, 28)).shape[1:]) == expected


def test_small_stems_are_what_the_docstrings_say():
    with torch.device("meta"):  # structure only: nothing allocated
        _check_stems()


def _check_stems():
    small, big = create_model("resnet18", img_size=32), create_model("resnet18", img_size=224)
    assert (small.stem.conv1.kernel_size, small.stem.conv1.stride) == ((3, 3), (1, 1))
    assert (big.stem.conv1.kernel_size, big.stem.conv1.stride) == ((7, 7), (2, 2))
    a = create_model("alexnet", img_size=28).features.conv1
    assert (a.kernel_size, a.stride, a.padding) == ((5, 5), (1, 1), (2, 2))
    assert create_model("lenet5", img_size=28).features.conv1.padding == (2, 2)
    assert create_model("lenet5", img_size=32).features.conv1.padding == (0, 0)
    assert "pool5" in dict(create_model("vgg11", img_size=224).features.named_children())
    assert "pool5" not in dict(create_model("vgg11", img_size=28).features.named_children())


# --- AlexNet -----------------------------------------------------------------------------------


def _paper_lrn(a: torch.Tensor, n=5, k=2.0, alpha=1e-4, beta=0.75) -> torch.Tensor:
    """b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2)^beta, the paper's formula, by hand."""
    sq = a.square()
    out = torch.empty_like(a)
    c = a.shape[1]
    for i in range(c):
        lo, hi = max(0, i - n // 2), min(c - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * sq[:, lo : hi + 1].sum(1)) ** beta
    return out


def test_alexnet_has_the_papers_ingredients():
    net = imagenet("alexnet")
    types = {type(m) for m in net.modules()}
    assert {nn.Conv2d, nn.ReLU, nn.LocalResponseNorm, nn.MaxPool2d, nn.Dropout, nn.Linear} <= types
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    lrns = [n for n, m in net.named_modules() if isinstance(m, nn.LocalResponseNorm)]
    assert lrns == ["features.lrn1", "features.lrn2"]
    a = torch.rand(2, 64, 5, 5) * 40  # large activations, where the normalisation bites
    assert torch.allclose(net.features.lrn1(a), _paper_lrn(a), rtol=1e-5)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in create_model("alexnet", lrn=False).modules())


def test_alexnet_two_groups_as_the_notes_draw_them():
    net = imagenet("alexnet-2group")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert convs[1].weight.numel() == 5 * 5 * 48 * 128 * 2  # the notes' "5x5x48x128x2 ~ 307k"
    assert count_parameters(net) == 60_965_224


# --- GoogLeNet ------------------------------------------------------------------------------------


def test_googlenet_auxiliary_heads_train_with_the_main_one():
    torch.manual_seed(0)
    net = create_model("googlenet", num_classes=10, in_chans=1, img_size=28, aux_logits=True)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)  # the same dropout masks for both passes
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (4, 10) for o in out)
    torch.manual_seed(1)
    step = ClassificationTask().loss({"net": net}, (x, y))
    expected = F.cross_entropy(out[0], y) + 0.3 * (F.cross_entropy(out[1], y) + F.cross_entropy(out[2], y))
    assert torch.allclose(step.loss, expected, atol=1e-5)
    assert torch.equal(step.outputs, out[0])
    step.loss.backward()
    assert all(p.grad is not None for p in net.aux1.parameters()) and all(
        p.grad is not None for p in net.aux2.parameters()
    )
    net.eval()
    assert isinstance(net(x), torch.Tensor)  # inference: the main classifier only
    net.reset_classifier(3)
    net.train()
    assert all(o.shape == (4, 3) for o in net(x))


def test_googlenet_paper_5x5_branch_and_naive_module():
    from deeper.models.googlenet import Inception

    assert create_model("googlenet", large_kernel=5).blocks.inception3a.branch3[1].conv.kernel_size == (5, 5)
    naive = Inception(192, 64, 96, 128, 16, 32, 32, large_kernel=5, reduce=False)
    assert naive(torch.rand(1, 192, 8, 8)).shape == (1, 64 + 128 + 32 + 192, 8, 8)
    with pytest.raises(ConfigError, match="large_kernel"):
        create_model("googlenet", large_kernel=7)


# --- ResNet and plain nets ---------------------------------------------------------------------------


def test_cifar_resnets_have_the_papers_sizes_and_plain_twins():
    counts = {d: count_parameters(create_model(f"resnet{d}", in_chans=3)) for d in (20, 56, 110)}
    assert {d: round(c / 1e6, 2) for d, c in counts.items()} == {
        20: 0.27,
        56: 0.85,
        110: 1.73,
    }  # table 6: 0.27M 0.85M 1.7M
    for d, c in counts.items():
        plain = create_model(f"plain{d}", in_chans=3)
        assert count_parameters(plain) == c  # option-A shortcuts have no parameters
        convs = sum(isinstance(m, nn.Conv2d) for m in plain.modules())
        assert convs + 1 == d  # depth = convolutions + the affine layer
        assert all(getattr(m, "shortcut", None) is None for m in plain.modules() if hasattr(m, "conv2"))


def test_skip_connection_adds_the_input():
    from deeper.models.resnet import BasicBlock

    torch.manual_seed(0)
    block = BasicBlock(8, 8, shortcut="B").eval()
    plain = BasicBlock(8, 8, shortcut="none").eval()
    plain.load_state_dict(block.state_dict())
    x = torch.rand(2, 8, 6, 6)
    with torch.no_grad():
        residual = block.bn2(block.conv2(block.relu1(block.bn1(block.conv1(x)))))
        assert torch.allclose(block(x), F.relu(residual + x))
        assert torch.allclose(plain(x), F.relu(residual))
    down = BasicBlock(8, 16, stride=2, shortcut="A")
    assert down(x).shape == (2, 16, 3, 3) and sum(p.numel() for p in down.shortcut.parameters()) == 0
    assert isinstance(BasicBlock(8, 16, stride=2, shortcut="B").shortcut[0], nn.Conv2d)


def test_zero_init_residual_starts_blocks_as_identity():
    net = create_model("resnet20", zero_init_residual=False)
    assert net.layer1[0].bn2.weight.abs().sum() > 0
    net = create_model("resnet18", img_size=32, zero_init_residual=True)
    assert net.layer2[0].bn2.weight.abs().sum() == 0


# --- DenseNet ----------------------------------------------------------------------------------


def test_dense_blocks_concatenate_and_transitions_compress():
    net = create_model("densenet-bc-100", in_chans=3)
    feats = net.features
    x = feats.conv0(torch.rand(1, 3, 32, 32))
    assert x.shape[1] == 24  # 2k
    y = feats.denseblock1(x)
    assert y.shape[1] == 24 + 16 * 12 and torch.equal(y[:, :24], x)  # the input is kept, k per layer added
    t = feats.transition1
    assert [type(m) for m in t] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.AvgPool2d]
    assert t(y).shape == (1, (24 + 16 * 12) // 2, 16, 16)
    assert round(count_parameters(net) / 1e6, 1) == 0.8  # the paper's 0.8M


# --- ViT and LeNet -----------------------------------------------------------------------------


def test_vit_patches_and_errors():
    net = create_model("vit-tiny", num_classes=10, in_chans=1, img_size=28)
    assert net.patch_embed.kernel_size == (4, 4) and net.pos_embed.shape == (1, 50, 192)
    assert create_model("vit-tiny", img_size=224).pos_embed.shape == (1, 197, 192)
    with pytest.raises(ConfigError, match="built for 28x28"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        create_model("vit-tiny", img_size=30)


def test_lenet5_is_the_classic_size():
    net = create_model("lenet5")
    assert count_parameters(net) == 61_706
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [120, 84, 10]
    assert isinstance(net.features.act1, nn.Tanh) and isinstance(net.features.pool1, nn.AvgPool2d)
    relu = create_model("lenet5", activation="relu", pool="max")
    assert isinstance(relu.features.act1, nn.ReLU) and isinstance(relu.features.pool1, nn.MaxPool2d)
    with pytest.raises(ConfigError, match="activation"):
        create_model("lenet5", activation="swish")


def test_reset_classifier_keeps_dtype_and_init_scheme():
    net = create_model("vgg11", img_size=32).double()
    net.reset_classifier(3)
    fc = net.get_classifier()
    assert fc.weight.dtype == torch.float64 and fc.out_features == 3 and net.num_classes == 3
    assert fc.weight.std().item() < 0.02  # VGG's N(0, 0.01) for affine layers
    with pytest.raises(ConfigError):
        net.reset_classifier(0)


def test_models_command_lists_the_zoo_with_comparable_counts(capsys):
    import json

    from deeper.cli import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]}
    assert set(ZOO) <= set(rows)
    assert (rows["vgg16"]["params"], rows["vgg16"]["classes"], rows["vgg16"]["input"]) == (
        138_357_544,
        1000,
        "3x224x224",
    )
    assert (rows["resnet20"]["params"], rows["resnet20"]["classes"]) == (269_722, 10)
    assert rows["lenet5"]["params"] == 61_706


def test_cifar_resnet_width_widens_every_stage():
    wide = create_model("resnet20", num_classes=10, in_chans=1, img_size=28, width=4)
    convs = [m.out_channels for m in wide.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0] == 64 and max(convs) == 256  # 16-32-64 times 4
    # 3x3 convs hold almost all the weights: 4x the width gives nearly 16x the parameters
    ratio = count_parameters(wide) / count_parameters(create_model("resnet20", in_chans=1, img_size=28))
    assert 15 < ratio < 16
    assert wide(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="width"):
        create_model("resnet20", width=0)
