"""Pixels: luminance, bicubic resizing as the super-resolution papers make it, reading and writing files.

- **Y** is the luminance of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` computes it (studio swing:
  16-235 of 255), the channel super-resolution papers train and score on; a grey image is
  taken as R = G = B.  :func:`ycbcr_to_rgb` inverts it (the colour of an upscaled image: its
  Y from the network, Cb and Cr upscaled by bicubic interpolation).
- **Resizing** is bicubic with antialiasing (Keys' kernel, a = -0.5, the kernel of MATLAB's
  ``imresize`` and PIL); the low-resolution image is the high-resolution one (cropped to a
  multiple of the scale) shrunk and rounded to 8 bits, and the baseline is that image
  enlarged again by the same resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deeper.errors import ConfigError, DataError

#: BT.601 studio-swing conversion (inputs and outputs in [0, 1]), as MATLAB's rgb2ycbcr
_Y = torch.tensor([65.481, 128.553, 24.966]) / 255.0
_CB = torch.tensor([-37.797, -74.203, 112.0]) / 255.0
_CR = torch.tensor([112.0, -93.786, -18.214]) / 255.0


def _rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    return x


def _mix(x: torch.Tensor, weights: torch.Tensor, offset: float) -> torch.Tensor:
    w = weights.to(x.device, x.dtype).view(1, 3, 1, 1)
    return (_rgb(x) * w).sum(1, keepdim=True) + offset


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """(N, 1|3, H, W) in [0, 1] -> luminance Y (N, 1, H, W), in [16/255, 235/255]."""
    return _mix(x, _Y, 16 / 255)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([_mix(x, _Y, 16 / 255), _mix(x, _CB, 128 / 255), _mix(x, _CR, 128 / 255)], 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    m = torch.stack([_Y, _CB, _CR]).double()
    inv = torch.linalg.inv(m).to(x.device, x.dtype)
    off = torch.tensor([16.0, 128.0, 128.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1) / 255
    return torch.einsum("rc,nchw->nrhw", inv, x - off)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamped to [0, 1] and rounded to the 256 levels of an 8-bit image."""
    return x.clamp(0, 1).mul(255).round().div(255)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] as 8-bit levels (clamped and rounded as :func:`quantize` rounds)."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Cropped (bottom, right) so both sides are multiples of ``scale``."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bicubic resize by ``factor`` (antialiased when shrinking), float images (N, C, H, W)."""
    return F.interpolate(x, scale_factor=factor, mode="bicubic", antialias=True, align_corners=False)


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution image of ``hr`` (sides multiples of ``scale``): shrunk and rounded to 8 bits."""
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ConfigError(f"scale {scale} does not divide the image size {h}x{w}; crop it first (modcrop)")
    return quantize(resize(hr, 1 / scale))


def upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: ``lr`` enlarged ``scale`` times by the same resize, clamped to [0, 1]."""
    return resize(lr, scale).clamp(0, 1)


def trim(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border : x.shape[-2] - border, border : x.shape[-1] - border] if border else x


# ----------------------------------------------------------------------------- files

MAX_PIXELS = 40_000_000


def read_image(path, *, channels: int | None = None, min_size: int = 1) -> torch.Tensor:
    """An image file as a float tensor (1, C, H, W) in [0, 1], C = 1 for grey files, 3 for colour.

    ``channels`` = 3 refuses grey images; 1 refuses colour ones (one-line :class:`DataError`).
    Images smaller than ``min_size`` on a side, unreadable files and images past 40 Mpx are refused.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DataError(f"{path}: {w}x{h} is more than {MAX_PIXELS:,} pixels")
            im.load()
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F") or (im.mode == "P" and _palette_is_grey(im))
            arr = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    if arr.ndim == 3 and np.abs(arr - arr[..., :1]).max() <= 1 / 255:  # colour file holding a grey image
        arr = arr[..., 0]
    x = torch.from_numpy(np.ascontiguousarray(arr))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    if min(x.shape[-2:]) < min_size:
        raise DataError(
            f"{path}: {x.shape[-1]}x{x.shape[-2]} is too small (at least {min_size} pixels a side)"
        )
    if channels == 3 and x.shape[1] == 1:
        raise DataError(f"{path}: a grey image; these weights read colour (RGB) images")
    if channels == 1 and x.shape[1] == 3:
        raise DataError(f"{path}: a colour image; these weights read grey images")
    return x.contiguous()


def _palette_is_grey(im) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool(np.all(rgb == rgb[..., :1]))


def write_image(path, x: torch.Tensor) -> str:
    """Write (1, C, H, W) or (C, H, W) in [0, 1] as an 8-bit PNG (atomically); its path."""
    import io

    from PIL import Image

    from deeper.fileio import write_bytes_atomic

    if x.ndim == 4:
        x = x[0]
    arr = to_uint8(x.detach().float().cpu())
    arr = arr[0].numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    write_bytes_atomic(Path(path), buf.getvalue())
    return str(path)
