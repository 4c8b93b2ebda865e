"""The feed-forward style network, and the feature network of the content, style and perceptual losses.

- **Style network** (Johnson, Alahi & Fei-Fei 2016, with instance normalisation as Ulyanov et
  al.): a pixel unshuffle and strided convolutions down by 8, ``blocks`` residual blocks,
  nearest-neighbour upsampling and convolutions back (upsample-then-convolve avoids the
  checkerboard of transposed convolutions), a pixel shuffle; a sigmoid keeps the image in
  [0, 1].  Narrower than the paper's (``width`` 16 at the first level, paper 32; down by 8
  instead of 4; nothing at full resolution) so a 512x512 image takes a fraction of a second
  on a CPU.
- **vgg-features** (a classifier, family ``classify``): ``stages`` VGG stages of two 3x3
  convolutions with ReLU and an average pooling (Gatys et al. replace VGG's max pooling by
  average pooling for image synthesis), widths doubling from ``width``; global average
  pooling and a linear layer classify.  :meth:`VGGFeatures.features` returns the activations
  named ``relu{stage}_{conv}`` (``relu1_1``, ``relu3_2``, ...).  No ImageNet weights exist
  here: the network is used with random weights (random features carry style: Ustyuzhaninov
  et al. 2017; He, Wang & Hopcroft 2016) or trained here on the photographs' patches
  (``deeper train --data photo-patches --model vgg-features``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.registry import register_model


class ConvIN(nn.Sequential):
    """Reflection-padded convolution, instance norm (affine), ReLU (or nothing when ``act`` is False)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(cin, cout, kernel, stride=stride),
            nn.InstanceNorm2d(cout, affine=True),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class StyleBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(ConvIN(width, width, 3), ConvIN(width, width, 3, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleNet(nn.Module):
    """Image (N, C, H, W) in [0, 1] -> stylised image of the same size (any size; padded to a multiple of 8).

    Nothing runs at full resolution: the image is folded into 4x the channels at half the size
    (pixel unshuffle) on the way in and unfolded (pixel shuffle) on the way out.
    """

    stride = 8

    def __init__(self, *, in_chans: int = 3, width: int = 16, blocks: int = 3):
        super().__init__()
        w = width
        self.in_chans = in_chans
        self.down = nn.Sequential(
            nn.PixelUnshuffle(2),
            ConvIN(4 * in_chans, w, 3),
            ConvIN(w, 2 * w, 3, 2),
            ConvIN(2 * w, 4 * w, 3, 2),
        )
        self.blocks = nn.Sequential(*[StyleBlock(4 * w) for _ in range(blocks)])
        self.up = nn.ModuleList([ConvIN(4 * w, 2 * w, 3), ConvIN(2 * w, w, 3)])
        self.out = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(w, 4 * in_chans, 3), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"the style network reads (N, {self.in_chans}, H, W) images, got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        ph, pw = -h % self.stride, -w % self.stride
        y = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.blocks(self.down(y))
        for conv in self.up:
            y = conv(F.interpolate(y, scale_factor=2, mode="nearest"))
        return torch.sigmoid(self.out(y)[..., :h, :w])


class VGGFeatures(nn.Module):
    """A small VGG: ``stages`` x (conv3-ReLU-conv3-ReLU-avgpool), a linear classifier on the pooled map."""

    def __init__(self, *, num_classes: int = 10, in_chans: int = 3, width: int = 32, stages: int = 4):
        super().__init__()
        self.in_chans = in_chans
        chans = [min(width * 2**i, 512) for i in range(stages)]
        self.convs = nn.ModuleDict()
        cin = in_chans
        for s, c in enumerate(chans, 1):
            self.convs[f"conv{s}_1"] = nn.Conv2d(cin, c, 3, padding=1)
            self.convs[f"conv{s}_2"] = nn.Conv2d(c, c, 3, padding=1)
            cin = c
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def layer_names(self) -> list[str]:
        return [n.replace("conv", "relu") for n in self.convs]

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_chans:
            if x.shape[1] == 1:  # grey images for a colour network: the same value on every channel
                x = x.expand(-1, self.in_chans, -1, -1)
            else:
                raise ValueError(f"the feature network reads {self.in_chans} channel(s), got {x.shape[1]}")
        return (x - 0.5) / 0.25

    def features(self, x: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The activations ``relu{stage}_{conv}`` named in ``layers`` (the network stops after the deepest)."""
        known = self.layer_names
        unknown = [n for n in layers if n not in known]
        if unknown:
            raise ValueError(
                f"no layer(s) {', '.join(unknown)} in this feature network (its layers: {', '.join(known)})"
            )
        last = max(known.index(n) for n in layers)
        out, x = {}, self._normalize(x)
        for i, (name, conv) in enumerate(self.convs.items()):
            if i and name.endswith("_1"):
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
            if (r := name.replace("conv", "relu")) in layers:
                out[r] = x
            if i == last:
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._normalize(x)
        for name, conv in self.convs.items():
            if name.endswith("_1") and name != "conv1_1":
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
        return self.head(x.mean((2, 3)))

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes)


def random_features(*, seed: int, in_chans: int = 3, width: int = 32, stages: int = 4) -> VGGFeatures:
    """A ``vgg-features`` network with random (He-normal) weights drawn from ``seed``, frozen, in eval mode;
    the global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VGGFeatures(num_classes=1, in_chans=in_chans, width=width, stages=stages)
    return net.eval().requires_grad_(False)


@register_model("style-net", default_input=(3, 64, 64), family="restore")
def style_net(*, num_classes: int = 3, in_chans: int = 3, width: int = 16, blocks: int = 3) -> StyleNet:
    """Feed-forward style transfer (Johnson et al.): down by 8, residual blocks, upsample and convolve."""
    return StyleNet(in_chans=in_chans, width=width, blocks=blocks)


@register_model("vgg-features", default_input=(3, 32, 32), family="classify")
def vgg_features(*, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, width: int = 32,
                 stages: int = 4) -> VGGFeatures:  # fmt: skip
    """A small VGG (average pooling) whose activations are the features of style and perceptual losses."""
    return VGGFeatures(num_classes=num_classes, in_chans=in_chans, width=width, stages=stages)
