"""NIC, "Show and Tell" (Vinyals et al., 2015): a CNN encodes the image, an LSTM writes the sentence.

The image embedding is the LSTM's first input (``x_{-1} = W_I CNN(I)``, from a zero
state), then the words: ``<start>``, then each word of the caption (teacher forcing in
training: the input at step t is the true word t - 1, the target word t).  Words are
learned embeddings of size ``embed`` (the image embedding has the same size); the
LSTM's hidden state goes through dropout to a linear layer that scores every word of
the vocabulary (``num_classes`` words). The LSTM's forget gates start with a bias of 1 (as in
im2txt, the TensorFlow implementation of the paper): the image is the first input only,
and a forget gate at 0.5 would halve what the state keeps of it at every word.

The encoder (:class:`~deeper.models.caption.encoders.ZooEncoder`) gives a ``grid x
grid`` map; NIC flattens it before the image embedding (a linear layer), so the
embedding knows *where* each feature was: a global average would forget the left to
right order the captions talk about.  ``pools=2`` with ``grid=17`` keeps the encoder's
map before its last max-pool: positions 4 pixels apart instead of 8.

``inject`` says where the image enters the decoder (Tanti, Gatt & Camilleri, 2018, "Where to
put the image in an image caption generator", name the variants):

- ``first`` (the paper's *init-inject as first word*): the image embedding is the LSTM's
  input before ``<start>``, from a zero state; the image is seen once.
- ``every`` (*par-inject*): the image embedding is concatenated to every word's embedding,
  so the LSTM is reminded of the image at every word (its input is ``2 * embed`` wide).
  Trained from scratch, a decoder that sees the image once first learns the captions'
  language alone and may stay there; par-inject cannot forget the image.
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.models.caption.encoders import ZooEncoder
from deeper.models.caption.vocab import PAD_ID

#: where NIC's image enters the decoder (see the module's docstring)
INJECT = ("first", "every")


def select_rows(state: dict[str, torch.Tensor], index: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The decoder state of the rows ``index`` (every tensor of a state has the batch first)."""
    return state if index is None else {k: v.index_select(0, index) for k, v in state.items()}


class CaptionModel(nn.Module):
    """What the decoders and the captioning task use: ``start``, ``step`` and a teacher-forced ``forward``.

    ``start(images)`` is the state before ``<start>`` (a dict of tensors, batch first);
    ``step(tokens, state)`` feeds one token per row and returns ``(logits (B, V), state,
    attention (B, L) or None)``; ``forward(images, tokens, index)`` returns the logits
    (N, T, V) of every step of N captions (``index``: the image of each caption) and
    the attention (N, T, L) or None.
    """

    #: whether the model attends over image regions (and :meth:`step` returns attention maps)
    attends = False
    grid = 1

    def start(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]):  # pragma: no cover - abstract
        raise NotImplementedError


class NIC(CaptionModel):
    def __init__(
        self, *, num_classes: int, in_chans: int = 1, encoder: str = "deep-convnet", width: float = 1.0,
        grid: int = 8, embed: int = 256, hidden: int = 512, dropout: float = 0.3, inject: str = "first",
        pools: int = 3,
    ):  # fmt: skip
        super().__init__()
        if inject not in INJECT:
            raise ValueError(f"unknown inject {inject!r} (choose from {', '.join(INJECT)})")
        self.inject = inject
        self.encoder = ZooEncoder(encoder, in_chans=in_chans, width=width, grid=grid, pools=pools)
        self.grid = grid
        self.image_embed = nn.Sequential(
            nn.Flatten(1), nn.Dropout(dropout), nn.Linear(self.encoder.channels * grid * grid, embed)
        )
        self.embed = nn.Embedding(num_classes, embed, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embed * (2 if inject == "every" else 1), hidden, batch_first=True)
        # forget gate bias 1 (as im2txt's LSTM cell): the state keeps the image, its first input
        with torch.no_grad():
            self.lstm.bias_ih_l0[hidden : 2 * hidden].fill_(1.0)
            self.lstm.bias_hh_l0[hidden : 2 * hidden].zero_()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)
        self.num_classes = num_classes

    def start(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.image_embed(self.encoder(images))
        if self.inject == "every":  # a zero state; the image goes in with every word
            zero = x.new_zeros(x.shape[0], self.lstm.hidden_size)
            return {"h": zero, "c": zero, "image": x}
        _, (h, c) = self.lstm(x[:, None])
        return {"h": h[0], "c": c[0]}

    def _inputs(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """The LSTM's inputs for ``tokens`` (B, T): the words' embeddings, with the image beside each (par-inject)."""
        words = self.embed(tokens)
        if self.inject != "every":
            return words
        return torch.cat([words, state["image"][:, None].expand(-1, words.shape[1], -1)], 2)

    def step(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]):
        out, (h, c) = self.lstm(self._inputs(tokens[:, None], state), (state["h"][None], state["c"][None]))
        return self.out(self.drop(out[:, 0])), {**state, "h": h[0], "c": c[0]}, None

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor | None = None):
        state = select_rows(self.start(images), index)
        hc = (state["h"][None].contiguous(), state["c"][None].contiguous())
        out, _ = self.lstm(self._inputs(tokens, state), hc)
        return self.out(self.drop(out)), None
