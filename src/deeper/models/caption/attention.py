"""Show, Attend and Tell (Xu et al., 2015), soft attention: the decoder looks at image regions word by word.

The encoder's ``grid x grid`` map is ``L = grid^2`` annotation vectors ``a_i`` (one per
region, ``C`` channels), plus a learned embedding of each region's position
(``positions``: our addition; the captions speak of left and right, and a weighted
average of features alone does not say where they came from).  At every step ``t``:

- attention ``e_ti = v^T tanh(W_a a_i + W_h h_{t-1})``, ``alpha_t = softmax(e_t)`` over
  the L regions;
- context ``z_t = beta_t * sum_i alpha_ti a_i``, gated by ``beta_t = sigmoid(f_beta(h_{t-1}))``;
- an LSTM cell reads ``[E y_{t-1}; z_t]``; the initial ``h_0``, ``c_0`` are ``tanh`` of
  linear maps of the mean annotation;
- the deep output layer scores the words: ``L_o(E y_{t-1} + L_h h_t + L_z z_t)`` (after dropout).

The attention maps come back from every step, for the doubly stochastic regularisation
(the captioning task's ``alpha_c``: each region's attention summed over the words is
pushed towards 1) and to be drawn over the image.
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.models.caption.encoders import ZooEncoder
from deeper.models.caption.nic import CaptionModel, select_rows
from deeper.models.caption.vocab import PAD_ID


class ShowAttendTell(CaptionModel):
    attends = True

    def __init__(
        self, *, num_classes: int, in_chans: int = 1, encoder: str = "deep-convnet", width: float = 1.0,
        grid: int = 8, embed: int = 256, hidden: int = 512, attention: int = 256, dropout: float = 0.3,
        positions: bool = True,
    ):  # fmt: skip
        super().__init__()
        self.encoder = ZooEncoder(encoder, in_chans=in_chans, width=width, grid=grid)
        self.grid = grid
        d = self.encoder.channels
        self.position = nn.Parameter(torch.zeros(grid * grid, d)) if positions else None
        if positions:
            nn.init.normal_(self.position, std=0.1)
        self.init_h = nn.Linear(d, hidden)
        self.init_c = nn.Linear(d, hidden)
        self.att_a = nn.Linear(d, attention)
        self.att_h = nn.Linear(hidden, attention, bias=False)
        self.att_v = nn.Linear(attention, 1)
        self.gate = nn.Linear(hidden, d)
        self.embed = nn.Embedding(num_classes, embed, padding_idx=PAD_ID)
        self.cell = nn.LSTMCell(embed + d, hidden)
        self.out_h = nn.Linear(hidden, embed)
        self.out_z = nn.Linear(d, embed, bias=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(embed, num_classes)
        self.num_classes = num_classes

    def annotations(self, images: torch.Tensor) -> torch.Tensor:
        """(B, L, C): one vector per region of the encoder's map, row by row."""
        a = self.encoder(images).flatten(2).transpose(1, 2)
        return a + self.position if self.position is not None else a

    def start(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.annotations(images)
        mean = a.mean(1)
        return {"h": torch.tanh(self.init_h(mean)), "c": torch.tanh(self.init_c(mean)), "a": a,
                "att_a": self.att_a(a)}  # fmt: skip

    def step(self, tokens: torch.Tensor, state: dict[str, torch.Tensor]):
        h, c, a = state["h"], state["c"], state["a"]
        e = self.att_v(torch.tanh(state["att_a"] + self.att_h(h)[:, None])).squeeze(2)
        alpha = torch.softmax(e.float(), dim=1).to(a.dtype)
        z = torch.sigmoid(self.gate(h)) * torch.bmm(alpha[:, None], a)[:, 0]
        y = self.embed(tokens)
        h, c = self.cell(torch.cat([y, z], 1), (h, c))
        logits = self.out(self.drop(y + self.out_h(h) + self.out_z(z)))
        return logits, {**state, "h": h, "c": c}, alpha

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor | None = None):
        state = select_rows(self.start(images), index)
        logits, alphas = [], []
        for t in range(tokens.shape[1]):
            out, state, alpha = self.step(tokens[:, t], state)
            logits.append(out)
            alphas.append(alpha)
        return torch.stack(logits, 1), torch.stack(alphas, 1)
