"""Plain stacks of unpadded convolutions with no pooling: M3, M5 and M7.

An, Lee, Park, Yang & So, "An Ensemble of Simple Convolutional Neural Network
Models for MNIST Digit Recognition" (2020) reach 99.7% and more with single
networks this simple, trained long with rotations and shifts:

    M3: ten 3x3 convolutions, 32, 48, 64, ... 176 channels   28 -> 26 -> ... -> 8
    M5: five 5x5 convolutions, 32, 64, 96, 128, 160 channels  28 -> 24 -> ... -> 8
    M7: four 7x7 convolutions, 48, 96, 144, 192 channels      28 -> 22 -> 16 -> 10 -> 4

Each convolution has no bias and no padding and is followed by batch norm and
ReLU.  The map shrinks only because the convolutions are unpadded (``k - 1``
pixels a layer); the last map is flattened into one linear classifier, so every
position keeps its own weights, unlike a global average pool.  The paper also
puts a batch norm on the ten logits; here the classifier is a plain linear
layer with a bias (the zoo's ``head[-1]`` convention).  At inference that batch
norm is a per-class scale and shift, which the linear layer's weights and bias
can hold exactly; only the training differs.

The three differ in the size of their receptive fields at each depth, which is
why the paper ensembles them.  ``width_norm=W`` puts MCDNN's width
normalisation in front, as for DeepConvNet and the CIFAR ResNets.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deeper.models.preprocess import WidthNormalize
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, init_weights, kaiming_fan_out, pair

#: kernel size -> output channels of each convolution (the paper's M3, M5, M7)
LAYOUTS: dict[int, tuple[int, ...]] = {
    3: tuple(range(32, 177, 16)),
    5: (32, 64, 96, 128, 160),
    7: (48, 96, 144, 192),
}


class NoPoolNet(ZooModel):
    def __init__(
        self,
        *,
        kernel_size: int,
        channels: tuple[int, ...],
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int | tuple[int, int] = 28,
        width_norm: float = 0.0,
    ):
        super().__init__()
        h, w = pair(img_size)
        shrink = len(channels) * (kernel_size - 1)
        if min(h, w) <= shrink:
            raise ValueError(
                f"input of {h}x{w} pixels is too small: {len(channels)} unpadded {kernel_size}x{kernel_size} "
                f"convolutions take {shrink} pixels off each side's length"
            )
        parts: OrderedDict[str, nn.Module] = OrderedDict()
        if width_norm:  # parameter-free, so the other layers keep their names in the weights
            parts["width_norm"] = WidthNormalize(width_norm)
        c = in_chans
        for i, out in enumerate(channels, start=1):
            parts[f"conv{i}"] = nn.Conv2d(c, out, kernel_size, bias=False)
            parts[f"bn{i}"] = nn.BatchNorm2d(out)
            parts[f"relu{i}"] = nn.ReLU(inplace=True)
            c = out
        self.features = nn.Sequential(parts)
        self.num_features = c * (h - shrink) * (w - shrink)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(self.num_features, num_classes))
        self.num_classes = num_classes
        init_weights(self, conv=kaiming_fan_out)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _register(kernel_size: int) -> None:
    channels = LAYOUTS[kernel_size]
    shrink = len(channels) * (kernel_size - 1)

    def factory(
        *, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, width_norm: float = 0.0
    ) -> NoPoolNet:
        return NoPoolNet(
            kernel_size=kernel_size,
            channels=channels,
            num_classes=num_classes,
            in_chans=in_chans,
            img_size=img_size,
            width_norm=width_norm,
        )

    factory.__doc__ = (
        f"M{kernel_size} (An et al. 2020): {len(channels)} unpadded {kernel_size}x{kernel_size} convolutions "
        f"({'-'.join(map(str, channels))} channels) with batch norm and ReLU, no pooling (28 -> {28 - shrink} "
        f"pixels), one linear classifier; ``width_norm=W`` stretches each digit's ink to W pixels first."
    )
    register_model(f"nopool-m{kernel_size}")(factory)


for _k in LAYOUTS:
    _register(_k)
del _k
