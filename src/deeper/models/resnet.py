"""ResNet (He et al., 2015) and its plain twins: the skip connection of the notes.

A residual block computes ``relu(F(x) + shortcut(x))``: the identity path lets
the gradient flow to early layers unchanged, which is what lets 150+ layers
train.  Blocks (:class:`BasicBlock`: two 3x3 convolutions; :class:`Bottleneck`:
1x1 reduce, 3x3, 1x1 expand x4) follow the notes' order: convolution, batch
norm, then the sum, then the ReLU.  Shortcuts are the identity when the shape is
kept, otherwise one of the paper's options:

- ``"B"``: projection (1x1 convolution with the stride, then batch norm), for
  the ImageNet networks, as torchvision;
- ``"A"``: identity with stride-2 subsampling and zero-padded extra channels
  (no parameters), the paper's choice for its CIFAR networks;
- ``"none"``: no shortcut at all: the *plain* network of the same depth,
  for the notes' degradation experiment (deeper plain nets train worse).

Variants are data (:data:`IMAGENET`, :data:`CIFAR_DEPTHS`):

- ``resnet18/34/50/101/152``: the ImageNet networks (stem 7x7 / stride 2 + 3x3
  max-pool, four stages of widths 64-128-256-512).  Parameter counts for
  3x224x224 and 1000 classes are torchvision's (resnet50: 25,557,032).
  Small images (side < 64, e.g. 28x28 or 32x32): the stem convolution becomes
  3x3 / stride 1 (the max-pool is kept), halving the total stride from 32 to 16:
  a 28x28 input ends in a 2x2 map instead of a single pixel.
- ``resnet20/56/110`` and ``plain20/56/110``: the paper's CIFAR networks
  (section 4.2): a 3x3 stem with 16 filters, three stages of n blocks with
  16-32-64 filters (depth 6n + 2), global average pooling and one affine layer;
  option-A shortcuts, so resnet and plain nets have the same parameters
  (0.27M, 0.85M, 1.7M as in the paper's table 6).  Built for small images
  already: no stem change (larger inputs simply give larger maps).
  ``width_norm=W`` puts MCDNN's width normalisation (see
  :mod:`deeper.models.preprocess`) in front of the stem, as for DeepConvNet.

Initialisation: He-normal (fan-out) convolutions, batch norm (1, 0);
``zero_init_residual=True`` zeroes the last batch norm of every residual branch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.models.preprocess import WidthNormalize
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, init_weights, is_small, kaiming_fan_out

SHORTCUTS = ("A", "B", "none")


class PadShortcut(nn.Module):
    """Option A: identity, subsampled by ``stride`` and zero-padded to ``out_chans`` channels."""

    def __init__(self, in_chans: int, out_chans: int, stride: int):
        super().__init__()
        self.extra = out_chans - in_chans
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def make_shortcut(kind: str, in_chans: int, out_chans: int, stride: int) -> nn.Module | None:
    """The shortcut module, ``nn.Identity`` when the shape is kept, ``None`` for plain networks."""
    if kind == "none":
        return None
    if stride == 1 and in_chans == out_chans:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_chans, out_chans, stride)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_chans, out_chans, 1, stride, bias=False),
            bn=nn.BatchNorm2d(out_chans),
        )
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = make_shortcut(shortcut, in_chans, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int = 1, shortcut: str = "B"):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chans, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on the 3x3 (torchvision)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = make_shortcut(shortcut, in_chans, out, stride)
        self.relu = nn.ReLU(inplace=True)

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
#: ImageNet networks: depth -> (block, blocks per stage)
IMAGENET: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
#: CIFAR networks of the paper: depth 6n + 2
CIFAR_DEPTHS = (20, 56, 110)


class ResNet(ZooModel):
    def __init__(
        self,
        *,
        block: str = "basic",
        layers: tuple[int, ...] = (2, 2, 2, 2),
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: str = "imagenet",
        shortcut: str = "B",
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        zero_init_residual: bool = False,
        width_norm: float = 0.0,
    ):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ConfigError(f"unknown shortcut {shortcut!r} (choose from {', '.join(SHORTCUTS)})")
        if block not in BLOCKS or len(layers) != len(widths):
            raise ConfigError(f"bad ResNet layout: block {block!r}, layers {layers}, widths {widths}")
        block_cls = BLOCKS[block]
        chans = widths[0]
        if stem == "imagenet":
            small = is_small(img_size)
            conv = (
                nn.Conv2d(in_chans, chans, 3, 1, 1, bias=False)
                if small
                else nn.Conv2d(in_chans, chans, 7, 2, 3, bias=False)
            )
            parts = OrderedDict(
                conv1=conv, bn1=nn.BatchNorm2d(chans), relu=nn.ReLU(inplace=True), pool=nn.MaxPool2d(3, 2, 1)
            )
        elif stem == "cifar":
            parts = OrderedDict(
                conv1=nn.Conv2d(in_chans, chans, 3, 1, 1, bias=False),
                bn1=nn.BatchNorm2d(chans),
                relu=nn.ReLU(inplace=True),
            )
        else:
            raise ConfigError(f"unknown stem {stem!r} (imagenet or cifar)")
        if width_norm:  # parameter-free, so the other layers keep their names in the weights
            parts = OrderedDict([("width_norm", WidthNormalize(width_norm)), *parts.items()])
        self.stem = nn.Sequential(parts)
        for i, (n, width) in enumerate(zip(layers, widths), start=1):
            blocks = []
            for j in range(n):
                stride = 2 if i > 1 and j == 0 else 1
                blocks.append(block_cls(chans, width, stride, shortcut))
                chans = width * block_cls.expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((1, 1)), flatten=nn.Flatten(1), fc=nn.Linear(chans, num_classes)
            )
        )
        self.num_classes = num_classes
        init_weights(self, conv=kaiming_fan_out)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck) and m.shortcut is not None:
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


def _register_imagenet(depth: int) -> None:
    block, layers = IMAGENET[depth]

    def factory(
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        shortcut: str = "B",
        zero_init_residual: bool = False,
    ) -> ResNet:
        return ResNet(
            block=block, layers=layers, stem="imagenet", shortcut=shortcut, num_classes=num_classes,
            in_chans=in_chans, img_size=img_size, zero_init_residual=zero_init_residual,
        )  # fmt: skip

    factory.__doc__ = (
        f"ResNet-{depth} (ImageNet): {block} blocks {'-'.join(map(str, layers))}, projection shortcuts."
    )
    factory.__name__ = factory.__qualname__ = f"resnet{depth}"
    register_model(f"resnet{depth}", default_input=(3, 224, 224))(factory)


def _register_cifar(depth: int, residual: bool) -> None:
    n = (depth - 2) // 6
    name = f"{'resnet' if residual else 'plain'}{depth}"

    def factory(
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 32,
        shortcut: str = "A",
        zero_init_residual: bool = False,
        width: int = 1,
        width_norm: float = 0.0,
    ) -> ResNet:
        if width < 1:
            raise ConfigError(f"width must be a positive integer (a multiplier of 16-32-64), got {width}")
        return ResNet(
            block="basic", layers=(n, n, n), widths=(16 * width, 32 * width, 64 * width), stem="cifar",
            shortcut=shortcut if residual else "none", num_classes=num_classes, in_chans=in_chans,
            img_size=img_size, zero_init_residual=zero_init_residual, width_norm=width_norm,
        )  # fmt: skip

    what = "with option-A skip connections" if residual else "without skip connections (plain)"
    factory.__doc__ = f"CIFAR {'ResNet' if residual else 'plain net'}-{depth}: 3 stages of {n} basic blocks (16-32-64), {what}; ``width=k`` widens them k times (a wide ResNet); ``width_norm=W`` stretches each digit's ink to W pixels first."
    factory.__name__ = factory.__qualname__ = name
    register_model(name, default_input=(3, 32, 32))(factory)


for _d in IMAGENET:
    _register_imagenet(_d)
for _d in CIFAR_DEPTHS:
    _register_cifar(_d, residual=True)
for _d in CIFAR_DEPTHS:
    _register_cifar(_d, residual=False)
