"""What the model-zoo families (LeNet ... ViT) share.

Every zoo model is ``head(forward_features(x))``: ``forward_features`` returns
the last feature map ``(N, C, H, W)`` (ViT: its tokens) and ``head`` is an
``nn.Sequential`` of pooling, flattening, dropout and linear layers whose last
module is the classifier.  That one convention gives ``get_classifier``,
``reset_classifier`` (transfer learning), the layer table and
:func:`deeper.models.convolutionalize` for free.

Small images: each family adapts its stem when the input is smaller than
:data:`SMALL_INPUT` pixels on a side (28x28 MNIST, 32x32 CIFAR); the docstring
of each family says how.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deeper.errors import ConfigError

#: inputs with a side below this many pixels get the family's small-image stem
SMALL_INPUT = 64


def pair(img_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(H, W)`` of an ``img_size`` given as one int or a pair."""
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def is_small(img_size: int | tuple[int, int]) -> bool:
    """True when the input is small enough (28x28, 32x32) to need the small-image stem."""
    h, w = pair(img_size)
    if h < 1 or w < 1:
        raise ConfigError(f"image size must be positive, got {img_size}")
    return min(h, w) < SMALL_INPUT


def check_dropout(p: float) -> float:
    if not 0 <= p < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {p}")
    return float(p)


class ZooModel(nn.Module):
    """Base class: ``forward = head(forward_features(x))``, the classifier is ``head[-1]``."""

    head: nn.Sequential
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.head[-1]

    def init_classifier(self, layer: nn.Linear) -> None:
        """How a new classifier is initialised (families override to match their scheme)."""
        layer.reset_parameters()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        if num_classes < 1:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)
        self.init_classifier(new)
        self.head[-1] = new
        self.num_classes = num_classes


def init_weights(
    module: nn.Module,
    *,
    conv: Callable[[torch.Tensor], object] | None = None,
    linear: Callable[[torch.Tensor], object] | None = None,
) -> None:
    """Initialise conv/linear weights with the given functions, zero biases, batch norm to (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and conv is not None:
            conv(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear is not None:
            linear(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def kaiming_fan_out(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
