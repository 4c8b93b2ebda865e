"""Convolutionalization (FCN, notes 004): affine layers rewritten as equivalent convolutions.

An affine layer that reads a flattened ``(C, H, W)`` feature map is the same
function as a ``C -> out`` convolution with an ``H x W`` kernel applied once (the
weights are the same numbers, reshaped: the notes' 4x4x16x10 = 2,560 either
way); the affine layers after it become 1x1 convolutions.  The rewritten
network accepts larger images: it slides the whole classifier over them with
the network's stride and returns a map of class scores (a heat map) instead of
one score vector.  On an input of the training size the map is 1x1 and equals
the original output.

Global pooling heads (ResNet, GoogLeNet, DenseNet) are handled the same way: an
adaptive pool that reduced the training-size map to 1x1 becomes an average pool
with that map's size as its kernel and stride 1, so every output position again
sees exactly one training-size window.

Supported: the models of the zoo (``forward_features`` + an ``nn.Sequential``
``head``), the chapter's ``deep-convnet`` and ``nn.Sequential`` networks with an
``nn.Flatten``; :func:`register_splitter` adds other classes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.preprocess import WidthNormalize

#: element-wise layers that work unchanged on feature maps
ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity,
)  # fmt: skip

#: model class -> function returning ``(body, head)``: ``body.forward_features(x)`` gives the map
Splitter = Callable[[nn.Module], tuple[nn.Module, nn.Sequential]]
_SPLITTERS: dict[type, Splitter] = {}


def register_splitter(cls: type) -> Callable[[Splitter], Splitter]:
    """Teach :func:`convolutionalize` where the feature extractor of ``cls`` ends and its head begins."""

    def deco(fn: Splitter) -> Splitter:
        _SPLITTERS[cls] = fn
        return fn

    return deco


class _SequentialBody(nn.Module):
    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _split(model: nn.Module) -> tuple[nn.Module, nn.Sequential]:
    """``(body, head)``: deep copies, so the original model is left as it was."""
    if any(isinstance(m, WidthNormalize) for m in model.modules()):  # any model that carries it
        raise ConfigError(  # it rescales the whole input, not each window of it
            f"a {type(model).__name__} with width_norm cannot be made fully convolutional: its width "
            "normalisation needs one digit per image, not a page of them"
        )
    for cls in type(model).__mro__:
        if cls in _SPLITTERS:
            return _SPLITTERS[cls](model)
    if hasattr(model, "forward_features") and isinstance(getattr(model, "head", None), nn.Sequential):
        body = copy.deepcopy(model)
        head = body.head
        body.head = nn.Identity()
        for name in ("aux1", "aux2"):  # GoogLeNet's auxiliary classifiers play no part in inference
            if getattr(body, name, None) is not None:
                setattr(body, name, None)
        return body, head
    if isinstance(model, nn.Sequential):
        layers = list(copy.deepcopy(model))
        at = next((i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)), None)
        if at is not None:
            while at > 0 and isinstance(layers[at - 1], nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
                at -= 1  # a pool to a fixed size belongs to the head: it must become a sliding window
            return _SequentialBody(nn.Sequential(*layers[:at])), nn.Sequential(*layers[at:])
    raise ConfigError(
        f"cannot convolutionalize a {type(model).__name__}: deeper knows where the features end for the "
        "model zoo, deep-convnet and nn.Sequential networks with an nn.Flatten (see register_splitter)"
    )


def _deep_convnet_split(model: nn.Module) -> tuple[nn.Module, nn.Sequential]:
    body = copy.deepcopy(model)
    head = nn.Sequential(nn.Flatten(1), body.fc1, nn.ReLU(), body.drop1, body.fc2, body.drop2)
    body.fc1, body.fc2 = nn.Identity(), nn.Identity()
    return body, head


def _register_builtin() -> None:
    from deeper.models.deep_convnet import DeepConvNet

    register_splitter(DeepConvNet)(_deep_convnet_split)


def _linear_as_conv(layer: nn.Linear, c: int, h: int, w: int) -> nn.Conv2d:
    if layer.in_features != c * h * w:
        raise ConfigError(f"an affine layer of {layer.in_features} inputs cannot read a {c}x{h}x{w} map")
    conv = nn.Conv2d(c, layer.out_features, (h, w), bias=layer.bias is not None)
    conv = conv.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.reshape(layer.out_features, c, h, w))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv


def _adaptive_as_pool(layer: nn.Module, c: int, h: int, w: int) -> tuple[nn.Module, tuple[int, int, int]]:
    out = layer.output_size
    oh, ow = (out, out) if isinstance(out, int) else out
    oh, ow = oh if oh is not None else h, ow if ow is not None else w
    avg = isinstance(layer, nn.AdaptiveAvgPool2d)
    if (oh, ow) == (h, w):
        return nn.Identity(), (c, h, w)
    if h % oh or w % ow:
        raise ConfigError(
            f"an adaptive pool from {h}x{w} to {oh}x{ow} has uneven windows; it has no fixed-kernel equivalent"
        )
    kernel = (h // oh, w // ow)
    stride = 1 if (oh, ow) == (1, 1) else kernel
    pool = nn.AvgPool2d(kernel, stride) if avg else nn.MaxPool2d(kernel, stride)
    return pool, (c, oh, ow)


def convert_head(head: nn.Sequential, map_shape: tuple[int, int, int]) -> nn.Sequential:
    """The convolutional equivalent of ``head`` for a ``(C, H, W)`` feature map of the training size."""
    c, h, w = map_shape
    flat_from: tuple[int, int, int] | None = None  # the map an nn.Flatten just flattened
    layers: list[nn.Module] = []
    for layer in head:
        if isinstance(layer, nn.Flatten):
            flat_from = (c, h, w)
        elif isinstance(layer, nn.Linear):
            if flat_from is not None:
                layers.append(_linear_as_conv(layer, *flat_from))
                flat_from = None
            else:
                layers.append(_linear_as_conv(layer, c, 1, 1) if (h, w) == (1, 1) else _bad(layer, (c, h, w)))
            c, h, w = layer.out_features, 1, 1
        elif isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) and flat_from is None:
            pool, (c, h, w) = _adaptive_as_pool(layer, c, h, w)
            layers.append(pool)
        elif isinstance(layer, nn.BatchNorm1d) and flat_from is None and (h, w) == (1, 1):
            bn = nn.BatchNorm2d(
                layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats
            )
            bn.load_state_dict(layer.state_dict())
            layers.append(bn.to(next(iter(layer.state_dict().values())).device))
        elif isinstance(layer, ELEMENTWISE):
            layers.append(layer)
        else:
            _bad(layer, (c, h, w))
    return nn.Sequential(*layers)


def _bad(layer: nn.Module, shape) -> nn.Module:
    raise ConfigError(f"cannot convolutionalize a {type(layer).__name__} layer (reading a {shape} map)")


class FullyConvolutional(nn.Module):
    """``body`` then the convolutional head: ``(N, C, H, W)`` images -> ``(N, classes, h, w)`` score maps."""

    def __init__(self, body: nn.Module, head: nn.Sequential, train_shape: tuple[int, int, int]):
        super().__init__()
        self.body = body
        self.head = head
        self.train_shape = tuple(train_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.forward_features(x))

    def map_size(self, height: int, width: int) -> tuple[int, int]:
        """The score map's size for an input of ``height x width`` (by running a zero image)."""
        p = next(self.parameters())
        with torch.no_grad():
            out = self(torch.zeros(1, self.train_shape[0], height, width, device=p.device, dtype=p.dtype))
        return int(out.shape[-2]), int(out.shape[-1])

    def stride(self) -> int:
        """Input pixels between neighbouring positions of the score map (the network's total stride)."""
        _, h, w = self.train_shape
        a = self.map_size(h, w)[1]
        b = self.map_size(h, w + 64)[1]
        if b == a:
            raise ConfigError("the score map does not grow with the input; is there a global pool left?")
        return round(64 / (b - a))


