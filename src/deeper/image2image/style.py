"""Content and style losses (Gatys, Ecker & Bethge 2016) over a feature network, and the networks used.

- The **Gram matrix** of a layer's activations ``F`` (C x HW) is ``F F^T / (C H W)``: which
  channels fire together, wherever they fire; a style is the Gram matrices of several layers.
- Losses are **relative**, so every layer weighs the same whatever its scale:
  style ``mean_l |G_l(x) - G_l(s)|^2 / |G_l(s)|^2``, content ``|F(x) - F(c)|^2 / |F(c)|^2``.
  An image has zero style and content loss against itself.
- The **feature network** is ``vgg-features`` (:mod:`deeper.models.image2image.style`) with
  random weights drawn from a seed, or trained here (a weights file of
  ``deeper train --data photo-patches --model vgg-features``).  A second network, the
  **referee** (another seed, or the other kind), measures the same losses on images that
  were not optimised against it.
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.errors import ConfigError

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu3_1"


def gram(f: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) activations -> (N, C, C) Gram matrices ``F F^T / (C H W)``."""
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def feature_net(spec: str, *, seed: int = 0, width: int = 16) -> nn.Module:
    """``random`` (a random ``vgg-features`` from ``seed``) or a weights file of a trained ``vgg-features``;
    frozen and in eval mode."""
    from deeper.models.image2image.style import VGGFeatures, random_features

    if spec == "random":
        return random_features(seed=seed, width=width)
    from deeper.models.weights import model_from_weights, weights_file

    net, meta = model_from_weights(weights_file(spec))
    if not isinstance(net, VGGFeatures):
        raise ConfigError(f"{spec}: holds a {meta.get('model')!r} network, not vgg-features")
    return net.eval().requires_grad_(False)


def describe_features(spec: str, seed: int, width: int) -> str:
    return (
        f"random vgg-features (width {width}, seed {seed})"
        if spec == "random"
        else f"vgg-features from {spec}"
    )


class StyleLoss(nn.Module):
    """Content and style losses of images against fixed targets, measured with one feature network."""

    def __init__(self, net: nn.Module, style: torch.Tensor, *, style_layers=STYLE_LAYERS,
                 content_layer: str = CONTENT_LAYER):  # fmt: skip
        super().__init__()
        self.net, self.style_layers, self.content_layer = net, tuple(style_layers), content_layer
        with torch.no_grad():
            feats = net.features(style, self.style_layers)
            self.targets = [gram(feats[name]) for name in self.style_layers]

    def style(self, x: torch.Tensor, feats: dict | None = None) -> torch.Tensor:
        """Relative style loss of each image of ``x`` (N,)."""
        feats = feats if feats is not None else self.net.features(x, self.style_layers)
        out = 0
        for name, target in zip(self.style_layers, self.targets):
            g = gram(feats[name])
            out = out + (g - target).square().sum((1, 2)) / target.square().sum((1, 2))
        return out / len(self.style_layers)

    def content_features(self, content: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net.features(content, (self.content_layer,))[self.content_layer]

    def __call__(self, x: torch.Tensor, content_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content loss, style loss)`` of each image of ``x`` (N,) against content features of the same batch."""
        layers = tuple(dict.fromkeys((*self.style_layers, self.content_layer)))
        feats = self.net.features(x, layers)
        f = feats[self.content_layer]
        content = (f - content_feats).square().sum((1, 2, 3)) / content_feats.square().sum((1, 2, 3)).clamp(
            min=1e-12
        )
        return content, self.style(x, feats)
