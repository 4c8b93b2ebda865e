"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012), the ILSVRC 2012 winner of the notes.

Five convolutions and three affine layers with what made it work: ReLU,
local response normalisation (LRN) after the first two convolutions,
overlapping 3x3 / stride 2 max-pooling, and dropout 0.5 before the first two
affine layers.  Two configurations, as data in :data:`CONFIGS`:

- ``alexnet``: the channel widths of torchvision's ``alexnet`` (64-192-384-256-256,
  from Krizhevsky's 2014 "one weird trick" single-GPU version): 61,100,840
  parameters for 3x224x224 and 1000 classes, exactly torchvision's count.  It adds
  the paper's LRN, which torchvision drops; LRN has no parameters, so the count
  is unchanged, and ``lrn=False`` gives torchvision's network layer for layer.
- ``alexnet-2group``: the 2012 paper's network split over two GPUs, as the notes
  draw it: widths 96-256-384-384-256, and conv2, conv4 and conv5 in two groups
  (each half only sees the maps of its own GPU; conv3 and the affine layers see
  both).  60,965,224 parameters: the groups halve those three layers' weights.

LRN uses the paper's constants k=2, n=5, alpha=1e-4, beta=0.75.  PyTorch's
``LocalResponseNorm`` divides ``alpha`` by ``n``, so it is built with
``alpha = 5 * 1e-4``.  The paper's 224x224 input does not tile with an 11x11 /
stride 4 filter ((224 + 2*2 - 11) / 4 + 1 = 55.25: the famous 224-vs-227 slip);
like torchvision we pad by 2 and let the last row and column fall away
(``deeper summary alexnet`` flags it).

Small images (side < 64, e.g. 28x28 or 32x32): the 11x11 / stride-4 first
convolution would leave nothing after three poolings, so it becomes a 5x5 /
stride-1 convolution (padding 2) with the same number of filters; the rest is
unchanged (28 -> 13 -> 6 -> 2 after the three overlapping pools).  The adaptive
average pool in front of the affine layers then yields 2x2 instead of 6x6 maps,
so the first affine layer takes 256*2*2 inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, check_dropout, is_small


@dataclass(frozen=True)
class ConvSpec:
    out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False  # local response normalisation after the ReLU
    pool: bool = False  # overlapping 3x3 / stride-2 max-pool at the end


CONFIGS: dict[str, tuple[ConvSpec, ...]] = {
    "torchvision": (
        ConvSpec(64, 11, 4, 2, lrn=True, pool=True),
        ConvSpec(192, 5, 1, 2, lrn=True, pool=True),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(256, 3, 1, 1),
        ConvSpec(256, 3, 1, 1, pool=True),
    ),
    "2group": (
        ConvSpec(96, 11, 4, 2, lrn=True, pool=True),
        ConvSpec(256, 5, 1, 2, groups=2, lrn=True, pool=True),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(384, 3, 1, 1, groups=2),
        ConvSpec(256, 3, 1, 1, groups=2, pool=True),
    ),
}

#: the paper's LRN constants, with alpha scaled for PyTorch's alpha / n convention
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def local_response_norm() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_SIZE * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


class AlexNet(ZooModel):
    def __init__(
        self,
        *,
        config: str = "torchvision",
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        lrn: bool = True,
        dropout: float = 0.5,
        hidden: int = 4096,
    ):
        super().__init__()
        specs = list(CONFIGS[config])
        small = is_small(img_size)
        if small:  # 5x5 / stride 1 stem instead of 11x11 / stride 4
            specs[0] = ConvSpec(specs[0].out, 5, 1, 2, lrn=specs[0].lrn, pool=True)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        chans = in_chans
        for i, s in enumerate(specs, start=1):
            layers[f"conv{i}"] = nn.Conv2d(chans, s.out, s.kernel, s.stride, s.padding, groups=s.groups)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            if s.lrn and lrn:
                layers[f"lrn{i}"] = local_response_norm()
            if s.pool:
                layers[f"pool{i}"] = nn.MaxPool2d(3, 2)
            chans = s.out
        self.features = nn.Sequential(layers)
        pooled = 2 if small else 6
        p = check_dropout(dropout)
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((pooled, pooled)),
                flatten=nn.Flatten(1),
                drop6=nn.Dropout(p),
                fc6=nn.Linear(chans * pooled * pooled, hidden),
                relu6=nn.ReLU(inplace=True),
                drop7=nn.Dropout(p),
                fc7=nn.Linear(hidden, hidden),
                relu7=nn.ReLU(inplace=True),
                fc8=nn.Linear(hidden, num_classes),
            )
        )
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _register(name: str, config: str, doc: str) -> None:
    def factory(
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        lrn: bool = True,
        dropout: float = 0.5,
    ) -> AlexNet:
        return AlexNet(
            config=config, num_classes=num_classes, in_chans=in_chans, img_size=img_size, lrn=lrn,
            dropout=dropout,
        )  # fmt: skip

    factory.__doc__ = doc
    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    register_model(name, default_input=(3, 224, 224))(factory)


_register(
    "alexnet", "torchvision",
    "AlexNet (2012) with torchvision's widths plus the paper's LRN: ReLU, overlapping pools, dropout.",
)  # fmt: skip
_register(
    "alexnet-2group", "2group",
    "The 2012 paper's two-GPU AlexNet: 96-256-384-384-256, conv2/4/5 in two groups, LRN.",
)  # fmt: skip
