"""VGG (Simonyan & Zisserman, 2014): only 3x3 convolutions, stacked 1-4 deep between 2x2 max-pools.

The notes' point: two stacked 3x3 convolutions see a 5x5 window with 18 instead
of 25 weights per channel pair (three see 7x7 with 27 instead of 49).  The
variants are data (:data:`STAGES`): the number of 3x3 convolutions in each of the
five stages of widths 64-128-256-512-512, then three affine layers
(4096-4096-classes) with ReLU and dropout 0.5.  ``vggNN_bn`` puts batch norm
between each convolution and its ReLU.  For 3x224x224 and 1000 classes the
parameter counts are torchvision's exactly (vgg16: 138,357,544).

Initialisation as torchvision: He-normal (fan-out) convolutions, N(0, 0.01)
affine weights, zero biases.

Small images (side < 64, e.g. 28x28 or 32x32): five 2x2 poolings would shrink 28
pixels to nothing, so the fifth max-pool is left out (28 -> 14 -> 7 -> 3 -> 1,
a total stride of 16) and the adaptive average pool in front of the affine layers
reduces the last map to 1x1 instead of 7x7: the first affine layer takes 512
inputs instead of 512*7*7.

``VGG(widths=..., pooled=...)`` (not the registered names) narrows the stages and
sets the side of the pooled map the affine layers read; the FCN backbones of
:mod:`deeper.models.segment.fcn` are such VGGs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, check_dropout, init_weights, is_small, kaiming_fan_out

WIDTHS = (64, 128, 256, 512, 512)
#: convolutions per stage, by depth (= convolutions + 3 affine layers)
STAGES: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}


def _normal_001(w: torch.Tensor) -> None:
    nn.init.normal_(w, 0.0, 0.01)


class VGG(ZooModel):
    def __init__(
        self,
        *,
        depth: int = 16,
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        dropout: float = 0.5,
        hidden: int = 4096,
        widths: tuple[int, ...] = WIDTHS,
        pooled: int | None = None,
    ):
        super().__init__()
        small = is_small(img_size)
        if len(widths) != len(WIDTHS) or min(widths) < 1:
            raise ValueError(f"widths must be {len(WIDTHS)} positive stage widths, got {tuple(widths)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        chans = in_chans
        for stage, (n, width) in enumerate(zip(STAGES[depth], widths), start=1):
            for i in range(1, n + 1):
                layers[f"conv{stage}_{i}"] = nn.Conv2d(chans, width, 3, padding=1)
                if batch_norm:
                    layers[f"bn{stage}_{i}"] = nn.BatchNorm2d(width)
                layers[f"relu{stage}_{i}"] = nn.ReLU(inplace=True)
                chans = width
            if not (small and stage == len(WIDTHS)):
                layers[f"pool{stage}"] = nn.MaxPool2d(2, 2)
        self.features = nn.Sequential(layers)
        if pooled is None:
            pooled = 1 if small else 7
        p = check_dropout(dropout)
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((pooled, pooled)),
                flatten=nn.Flatten(1),
                fc6=nn.Linear(chans * pooled * pooled, hidden),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(p),
                fc7=nn.Linear(hidden, hidden),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(p),
                fc8=nn.Linear(hidden, num_classes),
            )
        )
        self.num_classes = num_classes
        init_weights(self, conv=kaiming_fan_out, linear=_normal_001)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def init_classifier(self, layer: nn.Linear) -> None:
        init_weights(layer, linear=_normal_001)


def _vgg(depth: int, batch_norm: bool, **kwargs) -> VGG:
    return VGG(depth=depth, batch_norm=batch_norm, **kwargs)


def _register(depth: int, batch_norm: bool) -> None:
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"

    def factory(
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        dropout: float = 0.5,
    ) -> VGG:
        return _vgg(
            depth, batch_norm, num_classes=num_classes, in_chans=in_chans, img_size=img_size, dropout=dropout
        )

    convs = sum(STAGES[depth])
    factory.__doc__ = (
        f"VGG-{depth}: {convs} 3x3 convs ({'-'.join(map(str, STAGES[depth]))} per stage)"
        f"{' with batch norm' if batch_norm else ''}, affine 4096-4096."
    )
    factory.__name__ = factory.__qualname__ = name
    register_model(name, default_input=(3, 224, 224))(factory)


for _depth in STAGES:
    for _bn in (False, True):
        _register(_depth, _bn)
