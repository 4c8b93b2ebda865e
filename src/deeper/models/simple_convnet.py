"""The book's SimpleConvNet (chapter 7), the PyTorch twin of the scratch engine's.

    conv 5x5 (30 filters, no padding) - ReLU - max-pool 2 - affine(4320 -> 100) - ReLU - affine(100 -> 10)

Weights are drawn from a normal distribution of std 0.01 and biases are zero, as
in the book (``weight_init`` may be ``"he"``, ``"xavier"`` or another std).
Parameter names (``conv1``, ``fc1``, ``fc2``) and layouts are PyTorch's; the
scratch network :func:`deeper.scratch.nets.simple_convnet` uses the same ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model


class SimpleConvNet(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 28,
        filters: int = 30,
        kernel_size: int = 5,
        hidden: int = 100,
        weight_init: str | float = 0.01,
    ):
        super().__init__()
        side = (img_size - kernel_size + 1) // 2
        if side < 1:
            raise ConfigError(
                f"input of size {img_size} is too small for a {kernel_size}x{kernel_size} SimpleConvNet"
            )
        self.conv1 = nn.Conv2d(in_chans, filters, kernel_size)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.num_features = filters * side * side
        self.fc1 = nn.Linear(self.num_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.num_classes = num_classes
        self._weight_init = weight_init
        for m in (self.conv1, self.fc1, self.fc2):
            self._init(m)

    def _init(self, m: nn.Module) -> None:
        fan_in = m.weight[0].numel()
        scheme = self._weight_init
        if scheme == "he":
            std = math.sqrt(2.0 / fan_in)
        elif scheme == "xavier":
            std = math.sqrt(1.0 / fan_in)
        elif isinstance(scheme, int | float) and not isinstance(scheme, bool):
            std = float(scheme)
        else:
            raise ConfigError(f"unknown weight_init {scheme!r} (he, xavier or a float std)")
        nn.init.normal_(m.weight, 0.0, std)
        nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(torch.flatten(self.forward_features(x), 1)))
        return self.fc2(x)

    def get_classifier(self) -> nn.Linear:
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(self.fc2.in_features, num_classes)
        self._init(self.fc2)
        self.num_classes = num_classes


@register_model("simple-convnet")
def simple_convnet(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, filters: int = 30, kernel_size: int = 5,
    hidden: int = 100, weight_init: str | float = 0.01,
) -> SimpleConvNet:  # fmt: skip
    """The book's SimpleConvNet (ch. 7): conv 30x5x5 - ReLU - pool - affine 100 - ReLU - affine."""
    return SimpleConvNet(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, filters=filters,
        kernel_size=kernel_size, hidden=hidden, weight_init=weight_init,
    )  # fmt: skip
