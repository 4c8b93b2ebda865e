"""A small U-Net that predicts the noise of a diffusion model (Ho, Jain & Abbeel, 2020), with a time embedding.

As in the DDPM paper, scaled down: residual blocks (group norm, SiLU, 3x3 convolutions,
dropout) at every level, the time step as a sinusoidal embedding through a two-layer MLP
added to every block, self-attention at the coarsest level, strided 3x3 convolutions down
and nearest-neighbour upsampling followed by a 3x3 convolution up, skips concatenated.
``mults`` gives each level's channels as multiples of ``width``: (1, 2, 2) on 28x28 works
at 28, 14 and 7 pixels.

Conditioning adds an embedding to the time embedding: a class (``num_classes`` labels and
one more, the "no label" of classifier-free guidance, Ho & Salimans 2021) or a caption
(``vocab`` > 0: token embeddings read by a GRU in both directions, its last states; token
0 is padding and an all-padding caption is the unconditional one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The Transformer's sinusoids of the (integer) time steps ``t`` (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], 1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(c), c)
        self.attn = nn.MultiheadAttention(c, heads if c % heads == 0 else 1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class CaptionEncoder(nn.Module):
    """Token ids (N, L) (0: padding) -> one vector (N, dim): a bidirectional GRU's last states."""

    def __init__(self, vocab: int, dim: int, width: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.gru = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * width, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(tokens), lengths, batch_first=True, enforce_sorted=False
        )
        _, h = self.gru(packed)  # (2, N, width)
        v = self.out(torch.cat([h[0], h[1]], 1))
        return v * (tokens != 0).any(1, keepdim=True)  # an empty caption is "no caption": zero


class DiffusionUNet(nn.Module):
    """``eps(x_t, t [, labels | tokens])``: the noise in ``x_t`` at step ``t``, the input's shape."""

    def __init__(self, *, in_chans: int = 1, img_size: int = 28, width: int = 32, mults: tuple = (1, 2, 2),
                 num_classes: int = 10, conditional: bool = False, vocab: int = 0, dropout: float = 0.1,
                 attention: bool = True):  # fmt: skip
        super().__init__()
        if img_size % 2 ** (len(mults) - 1):
            raise ValueError(f"image size {img_size} does not halve {len(mults) - 1} times")
        self.in_chans, self.img_size, self.num_classes = in_chans, img_size, num_classes
        self.conditional, self.vocab = conditional, vocab
        emb = width * 4
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label = nn.Embedding(num_classes + 1, emb) if conditional else None  # the last: no label
        if self.label is not None:
            nn.init.zeros_(self.label.weight)
        self.caption = CaptionEncoder(vocab, emb) if vocab else None
        chans = [width * m for m in mults]
        self.inp = nn.Conv2d(in_chans, chans[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        cin = chans[0]
        skips = [cin]
        for i, c in enumerate(chans):
            self.down.append(ResBlock(cin, c, emb, dropout))
            cin = c
            skips.append(c)
            if i < len(chans) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(cin, cin, emb, dropout)
        self.attn = Attention(cin) if attention else nn.Identity()
        self.mid2 = ResBlock(cin, cin, emb, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):  # two blocks a level, each taking one skip
            blocks = nn.ModuleList()
            for _ in range(2):
                blocks.append(ResBlock(cin + skips.pop(), c, emb, dropout))
                cin = c
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.out = nn.Sequential(
            nn.GroupNorm(_groups(cin), cin), nn.SiLU(), nn.Conv2d(cin, in_chans, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def embedding(
        self, t: torch.Tensor, labels: torch.Tensor | None = None, tokens: torch.Tensor | None = None
    ):
        e = self.time(timestep_embedding(t, self.width))
        if self.label is not None:
            if labels is None:  # unconditional: the "no label" entry
                labels = torch.full_like(t, self.num_classes, dtype=torch.long)
            e = e + self.label(labels)
        if self.caption is not None and tokens is not None:
            e = e + self.caption(tokens)
        return e

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        e = self.embedding(t, labels, tokens)
        h = self.inp(x)
        hs = [h]
        for i, block in enumerate(self.down):
            h = block(h, e)
            hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        for j, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], 1), e)
            if j < len(self.upsample):
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)
