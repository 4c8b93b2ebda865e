"""A binarized DeepConvNet: 1-bit weights and 1-bit activations (section 8.3.3 of the notes, taken to 1 bit).

The layout is the chapter's DeepConvNet (six 3x3 convs 16-16-32-32-64-64, two
affine layers), with every weight replaced by its sign times one scale per
output channel (the mean absolute weight, as in XNOR-Net) and every activation
after the first layer replaced by its sign.  Batch normalisation before each
sign keeps the pre-activations centred, so the signs carry information.

Signs have no useful gradient, so training uses the *straight-through
estimator*: the backward pass treats ``sign(x)`` as ``x`` where ``|x| <= 1``
and as a constant elsewhere (the gradient of ``hardtanh``).  The float weights
are kept for training (they accumulate small updates the signs cannot); what
ships is one bit per weight plus the per-channel scales
(:func:`deeper.accel.quantize.save_binary`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.deep_convnet import CONVS, conv_output_size
from deeper.models.registry import register_model


class SignSTE(torch.autograd.Function):
    """``sign`` forward (with sign(0) = +1); the gradient of ``hardtanh`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


def binary_weight(w: torch.Tensor) -> torch.Tensor:
    """``sign(w)`` times the mean ``|w|`` of each output channel (gradient straight through to ``w``)."""
    scale = w.detach().abs().flatten(1).mean(1).view(-1, *([1] * (w.ndim - 1)))
    return binarize(w) * scale


class BinaryConv2d(nn.Conv2d):
    """A convolution whose weights are binarized (sign x per-channel scale) in every forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, binary_weight(self.weight), self.bias)


class BinaryLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, binary_weight(self.weight), self.bias)


class BinaryConvNet(nn.Module):
    """DeepConvNet with binary weights everywhere and binary activations after the first layer."""

    def __init__(self, *, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, hidden: int = 256):
        super().__init__()
        h = w = img_size
        chans = in_chans
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, (out, pad) in enumerate(CONVS, start=1):
            self.convs.append(BinaryConv2d(chans, out, 3, padding=pad, bias=False))
            self.norms.append(nn.BatchNorm2d(out))
            chans = out
            h, w = conv_output_size(h, 3, 1, pad), conv_output_size(w, 3, 1, pad)
            if i % 2 == 0:
                h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"input of size {img_size} is too small for BinaryConvNet")
        self.pool = nn.MaxPool2d(2)
        self.num_features = chans * h * w
        self.fc1 = BinaryLinear(self.num_features, hidden, bias=False)
        self.norm_fc1 = nn.BatchNorm1d(hidden)
        self.fc2 = BinaryLinear(hidden, num_classes, bias=False)
        self.norm_out = nn.BatchNorm1d(num_classes)  # scales the +-sum logits to a useful range
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms), start=1):
            x = norm(conv(x))
            if i % 2 == 0:
                x = self.pool(x)  # pooling before the sign: max of signs would saturate at +1
            x = binarize(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = binarize(self.norm_fc1(self.fc1(torch.flatten(self.forward_features(x), 1))))
        return self.norm_out(self.fc2(x))

    def get_classifier(self) -> nn.Module:
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = BinaryLinear(self.fc2.in_features, num_classes, bias=False)
        self.norm_out = nn.BatchNorm1d(num_classes)
        self.num_classes = num_classes


@register_model("binary-convnet")
def binary_convnet(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, hidden: int = 256
) -> BinaryConvNet:
    """DeepConvNet binarized: 1-bit weights and activations, trained with a straight-through estimator."""
    return BinaryConvNet(num_classes=num_classes, in_chans=in_chans, img_size=img_size, hidden=hidden)
