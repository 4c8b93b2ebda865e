"""Image captioning models (the ``caption`` family): NIC and Show, Attend and Tell.

    deeper train --task caption --model nic --data scenes-cap
    deeper train --task caption --model show-attend-tell --data scenes-cap

``num_classes`` is the size of the vocabulary (the captioning task sets it from the
training captions and saves the words with the weights); ``encoder`` names the zoo CNN
trained here as the image encoder (:data:`~deeper.models.caption.encoders.ENCODERS`).
Decoding (greedy, beam search) is in :mod:`deeper.models.caption.decode`.
"""

from __future__ import annotations

from deeper.models.caption.attention import ShowAttendTell
from deeper.models.caption.nic import NIC, CaptionModel
from deeper.models.registry import register_model

__all__ = ["NIC", "CaptionModel", "ShowAttendTell"]


@register_model("nic", default_input=(1, 64, 64), family="caption")
def nic(
    *, num_classes: int = 64, in_chans: int = 1, encoder: str = "deep-convnet", width: float = 1.0,
    grid: int = 8, embed: int = 256, hidden: int = 512, dropout: float = 0.3, inject: str = "first",
    pools: int = 3,
) -> NIC:  # fmt: skip
    """NIC (Show and Tell): a zoo CNN's image embedding is the first input of an LSTM that writes the caption
    (``inject=every``: beside every word's input instead)."""
    return NIC(num_classes=num_classes, in_chans=in_chans, encoder=encoder, width=width, grid=grid,
               embed=embed, hidden=hidden, dropout=dropout, inject=inject, pools=pools)  # fmt: skip


@register_model("show-attend-tell", default_input=(1, 64, 64), family="caption")
def show_attend_tell(
    *, num_classes: int = 64, in_chans: int = 1, encoder: str = "deep-convnet", width: float = 1.0,
    grid: int = 8, embed: int = 256, hidden: int = 512, attention: int = 256, dropout: float = 0.3,
    positions: bool = True,
) -> ShowAttendTell:  # fmt: skip
    """Show, Attend and Tell: an LSTM that attends over the zoo CNN's grid of image regions at every word."""
    return ShowAttendTell(num_classes=num_classes, in_chans=in_chans, encoder=encoder, width=width, grid=grid,
                          embed=embed, hidden=hidden, attention=attention, dropout=dropout,
                          positions=positions)  # fmt: skip
