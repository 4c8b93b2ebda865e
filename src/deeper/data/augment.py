"""Batched data augmentation on the device: every op draws its parameters per image.

An :class:`Augment` takes a float batch ``(B, C, H, W)`` in ``[0, 1]`` (what
:class:`~deeper.data.BatchLoader` yields) and returns a batch of the same shape,
dtype, memory layout and range.  All randomness comes from one
``torch.Generator`` owned by the pipeline, so a seed reproduces the exact
images, and the generator's state (saved in training checkpoints) lets a
resumed run continue with the very same augmentations.

The ops, in the order they are applied (each with one *strength*):

==============  =========================================================================
``rotate=D``    rotation by an angle uniform in ``[-D, D]`` degrees
``scale=S``     rescale (zoom) by a factor uniform in ``[1 - S, 1 + S]``
``translate=T`` shift by up to ``T`` x the image size, in x and y independently
``elastic=A``   elastic distortion (Simard et al. 2003): a random displacement field
                smoothed by a Gaussian of ``elastic_sigma`` pixels (default 4), scaled
                by ``A`` pixels (Simard used 34 with sigma 4 on MNIST)
``crop=P``      random crop of the original size out of the image zero-padded by ``P``
                pixels (a whole-pixel shift of up to ``P``)
``flip=P``      horizontal flip with probability ``P``
``brightness=B`` add a value uniform in ``[-B, B]``
``contrast=C``  scale the deviation from the image's mean by ``[1 - C, 1 + C]``
``erase=P``     random erasing (Zhong et al. 2017) with probability ``P``: a rectangle of
                2-33% of the image, aspect ratio 0.3-3.3, filled with uniform noise
==============  =========================================================================

Rotation, rescale, translation and the elastic field are combined into one
sampling grid, so the image is resampled (bilinear) only once.  Each op is a
batched tensor expression: parameters are drawn for all images at once, with
no per-image Python loop.  (``torchvision.transforms.v2`` applied to a batch
draws *one* set of parameters for the whole batch, which is why these are
written out here.)

A *spec* names the ops: ``"rotate=10,elastic=34"``, a preset (``digits``,
``fashion``, ``cifar``), ``default`` (the dataset's preset, see
:data:`DATASET_PRESETS`) or ``none``; presets and ops combine, later items
overriding earlier ones: ``"default,erase=0.25"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deeper.errors import ConfigError


@dataclass(frozen=True)
class AugmentOp:
    name: str
    description: str
    low: float
    high: float


OPS: dict[str, AugmentOp] = {
    op.name: op
    for op in (
        AugmentOp("rotate", "rotation by up to +-D degrees", 0.0, 180.0),
        AugmentOp("scale", "rescale by a factor in [1-S, 1+S]", 0.0, 0.9),
        AugmentOp("translate", "shift by up to T x the image size", 0.0, 0.5),
        AugmentOp("elastic", "elastic distortion of A pixels", 0.0, 100.0),
        AugmentOp("elastic_sigma", "smoothness of the elastic field in pixels [4]", 0.5, 20.0),
        AugmentOp("crop", "random crop with P pixels of zero padding", 0.0, 64.0),
        AugmentOp("flip", "horizontal flip with probability P", 0.0, 1.0),
        AugmentOp("brightness", "add a value in [-B, B]", 0.0, 1.0),
        AugmentOp("contrast", "scale contrast by [1-C, 1+C]", 0.0, 1.0),
        AugmentOp("erase", "random erasing with probability P", 0.0, 1.0),
    )
}

#: Named op combinations.  Digits get no flips: a mirrored 2, 3, 4, 5, 6, 7 or 9 is not a digit
#: (and a mirrored digit could be read as another one), so flipping would teach the network a
#: false invariance; small rotations, rescales, shifts and elastic strokes are what handwriting
#: varies by.  Clothing is left-right symmetric in meaning (a mirrored shoe is a shoe) but never
#: upside down, so it gets horizontal flips, small shifts and occlusion (erasing).
PRESETS: dict[str, dict[str, float]] = {
    "digits": {"rotate": 10.0, "scale": 0.1, "translate": 0.08, "elastic": 20.0},
    "fashion": {"flip": 0.5, "crop": 2.0, "erase": 0.5},
    "cifar": {"flip": 0.5, "crop": 4.0},
}
#: The preset ``default`` stands for, per dataset.
DATASET_PRESETS: dict[str, str] = {
    "mnist": "digits",
    "digits": "digits",
    "fashion-mnist": "fashion",
    "cifar10": "cifar",
}


def parse_augment(spec: str | None, data: str | None = None) -> dict[str, float]:
    """The ops (name -> strength) a spec names; ``{}`` for ``none``.  Bad specs raise ConfigError."""
    if spec is None:
        return {}
    ops: dict[str, float] = {}
    for raw in spec.split(","):
        item = raw.strip().replace("-", "_")
        if not item or item == "none":
            continue
        name, sep, value = item.partition("=")
        if not sep:
            if name == "default":
                if data not in DATASET_PRESETS:
                    raise ConfigError(
                        f"--augment default: no default augmentation for dataset {data!r} "
                        f"(name ops explicitly, e.g. flip=0.5,crop=4; presets: {', '.join(PRESETS)})"
                    )
                name = DATASET_PRESETS[data]
            if name not in PRESETS:
                raise ConfigError(
                    f"--augment: unknown preset {name!r} (presets: default, none, {', '.join(PRESETS)}; "
                    f"or ops NAME=STRENGTH with NAME in {', '.join(OPS)})"
                )
            ops.update(PRESETS[name])
            continue
        if name not in OPS:
            raise ConfigError(f"--augment: unknown op {name!r} (ops: {', '.join(OPS)})")
        try:
            strength = float(value)
        except ValueError:
            raise ConfigError(f"--augment: {name}={value!r} is not a number") from None
        op = OPS[name]
        if not op.low <= strength <= op.high or not math.isfinite(strength):
            raise ConfigError(f"--augment: {name} must be in [{op.low:g}, {op.high:g}], got {strength:g}")
        ops[name] = strength
    if "elastic" not in ops:
        ops.pop("elastic_sigma", None)
    return {k: v for k, v in ops.items() if v > 0}


def describe_augment(ops: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in ops.items()) if ops else "none"


def _uniform(g: torch.Generator, n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur_matrix(n: int, sigma: float, device, dtype) -> torch.Tensor:
    """``(n, n)`` matrix of a 1-D Gaussian blur with zero padding (``M @ v`` blurs ``v``)."""
    k = _gaussian_kernel(sigma, device, dtype)
    r = k.numel() // 2
    i = torch.arange(n, device=device)
    d = i[None, :] - i[:, None] + r  # kernel index of each (output, input) pair
    return torch.where(
        (d >= 0) & (d < k.numel()), k[d.clamp(0, k.numel() - 1)], torch.zeros((), device=device, dtype=dtype)
    )


def _smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, K, H, W)`` (zero padding, kernel sums to 1) as two matrix products."""
    h, w = field.shape[-2:]
    mh = _blur_matrix(h, sigma, field.device, field.dtype)
    mw = _blur_matrix(w, sigma, field.device, field.dtype)
    return mh @ field @ mw.T


