"""LeNet-5 (LeCun et al., 1998), the ancestor of every network in the zoo.

    conv 5x5 (6) - act - pool 2 - conv 5x5 (16) - act - pool 2
    affine 400 -> 120 - act - affine 120 -> 84 - act - affine 84 -> classes

The defaults keep the paper's tanh activations and 2x2 average ("subsampling")
pooling; the paper's trainable subsampling coefficients, its sparse C3
connection table and its RBF output layer are replaced by plain layers, as
every modern re-implementation does.  61,706 parameters for 1x28x28 inputs and
10 classes.

Input sizes: LeNet-5 was designed for 32x32 images (MNIST digits padded to 32).
For inputs smaller than 32 pixels (MNIST's 28x28) the first convolution pads by
2 so the feature maps are the paper's (28 -> 14 -> 10 -> 5); 32x32 inputs use no
padding.  Larger inputs (e.g. 224x224) are averaged down to the 5x5 map the
affine layers expect by an adaptive average pool, which is a no-op at 28/32.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, pair

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(ZooModel):
    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int | tuple[int, int] = 28,
        activation: str = "tanh",
        pool: str = "avg",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
        if pool not in POOLS:
            raise ConfigError(f"unknown pool {pool!r} (choose from {', '.join(POOLS)})")
        act, pooling = ACTIVATIONS[activation], POOLS[pool]
        pad = 2 if min(pair(img_size)) < 32 else 0
        self.features = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, 6, 5, padding=pad),
                act1=act(),
                pool1=pooling(2),
                conv2=nn.Conv2d(6, 16, 5),
                act2=act(),
                pool2=pooling(2),
            )
        )
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((5, 5)),
                flatten=nn.Flatten(1),
                fc1=nn.Linear(16 * 5 * 5, 120),
                act3=act(),
                fc2=nn.Linear(120, 84),
                act4=act(),
                fc3=nn.Linear(84, num_classes),
            )
        )
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model("lenet5", default_input=(1, 28, 28))
def lenet5(
    *,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    activation: str = "tanh",
    pool: str = "avg",
) -> LeNet5:
    """LeNet-5 (1998): two 5x5 convs with average pooling, affine 120-84, tanh; padded for 28x28."""
    return LeNet5(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, activation=activation, pool=pool
    )
