"""Vision Transformer (Dosovitskiy et al., 2020): since 2021 transformers lead, as the notes say.

The image is cut into P x P patches, each patch becomes one token (a linear
projection, written as a P x P / stride-P convolution), a learned class token
is prepended and learned position embeddings are added.  Then ``depth``
pre-norm encoder blocks: LayerNorm - multi-head self-attention - residual,
LayerNorm - MLP (GELU) - residual.  The classifier reads the class token after
a final LayerNorm.

``vit-tiny`` is the DeiT-Ti / ViT-Ti configuration (width 192, depth 12,
3 heads, MLP 768, patch 16 on 224x224): 5,717,416 parameters for 3x224x224 and
1000 classes, the same as torchvision's ``VisionTransformer`` class with those
settings (torchvision ships no tiny weights or builder).

Small images (side < 64, e.g. 28x28 or 32x32): 16-pixel patches would leave one
or four tokens, so the patch size becomes 4: a 28x28 image gives a 7x7 grid of
49 tokens (32x32: 64 tokens).  The position embeddings are built for the grid
of ``img_size``; the image side must be a multiple of the patch size.

A ViT has no convolutional feature map after its stem, so
:func:`deeper.models.convolutionalize` does not apply to it; its
``forward_features`` returns the normalised tokens ``(N, 1 + tokens, width)``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, check_dropout, is_small, pair


class Attention(nn.Module):
    """Multi-head self-attention: one linear layer makes q, k, v for all heads; softmax(qk^T/sqrt(d))v."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer encoder block."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.drop1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(dim, mlp_dim),
                act=nn.GELU(),
                drop=nn.Dropout(dropout),
                fc2=nn.Linear(mlp_dim, dim),
            )
        )
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x)))
        return x + self.drop2(self.mlp(self.norm2(x)))


class ClassToken(nn.Module):
    """Picks the class token ``x[:, 0]`` out of ``(N, tokens, width)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def _trunc_normal_002(w: torch.Tensor) -> None:
    nn.init.trunc_normal_(w, std=0.02)


class VisionTransformer(ZooModel):
    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | None = None,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_dim: int = 768,
        dropout: float = 0.0,
    ):
        super().__init__()
        h, w = pair(img_size)
        p = patch_size if patch_size is not None else (4 if is_small(img_size) else 16)
        if p < 1 or h % p or w % p:
            raise ConfigError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        self.grid = (h // p, w // p)
        self.img_size = (h, w)
        drop = check_dropout(dropout)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.patch_embed = nn.Conv2d(in_chans, dim, p, p)
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_dim, drop) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(OrderedDict(token=ClassToken(), fc=nn.Linear(dim, num_classes)))
        self.num_classes = num_classes
        _trunc_normal_002(self.cls_token)
        _trunc_normal_002(self.pos_embed)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                self.init_classifier(m)

    def init_classifier(self, layer: nn.Linear) -> None:
        _trunc_normal_002(layer.weight)
        nn.init.zeros_(layer.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ConfigError(
                f"this ViT was built for {self.img_size[0]}x{self.img_size[1]} images, got {x.shape[-2]}x{x.shape[-1]}"
            )
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, tokens, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], 1) + self.pos_embed
        return self.norm(self.blocks(self.pos_drop(x)))


@register_model("vit-tiny", default_input=(3, 224, 224))
def vit_tiny(
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    img_size: int | tuple[int, int] = 224,
    patch_size: int | None = None,
    dropout: float = 0.0,
) -> VisionTransformer:
    """ViT-Tiny: 12 pre-norm blocks of width 192, 3 heads; 16-pixel patches (4 for 28x28 / 32x32)."""
    return VisionTransformer(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, patch_size=patch_size, dropout=dropout
    )
