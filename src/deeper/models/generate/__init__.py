"""Image generators: DCGAN and WGAN-GP pairs (family ``generate``), and the diffusion U-Net (family ``diffusion``).

- ``dcgan``: a DCGAN generator and discriminator (:mod:`.gan`), trained by task ``generate``
  with the non-saturating GAN loss;
- ``wgan-gp``: the same generator and a critic with layer norm, trained with the Wasserstein
  loss and a gradient penalty, ``n_critic`` critic steps per generator step;
- ``ddpm-unet``: the noise-predicting U-Net of a diffusion model (:mod:`.unet`), trained by
  task ``diffusion`` (and, reading a caption, ``text-to-image``);
- ``layout-gru``: text to image in two stages (:mod:`.layout`): a caption to a layout of digits,
  the layout to a scene drawn with a glyph source; trained by task ``text-layout``.

Every factory takes ``conditional`` (a class label, or for ``ddpm-unet`` a caption when
``vocab`` > 0).
"""

from __future__ import annotations

from deeper.models.generate.gan import Discriminator, GanPair, Generator, levels_for
from deeper.models.generate.layout import GlyphBank, GlyphGan, LayoutNet, LayoutToImage
from deeper.models.generate.unet import DiffusionUNet
from deeper.models.registry import register_model


def _pair(loss: str, norm: str, *, num_classes, in_chans, img_size, latent, width, d_width, conditional):
    g = Generator(latent=latent, in_chans=in_chans, img_size=img_size, width=width,
                  num_classes=num_classes, conditional=conditional)  # fmt: skip
    d = Discriminator(in_chans=in_chans, img_size=img_size, width=d_width, num_classes=num_classes,
                      conditional=conditional, norm=norm)  # fmt: skip
    return GanPair(g, d, loss)


@register_model("dcgan", default_input=(1, 28, 28), family="generate")
def dcgan(*, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, latent: int = 64, width: int = 32,
          d_width: int = 32, conditional: bool = False, d_norm: str = "batch") -> GanPair:  # fmt: skip
    """DCGAN generator and discriminator (strided convolutions, batch norm, ReLU/LeakyReLU, tanh);
    ``d_norm=spectral``: the discriminator spectrally normalised instead of batch-normalised (SN-GAN)."""
    if d_norm not in ("batch", "spectral"):
        raise ValueError(f"d_norm must be batch or spectral, got {d_norm!r}")
    return _pair("gan", d_norm, num_classes=num_classes, in_chans=in_chans, img_size=img_size, latent=latent,
                 width=width, d_width=d_width, conditional=conditional)  # fmt: skip


@register_model("wgan-gp", default_input=(1, 28, 28), family="generate")
def wgan_gp(*, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, latent: int = 64, width: int = 32,
            d_width: int = 32, conditional: bool = False) -> GanPair:  # fmt: skip
    """WGAN-GP: the DCGAN generator and a critic with layer norm (Wasserstein loss, gradient penalty)."""
    return _pair("wgan-gp", "layer", num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                 latent=latent, width=width, d_width=d_width, conditional=conditional)  # fmt: skip


@register_model("ddpm-unet", default_input=(1, 28, 28), family="diffusion")
def ddpm_unet(*, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, width: int = 32,
              mults: tuple = (1, 2, 2), conditional: bool = False, vocab: int = 0, dropout: float = 0.1,
              attention: bool = True) -> DiffusionUNet:  # fmt: skip
    """DDPM's noise-predicting U-Net, small: residual blocks, time embedding, attention at the coarsest level."""
    return DiffusionUNet(in_chans=in_chans, img_size=img_size, width=width, mults=tuple(mults),
                         num_classes=num_classes, conditional=conditional, vocab=vocab, dropout=dropout,
                         attention=attention)  # fmt: skip


@register_model("layout-gru", default_input=(1, 64, 64), family="layout")
def layout_gru(*, num_classes: int = 10, in_chans: int = 1, img_size: int = 64, vocab: int = 64, slots: int = 3,
                bins: int = 32, min_size: int = 20, max_size: int = 32, dim: int = 128, glyphs: str = "bank",
                per_class: int = 100, latent: int = 64, width: int = 32) -> LayoutToImage:  # fmt: skip
    """Text to image in two stages: a GRU layout decoder with attention, then digits drawn in place.

    ``vocab``: the words of the captions (task ``text-layout`` sets it from its training captions).
    """
    if in_chans != 1:
        raise ValueError(f"layout-gru draws one-channel scenes, not {in_chans} channels")
    if glyphs not in ("bank", "gan"):
        raise ValueError(f"glyphs must be 'bank' or 'gan', got {glyphs!r}")
    layout = LayoutNet(vocab, num_classes=num_classes, slots=slots, height=img_size, width=img_size, bins=bins,
                       min_size=min_size, max_size=max_size, dim=dim)  # fmt: skip
    source = GlyphBank(num_classes, per_class) if glyphs == "bank" else GlyphGan(num_classes, latent, width)
    return LayoutToImage(layout, source)


__all__ = [
    "DiffusionUNet",
    "Discriminator",
    "GanPair",
    "Generator",
    "GlyphBank",
    "GlyphGan",
    "LayoutNet",
    "LayoutToImage",
    "levels_for",
]