class Augment:
    """Applies ``ops`` (see :func:`parse_augment`) to float batches, drawing from ``generator``."""

    def __init__(self, ops: dict[str, float]):
        unknown = set(ops) - set(OPS)
        if unknown:
            raise ConfigError(f"unknown augmentation op(s) {', '.join(sorted(unknown))}")
        self.ops = dict(ops)

    def __bool__(self) -> bool:
        return any(k != "elastic_sigma" for k in self.ops)

    def __repr__(self) -> str:
        return f"Augment({describe_augment(self.ops)})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"augmentation expects a batch (B, C, H, W), got shape {tuple(x.shape)}")
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        o = self.ops
        if any(o.get(k) for k in ("rotate", "scale", "translate", "elastic")):
            x = self._geometric(x, g)
        if o.get("crop"):
            x = self._crop(x, g, int(round(o["crop"])))
        if o.get("flip"):
            flip = torch.rand(x.shape[0], generator=g, device=x.device) < o["flip"]
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if o.get("brightness") or o.get("contrast"):
            x = self._photometric(x, g)
        if o.get("erase"):
            x = self._erase(x, g, o["erase"])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _geometric(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        dev, o = x.device, self.ops
        angle = _uniform(g, b, -o.get("rotate", 0.0), o.get("rotate", 0.0), dev) * (math.pi / 180)
        s = o.get("scale", 0.0)
        scale = _uniform(g, b, 1 - s, 1 + s, dev)
        t = o.get("translate", 0.0) * 2  # normalised coordinates span 2 per image side
        shift = _uniform(g, 2 * b, -t, t, dev).view(b, 2)
        # affine_grid maps output to input coordinates: input = R(angle) / scale @ output + shift
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta.to(x.dtype), [b, 1, h, w], align_corners=False)
        if o.get("elastic"):
            sigma = o.get("elastic_sigma", 4.0)
            field = torch.rand(b, 2, h, w, generator=g, device=dev, dtype=x.dtype) * 2 - 1
            field = _smooth(field, sigma) * o["elastic"]  # pixels
            scale_xy = torch.tensor([2.0 / w, 2.0 / h], device=dev, dtype=x.dtype)
            grid = grid + field.permute(0, 2, 3, 1) * scale_xy
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def _crop(x: torch.Tensor, g: torch.Generator, pad: int) -> torch.Tensor:
        b, c, h, w = x.shape
        dev = x.device
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=dev)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=dev)
        rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H) rows of the padded image
        cols = dx[:, None] + torch.arange(w, device=dev)  # (B, W)
        xp = xp.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
        return xp.gather(3, cols[:, None, None, :].expand(b, c, h, w))

    def _photometric(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        c = self.ops.get("contrast", 0.0)
        if c:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * _uniform(g, b, 1 - c, 1 + c, dev).view(-1, 1, 1, 1).to(x.dtype) + mean
        br = self.ops.get("brightness", 0.0)
        if br:
            x = x + _uniform(g, b, -br, br, dev).view(-1, 1, 1, 1).to(x.dtype)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def _erase(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
        b, c, h, w = x.shape
        dev = x.device
        area = _uniform(g, b, 0.02, 0.33, dev) * (h * w)
        ratio = torch.exp(_uniform(g, b, math.log(0.3), math.log(3.3), dev))
        eh = torch.sqrt(area * ratio).round().clamp(1, h)
        ew = torch.sqrt(area / ratio).round().clamp(1, w)
        top = (torch.rand(b, generator=g, device=dev) * (h - eh + 1)).floor()
        left = (torch.rand(b, generator=g, device=dev) * (w - ew + 1)).floor()
        on = torch.rand(b, generator=g, device=dev) < p
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        mask = (
            (ys >= top.view(-1, 1, 1))
            & (ys < (top + eh).view(-1, 1, 1))
            & (xs >= left.view(-1, 1, 1))
            & (xs < (left + ew).view(-1, 1, 1))
            & on.view(-1, 1, 1)
        )
        noise = torch.rand(x.shape, generator=g, device=dev, dtype=x.dtype)
        return torch.where(mask.unsqueeze(1), noise, x)
