"""GoogLeNet / Inception v1 (Szegedy et al., 2014), the ILSVRC 2014 winner of the notes.

The building block is the Inception module: four parallel branches (1x1; 1x1
then 3x3; 1x1 then "5x5"; 3x3 max-pool then 1x1) concatenated along the
channels.  The 1x1 convolutions in front of the larger filters shrink the
channels first (the notes' "1x1 convolution reduces the parameters"):
``Inception(..., reduce=False)`` builds the naive module without them for the
comparison (``deeper summary`` shows the saving).  The network's nine modules are
data (:data:`INCEPTIONS`).  Two optional auxiliary classifiers on modules 4a and
4d (``aux_logits=True``; off by default) add deep supervision: in training mode the
model then returns ``(logits, aux1, aux2)`` and the training task adds
0.3 x each auxiliary loss; in evaluation mode it returns the logits alone.

This is torchvision's ``googlenet`` (convolutions followed by batch norm, as
torchvision trains it), so the parameter count for 3x224x224 and 1000 classes is
torchvision's: 6,624,904 without the auxiliary heads.  Like torchvision the "5x5"
branch uses a 3x3 filter by default (torchvision keeps this slip for its weights);
``large_kernel=5`` gives the paper's 5x5 (7,005,832 parameters).

Small images (side < 64, e.g. 28x28 or 32x32): the 7x7 / stride-2 stem
convolution becomes a 3x3 / stride-1 one, halving the total stride from 32 to 16,
so a 28x28 input still leaves a 2x2 map for the last modules (28 -> 14 -> 7 ->
3 -> 2) instead of a single pixel.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.models.registry import register_model
from deeper.models.zoo_common import ZooModel, check_dropout, init_weights, is_small

#: module: (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), in network order
INCEPTIONS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
#: max-pools (3x3 / stride 2, ceil mode; the last one 2x2) after these modules
POOL_AFTER = {"3b": 3, "4e": 2}
AUX_AT = ("4a", "4d")
AUX_WEIGHT = 0.3  # the paper's weight of each auxiliary loss


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """Convolution (no bias) - batch norm - ReLU, torchvision's ``BasicConv2d``."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
            bn=nn.BatchNorm2d(cout, eps=0.001),
            relu=nn.ReLU(inplace=True),
        )
    )


class Inception(nn.Module):
    """The Inception module; ``reduce=False`` drops the 1x1 reductions (the naive module)."""

    def __init__(
        self,
        in_chans: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        large_kernel: int = 3,
        reduce: bool = True,
    ):
        super().__init__()
        if large_kernel not in (3, 5):
            raise ConfigError(f"large_kernel must be 3 (torchvision) or 5 (the paper), got {large_kernel}")
        k = large_kernel
        self.branch1 = conv_bn_relu(in_chans, ch1x1, 1)
        if reduce:
            self.branch2 = nn.Sequential(
                conv_bn_relu(in_chans, ch3x3red, 1), conv_bn_relu(ch3x3red, ch3x3, 3, 1, 1)
            )
            self.branch3 = nn.Sequential(
                conv_bn_relu(in_chans, ch5x5red, 1), conv_bn_relu(ch5x5red, ch5x5, k, 1, k // 2)
            )
            self.branch4 = nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv_bn_relu(in_chans, pool_proj, 1)
            )
            self.out_chans = ch1x1 + ch3x3 + ch5x5 + pool_proj
        else:
            self.branch2 = conv_bn_relu(in_chans, ch3x3, 3, 1, 1)
            self.branch3 = conv_bn_relu(in_chans, ch5x5, k, 1, k // 2)
            self.branch4 = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
            self.out_chans = ch1x1 + ch3x3 + ch5x5 + in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxHead(nn.Sequential):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv (128), affine 2048 -> 1024 -> classes."""

    def __init__(self, in_chans: int, num_classes: int, dropout: float = 0.7):
        super().__init__(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((4, 4)),
                conv=conv_bn_relu(in_chans, 128, 1),
                flatten=nn.Flatten(1),
                fc1=nn.Linear(2048, 1024),
                relu=nn.ReLU(inplace=True),
                drop=nn.Dropout(dropout),
                fc2=nn.Linear(1024, num_classes),
            )
        )


def _trunc_normal_001(w: torch.Tensor) -> None:
    nn.init.trunc_normal_(w, mean=0.0, std=0.01, a=-2, b=2)


class GoogLeNet(ZooModel):
    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        aux_logits: bool = False,
        large_kernel: int = 3,
        dropout: float = 0.2,
        aux_dropout: float = 0.7,
    ):
        super().__init__()
        small = is_small(img_size)
        first = conv_bn_relu(in_chans, 64, 3, 1, 1) if small else conv_bn_relu(in_chans, 64, 7, 2, 3)
        self.stem = nn.Sequential(
            OrderedDict(
                conv1=first,
                pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
                conv2=conv_bn_relu(64, 64, 1),
                conv3=conv_bn_relu(64, 192, 3, 1, 1),
                pool2=nn.MaxPool2d(3, 2, ceil_mode=True),
            )
        )
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        for name, cfg in INCEPTIONS.items():
            blocks[f"inception{name}"] = Inception(*cfg, large_kernel=large_kernel)
            if name in POOL_AFTER:
                k = POOL_AFTER[name]
                blocks[f"pool{name[0]}"] = nn.MaxPool2d(k, 2, ceil_mode=True)
        self.blocks = nn.Sequential(blocks)
        self.head = nn.Sequential(
            OrderedDict(
                pool=nn.AdaptiveAvgPool2d((1, 1)),
                flatten=nn.Flatten(1),
                drop=nn.Dropout(check_dropout(dropout)),
                fc=nn.Linear(1024, num_classes),
            )
        )
        if aux_logits:
            self.aux1 = AuxHead(_out_chans(AUX_AT[0]), num_classes, check_dropout(aux_dropout))
            self.aux2 = AuxHead(_out_chans(AUX_AT[1]), num_classes, check_dropout(aux_dropout))
        else:
            self.aux1 = self.aux2 = None
        self.num_classes = num_classes
        init_weights(self, conv=_trunc_normal_001, linear=_trunc_normal_001)

    def _run(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        aux = []
        for name, block in self.blocks.named_children():
            x = block(x)
            if with_aux and name == f"inception{AUX_AT[0]}":
                aux.append(self.aux1(x))
            elif with_aux and name == f"inception{AUX_AT[1]}":
                aux.append(self.aux2(x))
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        with_aux = self.aux1 is not None and self.training
        x, aux = self._run(x, with_aux)
        logits = self.head(x)
        return (logits, *aux) if with_aux else logits

    def init_classifier(self, layer: nn.Linear) -> None:
        init_weights(layer, linear=_trunc_normal_001)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                old = aux.fc2
                aux.fc2 = nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype)
                self.init_classifier(aux.fc2)


def _out_chans(name: str) -> int:
    _, a, _, b, _, c, d = INCEPTIONS[name]
    return a + b + c + d


@register_model("googlenet", default_input=(3, 224, 224))
def googlenet(
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    img_size: int | tuple[int, int] = 224,
    aux_logits: bool = False,
    large_kernel: int = 3,
    dropout: float = 0.2,
) -> GoogLeNet:
    """GoogLeNet (Inception v1, 2014): nine Inception modules with 1x1 reductions; aux heads optional."""
    return GoogLeNet(
        num_classes=num_classes, in_chans=in_chans, img_size=img_size, aux_logits=aux_logits,
        large_kernel=large_kernel, dropout=dropout,
    )  # fmt: skip
