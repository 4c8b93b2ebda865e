"""The chapter's DeepConvNet (figure 8-1 of "Deep Learning from Scratch").

    conv3x3(16, pad 1) - ReLU - conv3x3(16, pad 1) - ReLU - maxpool 2
    conv3x3(32, pad 1) - ReLU - conv3x3(32, pad 2) - ReLU - maxpool 2
    conv3x3(64, pad 1) - ReLU - conv3x3(64, pad 1) - ReLU - maxpool 2
    affine(1024 -> 50) - ReLU - dropout 0.5 - affine(50 -> 10) - dropout 0.5

He initialisation (normal, std sqrt(2 / fan_in)), zero biases: 123,552 parameters
for 1x28x28 inputs.  Options (the defaults are exactly the book's network):
``dropout`` (rate of both dropouts), ``norm`` (a normalisation layer after each
convolution, before its ReLU: ``batch``, ``layer``, ``instance`` or ``group``;
see :func:`norm_layer`), ``width`` (a multiplier of the channel counts) and
``width_norm`` (stretch each digit's ink to this many pixels wide before the
first convolution, MCDNN's input normalisation; see
:class:`~deeper.models.preprocess.WidthNormalize`) and ``pools`` (how many of the
three max-pools are kept, the first ones: fewer leave a finer feature map, as an
encoder of where things are may want).  The second dropout acts on the logits, as in the book.
Parameter names (``conv1`` ... ``conv6``, ``fc1``, ``fc2``) and layouts are
PyTorch's; the book's ``W1``...``b8`` map onto them (see :mod:`deeper.models.book`).
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.models.preprocess import WidthNormalize
from deeper.models.registry import register_model

CONVS = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))  # (out channels, padding)


def he_init_(module: nn.Module) -> None:
    """He (Kaiming) normal init for conv/linear weights, zero biases, as the book does."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


NORMS = ("batch", "layer", "instance", "group")


def norm_layer(kind: str | None, channels: int, *, spatial: bool = True) -> nn.Module | None:
    """The normalisation layer ``kind`` for ``channels`` features (``None``/``"none"``: no layer).

    ``batch`` normalises each channel over the batch (and positions); the others over
    one example only, so they behave the same in training and evaluation: ``layer``
    over all channels and positions (GroupNorm with one group), ``instance`` over
    each channel's positions, ``group`` over groups of 8 channels (Wu & He 2018).
    ``spatial=False`` is for flat (N, C) features, where instance norm is undefined.
    """
    from deeper.errors import ConfigError

    if kind in (None, "none"):
        return None
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if spatial else nn.LayerNorm(channels)
    if kind == "instance" and spatial:
        return nn.GroupNorm(channels, channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    choices = NORMS if spatial else tuple(n for n in NORMS if n != "instance")
    raise ConfigError(
        f"unknown normalisation {kind!r} for this model (choose from none, {', '.join(choices)})"
    )


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class DeepConvNet(nn.Module):
    """The book's 8-layer network; ``img_size`` only changes the affine input width."""

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int | tuple[int, int] = 28,
        hidden: int = 50,
        dropout: float = 0.5,
        norm: str | None = None,
        width: float = 1.0,
        width_norm: float = 0.0,
        pools: int = 3,
    ):
        super().__init__()
        if not 0 <= pools <= 3:
            raise ValueError(f"DeepConvNet has three max-pools: pools must be 0-3, got {pools}")
        self.pools = pools
        self.width_norm = WidthNormalize(width_norm) if width_norm else None
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        chans = in_chans
        for i, (out, pad) in enumerate(CONVS, start=1):
            out = max(1, round(out * width))
            self.add_module(f"conv{i}", nn.Conv2d(chans, out, 3, padding=pad))
            if (layer := norm_layer(norm, out)) is not None:
                self.add_module(f"norm{i}", layer)
            chans = out
            h, w = conv_output_size(h, 3, 1, pad), conv_output_size(w, 3, 1, pad)
            if i % 2 == 0 and i // 2 <= pools:
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input of size {img_size} is too small for DeepConvNet")
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.num_features = chans * h * w
        self.fc1 = nn.Linear(self.num_features, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.drop2 = nn.Dropout(dropout)
        self.num_classes = num_classes
        he_init_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.width_norm is not None:
            x = self.width_norm(x)
        for i in range(1, 7):
            x = getattr(self, f"conv{i}")(x)
            if (norm := getattr(self, f"norm{i}", None)) is not None:
                x = norm(x)
            x = self.relu(x)
            if i % 2 == 0 and i // 2 <= self.pools:
                x = self.pool(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.relu(self.fc1(torch.flatten(x, 1))))
        return self.drop2(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(self.fc2.in_features, num_classes)
        he_init_(self.fc2)
        self.num_classes = num_classes


@register_model("deep-convnet")
def deep_convnet(
    *,
    num_classes: int = 10,
    in_chans: int = 1,
    img_size: int = 28,
    hidden: int = 50,
    dropout: float = 0.5,
    norm: str | None = None,
    width: float = 1.0,
    width_norm: float = 0.0,
    pools: int = 3,
) -> DeepConvNet:
    """The chapter's DeepConvNet: six 3x3 convs (16-16-32-32-64-64), He init, ReLU, dropout."""
    return DeepConvNet(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, hidden=hidden, dropout=dropout,
        norm=norm, width=width, width_norm=width_norm, pools=pools,
    )  # fmt: skip
