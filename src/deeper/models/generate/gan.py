"""DCGAN (Radford, Metz & Chintala, 2016) generator and discriminator, and the WGAN-GP critic.

The paper's architecture rules: no pooling (strided convolutions in the discriminator,
fractionally strided ones in the generator), batch norm in both (not on the generator's
output nor the discriminator's input), ReLU in the generator with a tanh output,
LeakyReLU (slope 0.2) in the discriminator, and the noise "projected and reshaped" by a
fully connected layer into the first feature map.  Sized for small images: the map
doubles ``levels`` times from ``base`` (28 = 7 x 2 x 2, 32 = 4 x 2^3, 64 = 4 x 2^4), the
channels halve on the way up from ``width * 2^(levels-1)``.

Class-conditional models take a label: the generator concatenates a learnt class embedding
to the noise; the discriminator is a projection discriminator (Miyato & Koyama, 2018): its
score adds ``<embed(y), h>`` to the linear output on the flattened features ``h``.

The WGAN-GP critic (Gulrajani et al., 2017) is the same network with layer norm (one group
of GroupNorm) in place of batch norm, as the gradient penalty is taken per sample.

``norm="spectral"`` (SN-GAN, Miyato et al., 2018) drops the discriminator's batch norm and
divides each of its weight matrices (convolutions, the linear score and the projection's class
embedding) by its largest singular value, estimated by one power iteration per training step:
every layer is then 1-Lipschitz, so the discriminator cannot sharpen its decision without
bound as training goes on.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

#: the discriminator's normalisations: batch norm (DCGAN), layer norm (the WGAN-GP critic), spectral norm
#: (SN-GAN) or none
NORMS = ("batch", "layer", "spectral", "none")


def levels_for(size: int) -> tuple[int, int]:
    """``(levels, base)``: how many times ``size`` halves (while even and at least 8) and what is left."""
    if size < 4:
        raise ValueError(f"images must be at least 4 pixels wide, got {size}")
    levels = 0
    while size % 2 == 0 and size >= 8 and levels < 5:
        size //= 2
        levels += 1
    if levels == 0:
        raise ValueError(f"image size {size} cannot be reached by doubling (use 28, 32 or 64)")
    return levels, size


def _init_dcgan(module: nn.Module) -> None:
    """The paper's initialisation: weights from N(0, 0.02) (norm scales from N(1, 0.02)), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """``z`` (N, latent) [and labels (N,)] -> images (N, C, S, S) in [-1, 1]."""

    def __init__(self, *, latent: int = 64, in_chans: int = 1, img_size: int = 28, width: int = 32,
                 num_classes: int = 10, conditional: bool = False, embed: int = 16):  # fmt: skip
        super().__init__()
        self.latent, self.img_size, self.in_chans = latent, img_size, in_chans
        self.num_classes, self.conditional = num_classes, conditional
        levels, base = levels_for(img_size)
        chans = [width * 2 ** (levels - 1 - i) for i in range(levels)]  # e.g. 64, 32
        self.base, self.chans = base, chans
        self.embed = nn.Embedding(num_classes, embed) if conditional else None
        zin = latent + (embed if conditional else 0)
        self.project = nn.Sequential(
            nn.Linear(zin, chans[0] * base * base, bias=False),
            nn.BatchNorm1d(chans[0] * base * base),
            nn.ReLU(True),
        )
        layers: list[nn.Module] = []
        for i in range(levels):
            last = i == levels - 1
            cout = in_chans if last else chans[i + 1]
            layers.append(nn.ConvTranspose2d(chans[i], cout, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.net = nn.Sequential(*layers)
        _init_dcgan(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.project(z).view(z.shape[0], self.chans[0], self.base, self.base)
        return self.net(h)


class Discriminator(nn.Module):
    """Images (N, C, S, S) in [-1, 1] [and labels] -> one score (logit, or critic value) per image (N, 1)."""

    def __init__(self, *, in_chans: int = 1, img_size: int = 28, width: int = 32, num_classes: int = 10,
                 conditional: bool = False, norm: str = "batch"):  # fmt: skip
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        levels, base = levels_for(img_size)
        chans = [width * 2**i for i in range(levels)]
        layers: list[nn.Module] = []
        cin = in_chans
        for i, c in enumerate(chans):
            layers.append(nn.Conv2d(cin, c, 4, 2, 1, bias=i == 0 or norm in ("none", "spectral")))
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c))
            elif i > 0 and norm == "layer":
                layers.append(nn.GroupNorm(1, c))
            layers.append(nn.LeakyReLU(0.2, True))
            cin = c
        self.features = nn.Sequential(*layers, nn.Flatten())
        dim = chans[-1] * base * base
        self.score = nn.Linear(dim, 1)
        self.conditional = conditional
        self.embed = nn.Embedding(num_classes, dim) if conditional else None
        _init_dcgan(self)
        # after the initialisation: the parametrisation keeps the raw weight as `original`
        if norm == "spectral":
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
                    spectral_norm(m)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.score(h)
        if self.conditional:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            out = out + (self.embed(labels) * h).sum(1, keepdim=True)
        return out


class GanPair(nn.Module):
    """A generator and its discriminator (or critic), built together from one set of options."""

    def __init__(self, generator: Generator, discriminator: Discriminator, loss: str):
        super().__init__()
        self.generator, self.discriminator, self.loss = generator, discriminator, loss

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(self.generator(z, labels), labels)