def convolutionalize(
    model: nn.Module, input_shape: tuple[int, int, int], *, check: bool = True, atol: float = 1e-4
) -> FullyConvolutional:
    """A fully convolutional copy of the classifier ``model`` trained on ``input_shape`` = (C, H, W) images.

    The copy returns class-score maps; on a ``input_shape`` image its 1x1 map equals
    ``model``'s output (``check=True`` verifies this on a random image, in evaluation
    mode, to ``atol``).  ``model`` itself is not modified.
    """
    if not _SPLITTERS:
        _register_builtin()
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    was_training = model.training
    model.eval()
    try:
        body, head = _split(model)
        body.eval()
        p = next(model.parameters())
        x = torch.rand(1, *input_shape, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            feats = body.forward_features(x)
        if feats.ndim != 4:
            raise ConfigError(
                f"{type(model).__name__} has no convolutional feature map (its features have shape "
                f"{tuple(feats.shape)}); convolutionalization applies to CNNs"
            )
        fcn = FullyConvolutional(body, convert_head(head, tuple(feats.shape[1:])), input_shape).eval()
        if check:
            with torch.no_grad():
                want, got = model(x), fcn(x)
            if got.shape[-2:] != (1, 1) or not torch.allclose(got.flatten(1), want, atol=atol, rtol=1e-4):
                raise ConfigError(
                    f"the convolutionalized {type(model).__name__} does not reproduce the original outputs "
                    f"(map {tuple(got.shape[-2:])}); its head is not a plain affine stack"
                )
    finally:
        model.train(was_training)
    return fcn
