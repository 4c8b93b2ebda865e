"""The image side of a captioning model: a CNN of the model zoo, trained here, as a feature map.

The encoder is a zoo network without its classifier: its ``forward_features`` gives a
(B, C, h, w) map.  ``deep-convnet`` is the book's DeepConvNet (six 3x3 convolutions,
16-16-32-32-64-64 channels times ``width``, three 2x2 max-pools) with batch norm after
every convolution: a 64x64 scene becomes an 8x8 map, each cell seeing about 30 pixels,
the size of a digit.  ``resnet20`` is the CIFAR ResNet-20 (16-32-64 channels times
``width``, rounded; stride 4: a 16x16 map of 64x64 scenes).  The map is average-pooled
to a fixed ``grid`` (the identity for scenes of the training size), so a model also
reads images of another size.  ``pools`` (deep-convnet only) keeps fewer of its three
max-pools: with two, a 64x64 scene gives a 17x17 map, each cell 4 pixels from the next.
"""

from __future__ import annotations

import torch
from torch import nn

#: zoo networks that can encode images for captioning
ENCODERS = ("deep-convnet", "resnet20")


class ZooEncoder(nn.Module):
    """``(B, in_chans, H, W) -> (B, channels, grid, grid)``: a zoo CNN's features, pooled to ``grid``."""

    def __init__(
        self,
        name: str = "deep-convnet",
        *,
        in_chans: int = 1,
        width: float = 1.0,
        grid: int = 8,
        pools: int = 3,
    ):
        super().__init__()
        from deeper.models.registry import create_model

        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r} (choose from {', '.join(ENCODERS)})")
        if grid < 1:
            raise ValueError(f"grid must be at least 1, got {grid}")
        if pools != 3 and name != "deep-convnet":
            raise ValueError(f"pools is an option of the deep-convnet encoder, not of {name}")
        if name == "deep-convnet":
            cnn = create_model("deep-convnet", num_classes=1, in_chans=in_chans, norm="batch", dropout=0.0,
                               width=float(width), pools=pools)  # fmt: skip
            cnn.fc1 = cnn.fc2 = cnn.drop1 = cnn.drop2 = None  # the classifier: not used, not saved
            self.channels = max(1, round(64 * width))
        else:
            k = max(1, round(width))
            cnn = create_model(name, num_classes=1, in_chans=in_chans, width=k)
            cnn.head = None
            self.channels = 64 * k
        self.cnn = cnn
        self.grid = grid
        self.pool = nn.AdaptiveAvgPool2d(grid)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.cnn.forward_features(images)
        return x if tuple(x.shape[-2:]) == (self.grid, self.grid) else self.pool(x)

    def load_features(self, state: dict[str, torch.Tensor], source: str = "the weights") -> int:
        """Start from a classifier's convolutional layers (the same zoo network at the same ``width``,
        trained on single digits, say): every tensor of ``state`` whose name and shape this encoder
        has is copied in, the classifier's head is left out.  Returns how many tensors were copied;
        a ValueError when none fit (another network, or another width)."""
        own = self.cnn.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        convs = [k for k in own if k.endswith(".weight") and own[k].ndim == 4]
        missing = [k for k in convs if k not in fits]
        if not fits or missing:
            raise ValueError(
                f"{source} do not fit this encoder: {len(missing)} of its {len(convs)} convolutions have no "
                "tensor of that name and shape there (the same network, width and normalisation are needed)"
            )
        self.cnn.load_state_dict(fits, strict=False)
        return len(fits)
