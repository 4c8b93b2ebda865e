"""The book's multi-layer network (``MultiLayerNetExtend`` of chapter 6).

Affine layers of the given hidden sizes, each followed by optional batch norm,
the activation and optional dropout, then a final affine layer.  The weight
init follows the book: ``"he"`` (std sqrt(2/fan_in)) for ReLU, ``"xavier"``
(std sqrt(1/fan_in)) for sigmoid/tanh, or a fixed float std.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MultiLayerNet(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int = 28,
        hidden_sizes: tuple[int, ...] = (100, 100, 100, 100, 100),
        activation: str = "relu",
        weight_init: str | float = "auto",
        batchnorm: bool = False,
        dropout: float = 0.0,
        norm: str | None = None,
    ):
        super().__init__()
        from deeper.models.deep_convnet import norm_layer

        if batchnorm and norm in (None, "none"):
            norm = "batch"
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
        sizes = [in_chans * img_size * img_size, *hidden_sizes]
        self.hidden = nn.ModuleList()
        for i in range(len(hidden_sizes)):
            block = nn.Sequential()
            block.add_module("fc", nn.Linear(sizes[i], sizes[i + 1]))
            if (layer := norm_layer(norm, sizes[i + 1], spatial=False)) is not None:
                block.add_module("bn" if norm == "batch" else "norm", layer)
            block.add_module("act", ACTIVATIONS[activation]())
            if dropout > 0:
                block.add_module("drop", nn.Dropout(dropout))
            self.hidden.append(block)
        self.head = nn.Linear(sizes[-1], num_classes)
        self.num_classes = num_classes
        if weight_init == "auto":
            weight_init = "he" if activation == "relu" else "xavier"
        self._init(weight_init)

    def _init(self, scheme: str | float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                fan_in = m.weight.shape[1]
                if scheme == "he":
                    std = math.sqrt(2.0 / fan_in)
                elif scheme == "xavier":
                    std = math.sqrt(1.0 / fan_in)
                elif isinstance(scheme, int | float):
                    std = float(scheme)
                else:
                    raise ConfigError(f"unknown weight_init {scheme!r} (he, xavier, auto or a float std)")
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for block in self.hidden:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes)
        self.num_classes = num_classes


@register_model("mlp")
def mlp(
    *,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int = 28,
    hidden_sizes: tuple[int, ...] = (100, 100, 100, 100, 100),
    activation: str = "relu",
    weight_init: str | float = "auto",
    batchnorm: bool = False,
    dropout: float = 0.0,
    norm: str | None = None,
) -> MultiLayerNet:
    """The book's multi-layer net: 5 hidden affine layers of 100, ReLU, He init (BN/dropout optional)."""
    return MultiLayerNet(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, hidden_sizes=tuple(hidden_sizes),
        activation=activation, weight_init=weight_init, batchnorm=batchnorm, dropout=dropout, norm=norm,
    )  # fmt: skip
