"""A residual U-Net for image restoration (denoising, inpainting).

The U-Net of Ronneberger et al. (two 3x3 convolutions per level, pooling down, up-convolution
and concatenated skips up) sized for photographs' patches: ``width`` channels at the first
level, doubling over ``depth`` levels; batch norm is left out (restoration needs the image's
own intensities, not a batch's).  It reads the damaged image and, for inpainting, the mask of
missing pixels as one more channel (``mask_input``), and predicts the *correction* added to
the damaged image (residual learning, as DnCNN); given a mask, only the missing pixels are
corrected and the known ones pass through unchanged (the network fills the holes).  Inputs
are padded by reflection to a multiple of ``2**depth`` and the output cropped back, so any
image size fits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.registry import register_model


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
    )  # fmt: skip


class RestoreUNet(nn.Module):
    def __init__(self, *, in_chans: int = 3, width: int = 32, depth: int = 3, mask_input: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.in_chans, self.mask_input, self.stride = in_chans, mask_input, 2**depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(in_chans + int(mask_input), chans[0])])
        self.down.extend(double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth))
        self.merge = nn.ModuleList(double_conv(2 * chans[i], chans[i]) for i in range(depth))
        self.out = nn.Conv2d(chans[0], in_chans, 1)
        nn.init.zeros_(self.out.weight)  # start as the identity: the damaged image itself
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (N, C, H, W) damaged, ``mask`` (N, 1, H, W): 1 where pixels are missing (inpainting)."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"this network reads (N, {self.in_chans}, H, W) images, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        inp = x
        if self.mask_input:
            inp = torch.cat([x, mask if mask is not None else torch.zeros_like(x[:, :1])], 1)
        ph, pw = -h % self.stride, -w % self.stride
        if ph or pw:
            inp = F.pad(inp, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        skips = []
        y = inp
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        y = skips.pop()
        for i in reversed(range(len(self.up))):
            y = self.merge[i](torch.cat([skips.pop(), self.up[i](y)], 1))
        correction = self.out(y)[..., :h, :w]
        return x + correction * mask if mask is not None else x + correction


@register_model("restore-unet", default_input=(3, 64, 64), family="restore")
def restore_unet(*, num_classes: int = 3, in_chans: int = 3, width: int = 32, depth: int = 3,
                 mask_input: bool = False) -> RestoreUNet:  # fmt: skip
    """Residual U-Net for denoising and inpainting (``mask_input``: the missing pixels as a channel)."""
    return RestoreUNet(in_chans=in_chans, width=width, depth=depth, mask_input=mask_input)
