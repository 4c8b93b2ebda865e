"""DenseNet (Huang et al., 2017): every layer sees the concatenation of all earlier ones.

Where ResNet *adds* a block's input to its output, a dense block
*concatenates*: layer i of a block receives ``c0 + (i-1) * k`` channels and adds
``k`` (the growth rate).  Each layer is the "BC" bottleneck (batch norm, ReLU,
1x1 convolution to 4k channels, batch norm, ReLU, 3x3 convolution to k).  Because
the channels grow, blocks are separated by *transition* blocks, as the notes
describe them: batch norm, (ReLU,) 1x1 convolution halving the channels (the
compression), 2x2 average pooling.  Variants are data (:data:`VARIANTS`):

- ``densenet121``: torchvision's ImageNet network (growth 32, blocks 6-12-24-16,
  a 7x7 / stride-2 stem with 64 filters and a max-pool): 7,978,856 parameters for
  3x224x224 and 1000 classes, torchvision's count.  Small images (side < 64,
  e.g. 28x28 or 32x32): the stem convolution becomes 3x3 / stride 1 (the max-pool
  is kept), halving the total stride from 32 to 16: a 28x28 input goes 28 -> 14 -> 7
  -> 3 -> 1 through the stem and the transitions, where the ImageNet stem would
  leave nothing after the third transition.
- ``densenet-bc-100``: the paper's small CIFAR DenseNet-BC (depth 100, growth 12,
  three blocks of 16 layers, a 3x3 stem with 2k = 24 filters and no pooling):
  0.77M parameters (the paper's 0.8M).  Built for small images; no stem change.

Initialisation as torchvision: He-normal convolutions, batch norm (1, 0), zero
affine biases.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, check_dropout, init_weights, is_small


class DenseLayer(nn.Module):
    """BN - ReLU - 1x1 conv (bn_size * k) - BN - ReLU - 3x3 conv (k): the k new channels."""

    def __init__(self, in_chans: int, growth: int, bn_size: int = 4, drop_rate: float = 0.0):
        super().__init__()
        width = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_chans)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chans, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth, 3, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        return self.drop(out) if self.drop is not None else out


class DenseBlock(nn.Module):
    """``n`` dense layers; each one's output is concatenated to its input."""

    def __init__(self, n: int, in_chans: int, growth: int, bn_size: int = 4, drop_rate: float = 0.0):
        super().__init__()
        for i in range(n):
            self.add_module(
                f"denselayer{i + 1}", DenseLayer(in_chans + i * growth, growth, bn_size, drop_rate)
            )
        self.out_chans = in_chans + n * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Sequential):
    """BN - ReLU - 1x1 conv (compression) - 2x2 average pool."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_chans),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_chans, out_chans, 1, bias=False),
                pool=nn.AvgPool2d(2, 2),
            )
        )


@dataclass(frozen=True)
class DenseNetSpec:
    growth: int
    blocks: tuple[int, ...]
    init_features: int
    stem: str  # "imagenet" (7x7/2 + max-pool) or "cifar" (3x3, no pool)
    bn_size: int = 4
    compression: float = 0.5
    default_input: tuple[int, int, int] = (3, 224, 224)


VARIANTS: dict[str, DenseNetSpec] = {
    "densenet121": DenseNetSpec(32, (6, 12, 24, 16), 64, "imagenet"),
    "densenet-bc-100": DenseNetSpec(12, (16, 16, 16), 24, "cifar", default_input=(3, 32, 32)),
}


class DenseNet(ZooModel):
    def __init__(
        self,
        spec: DenseNetSpec,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        c = spec.init_features
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if spec.stem == "imagenet":
            small = is_small(img_size)
            layers["conv0"] = (
                nn.Conv2d(in_chans, c, 3, 1, 1, bias=False)
                if small
                else nn.Conv2d(in_chans, c, 7, 2, 3, bias=False)
            )
            layers["norm0"] = nn.BatchNorm2d(c)
            layers["relu0"] = nn.ReLU(inplace=True)
            layers["pool0"] = nn.MaxPool2d(3, 2, 1)
        elif spec.stem == "cifar":
            layers["conv0"] = nn.Conv2d(in_chans, c, 3, 1, 1, bias=False)
        else:
            raise ConfigError(f"unknown DenseNet stem {spec.stem!r}")
        drop = check_dropout(drop_rate)
        for i, n in enumerate(spec.blocks, start=1):
            block = DenseBlock(n, c, spec.growth, spec.bn_size, drop)
            layers[f"denseblock{i}"] = block
            c = block.out_chans
            if i < len(spec.blocks):
                out = int(c * spec.compression)
                layers[f"transition{i}"] = Transition(c, out)
                c = out
        layers["norm5"] = nn.BatchNorm2d(c)
        layers["relu5"] = nn.ReLU(inplace=True)
        self.features = nn.Sequential(layers)
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((1, 1)), flatten=nn.Flatten(1), fc=nn.Linear(c, num_classes)
            )
        )
        self.num_classes = num_classes
        init_weights(self, conv=nn.init.kaiming_normal_)
        nn.init.zeros_(self.head.fc.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def init_classifier(self, layer: nn.Linear) -> None:
        layer.reset_parameters()
        nn.init.zeros_(layer.bias)


def _register(name: str, spec: DenseNetSpec, doc: str) -> None:
    def factory(
        *, num_classes: int = 1000 if spec.stem == "imagenet" else 10, in_chans: int = 3,
        img_size: int | tuple[int, int] = spec.default_input[1], drop_rate: float = 0.0,
    ) -> DenseNet:  # fmt: skip
        return DenseNet(
            spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate
        )

    factory.__doc__ = doc
    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    register_model(name, default_input=spec.default_input)(factory)


_register(
    "densenet121",
    VARIANTS["densenet121"],
    "DenseNet-121: growth 32, dense blocks 6-12-24-16, transitions halve the channels.",
)
_register(
    "densenet-bc-100",
    VARIANTS["densenet-bc-100"],
    "DenseNet-BC (L=100, k=12) for small images: three dense blocks of 16 bottleneck layers.",
)
