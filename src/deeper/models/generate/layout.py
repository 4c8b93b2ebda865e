"""Text to image in two stages, caption -> layout -> scene (the hierarchy of Hong et al., 2018), for digit scenes.

**Layout** (:class:`LayoutNet`): a bidirectional GRU reads the caption's words; a GRU decoder then
writes the scene's digits one slot at a time (in the order of its training layouts: as the caption names
them, then the others left to right, or all left to right), attending over the words at every slot
(additive attention, as in Bahdanau et al.).  Per slot it chooses, each choice given the ones before:
whether another digit follows (``stop``), the digit's class, the x then the y of its ink centre (each
one of ``bins`` bins across the canvas) and the side of its 28x28 cell (``min_size``..``max_size``
pixels, as the scenes scale their digits).  Trained with teacher forcing on the training scenes'
layouts (:meth:`LayoutNet.loss`: the sum of the choices' cross-entropies); sampled choice by choice
(:meth:`LayoutNet.sample`).  The previous slot's choices are the decoder's next input, and every slot
decided so far (present, class, place, size) is read directly by each choice, which is how it learns to
keep digits apart and to put a 3 wholly *below* a 7.

**Scene** (:func:`render`): each digit's 28x28 glyph from a glyph source, scaled to its cell size as
the scenes scale theirs (bilinear, antialiased; pixels under :data:`~deeper.data.scenes.INK_MIN` set
to 0), its ink centred on the chosen centre (moved inside the canvas), drawn with max as the scenes
are.  Glyph sources: :class:`GlyphGan`, a class-conditional GAN generator trained here (frozen), and
:class:`GlyphBank`, real training digits drawn at random per class (the renderer's ceiling).

:class:`LayoutToImage` holds both stages; its weights are the whole model (``deeper generate
--prompt`` needs nothing else).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.generate.gan import Generator


def _slot_targets(labels, centres, sizes, counts, *, bins: int, height: int, width: int, min_size: int):
    """Class, x bin, y bin and size index (N, K) of layouts given in pixels (padding slots: 0)."""
    x = (centres[..., 0] / width * bins).long().clamp(0, bins - 1)
    y = (centres[..., 1] / height * bins).long().clamp(0, bins - 1)
    live = torch.arange(labels.shape[1], device=labels.device)[None] < counts[:, None]
    zero = torch.zeros_like(labels)
    return (torch.where(live, labels, zero), torch.where(live, x, zero), torch.where(live, y, zero),
            torch.where(live, (sizes - min_size).clamp(min=0), zero))  # fmt: skip


class LayoutNet(nn.Module):
    """Caption token ids (N, L) (0: padding) -> layouts: up to ``slots`` digits, one slot after another."""

    def __init__(self, vocab: int, *, num_classes: int = 10, slots: int = 3, height: int = 64, width: int = 64,
                 bins: int = 32, min_size: int = 20, max_size: int = 32, dim: int = 128):  # fmt: skip
        super().__init__()
        if vocab < 3:
            raise ValueError(f"a layout network needs a vocabulary (got {vocab} words)")
        if not 1 <= min_size <= max_size:
            raise ValueError(f"cell sizes {min_size}..{max_size} are not a range")
        self.num_classes, self.slots, self.bins = num_classes, slots, bins
        self.height, self.width, self.min_size, self.max_size = height, width, min_size, max_size
        n_sizes = max_size - min_size + 1
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.encoder = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.memory = nn.Linear(2 * dim, dim)  # the words' states: attention keys and values
        self.start = nn.Linear(2 * dim, dim)  # the decoder's first state, from the caption's last states
        self.query = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1)
        # the previous slot's choices (index 0 of each: "no slot before")
        self.prev = nn.ModuleList(nn.Embedding(n + 1, dim) for n in (num_classes, bins, bins, n_sizes))
        self.cell = nn.GRUCell(2 * dim, dim)
        # every slot decided so far, directly: present, x, y, size (in [0, 1]) and the class, one-hot
        self.placed = nn.Linear(slots * (4 + num_classes), 2 * dim)
        self.stop = nn.Linear(2 * dim, 1)
        self.cls = nn.Linear(2 * dim, num_classes)
        # each choice given the slot's state and the choices before it: class -> x -> y -> size
        self.given = nn.ModuleList(nn.Embedding(n, 2 * dim) for n in (num_classes, bins, bins))
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, n))
            for n in (bins, bins, n_sizes)
        )

    # ---- the caption and one decoder step
    def encode(self, tokens: torch.Tensor):
        mask = tokens != 0
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)  # fmt: skip
        states, last = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=tokens.shape[1])
        return self.memory(states), mask, torch.tanh(self.start(torch.cat([last[0], last[1]], 1)))

    def attend(self, h, memory, mask):
        e = self.score(torch.tanh(memory + self.query(h)[:, None])).squeeze(2)
        w = torch.softmax(e.masked_fill(~mask, float("-inf")), 1)
        return torch.bmm(w[:, None], memory).squeeze(1)

    def step(self, h, ctx, prev: tuple, placed, memory, mask):
        """The next slot's state ``h``, its context and ``u`` (what its choices read) from the previous slot's
        choices ``prev`` and every slot decided so far, ``placed`` (N, slots, 4 + classes)."""
        inp = sum(e(p) for e, p in zip(self.prev, prev))
        h = self.cell(torch.cat([inp, ctx], 1), h)
        ctx = self.attend(h, memory, mask)
        return h, ctx, torch.cat([h, ctx], 1) + self.placed(placed.flatten(1))

    def place(self, placed, j: int, cls, x, y, s, live):
        """``placed`` with slot ``j`` filled in where ``live`` (a new tensor: autograd keeps the old one)."""
        n_sizes = self.max_size - self.min_size + 1
        geometry = torch.stack([torch.ones_like(x), x + 0.5, y + 0.5, s + 0.5], 1).float()
        scale = torch.tensor([1.0, self.bins, self.bins, n_sizes], device=placed.device)
        placed = placed.clone()
        row = torch.cat([geometry / scale, F.one_hot(cls, self.num_classes).float()], 1)
        placed[:, j] = row * live[:, None].float()
        return placed

    def where(self, u, cls, x=None, y=None):
        """Logits of x (given the class), y (given x) and size (given y): as many as the choices given."""
        a = u + self.given[0](cls)
        out = [self.heads[0](a)]
        for i, c in ((1, x), (2, y)):
            if c is None:
                break
            a = a + self.given[i](c)
            out.append(self.heads[i](a))
        return out

    # ---- training
    def targets(self, labels, centres, sizes, counts):
        return _slot_targets(labels, centres, sizes, counts, bins=self.bins, height=self.height, width=self.width,
                             min_size=self.min_size)  # fmt: skip

    def loss(self, tokens, labels, centres, sizes, counts) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over scenes of the summed cross-entropies of every choice (teacher forcing); and each part's sum.

        ``labels`` (N, K), ``centres`` (N, K, 2) pixel x, y, ``sizes`` (N, K) cell sides, ``counts`` (N,):
        the slots in the order to learn, the first ``counts`` live.
        """
        cls, x, y, s = self.targets(labels, centres, sizes, counts)
        memory, mask, h = self.encode(tokens)
        n, k = labels.shape
        ctx = torch.zeros_like(h)
        prev = tuple(torch.zeros(n, dtype=torch.long, device=h.device) for _ in range(4))
        placed = h.new_zeros(n, self.slots, 4 + self.num_classes)
        parts = {"stop": 0.0, "class": 0.0, "x": 0.0, "y": 0.0, "size": 0.0}
        if k != self.slots:
            raise ValueError(f"layouts of {k} slots for a network of {self.slots}")
        for j in range(k):
            live = counts > j  # a digit in slot j
            asked = counts >= j  # slot j's stop is learnt up to one past the last digit
            h, ctx, u = self.step(h, ctx, prev, placed, memory, mask)
            stop = F.binary_cross_entropy_with_logits(
                self.stop(u).squeeze(1), (~live).float(), reduction="none"
            )
            parts["stop"] = parts["stop"] + (stop * asked).sum()
            ce = [F.cross_entropy(self.cls(u), cls[:, j], reduction="none")]
            ce += [F.cross_entropy(lg, t[:, j], reduction="none")
                   for lg, t in zip(self.where(u, cls[:, j], x[:, j], y[:, j]), (x, y, s))]  # fmt: skip
            for name, c in zip(("class", "x", "y", "size"), ce):
                parts[name] = parts[name] + (c * live).sum()
            prev = (cls[:, j] + 1, x[:, j] + 1, y[:, j] + 1, s[:, j] + 1)
            placed = self.place(placed, j, cls[:, j], x[:, j], y[:, j], s[:, j], live)
        total = sum(parts.values()) / n
        return total, {k: v.detach() if torch.is_tensor(v) else torch.tensor(v) for k, v in parts.items()}

    # ---- sampling
    @torch.no_grad()
    def sample(self, tokens, *, generator: torch.Generator | None = None, temperature: float = 1.0):
        """Layouts of the captions: per caption ``(labels (k,), centres (k, 2) pixels, sizes (k,))``."""

        def draw(logits):
            p = torch.softmax(logits.float().cpu() / max(temperature, 1e-6), 1)
            return torch.multinomial(p, 1, generator=generator).squeeze(1).to(logits.device)

        memory, mask, h = self.encode(tokens)
        n = tokens.shape[0]
        ctx = torch.zeros_like(h)
        prev = tuple(torch.zeros(n, dtype=torch.long, device=h.device) for _ in range(4))
        placed = h.new_zeros(n, self.slots, 4 + self.num_classes)
        done = torch.zeros(n, dtype=torch.bool, device=h.device)
        picks = []
        for j in range(self.slots):
            h, ctx, u = self.step(h, ctx, prev, placed, memory, mask)
            p_stop = torch.sigmoid(self.stop(u).squeeze(1).float()).cpu()
            done = done | (torch.rand(n, generator=generator) < p_stop).to(done.device)
            cls = draw(self.cls(u))
            x = draw(self.where(u, cls)[0])
            y = draw(self.where(u, cls, x)[1])
            s = draw(self.where(u, cls, x, y)[2])
            picks.append((~done, cls, x, y, s))
            prev = (cls + 1, x + 1, y + 1, s + 1)
            placed = self.place(placed, j, cls, x, y, s, ~done)
        out = []
        for i in range(n):
            slots = [(int(c[i]), int(x[i]), int(y[i]), int(s[i])) for live, c, x, y, s in picks if live[i]]
            labels = torch.tensor([c for c, *_ in slots], dtype=torch.long)
            centres = torch.tensor([[(x + 0.5) * self.width / self.bins, (y + 0.5) * self.height / self.bins]
                                    for _, x, y, _ in slots], dtype=torch.float32).reshape(-1, 2)  # fmt: skip
            sizes = torch.tensor([s + self.min_size for *_, s in slots], dtype=torch.long)
            out.append((labels, centres, sizes))
        return out


class GlyphBank(nn.Module):
    """Real 28x28 digits, ``per_class`` of each class (uint8 buffer, filled by the task), drawn at random."""

    def __init__(self, num_classes: int = 10, per_class: int = 100):
        super().__init__()
        self.register_buffer("glyphs", torch.zeros(num_classes, per_class, 28, 28, dtype=torch.uint8))

    def forward(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        pick = torch.randint(0, self.glyphs.shape[1], (len(labels),), generator=generator).to(labels.device)
        return self.glyphs[labels, pick].float() / 255


class GlyphGan(nn.Module):
    """A class-conditional GAN generator (28x28, one channel) as a glyph source: digits in [0, 1]."""

    def __init__(self, num_classes: int = 10, latent: int = 64, width: int = 32):
        super().__init__()
        self.generator = Generator(latent=latent, in_chans=1, img_size=28, width=width, num_classes=num_classes,
                                   conditional=True)  # fmt: skip

    def forward(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(len(labels), self.generator.latent, generator=generator).to(labels.device)
        return ((self.generator(z, labels).float()[:, 0] + 1) / 2).clamp(0, 1)


def render(
    glyphs: torch.Tensor, centres: torch.Tensor, sizes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """A (1, H, W) scene in [0, 1]: 28x28 ``glyphs`` (k, 28, 28) in [0, 1] scaled to ``sizes`` and drawn with max,
    each with its ink's box centred on ``centres`` (k, 2) pixel x, y and moved inside the canvas."""
    from deeper.data.scenes import INK_MIN

    scene = torch.zeros(1, height, width, device=glyphs.device)
    for g, (cx, cy), s in zip(glyphs, centres.tolist(), sizes.tolist()):
        cell = F.interpolate(
            g[None, None], size=(s, s), mode="bilinear", antialias=True, align_corners=False
        )[0, 0]
        cell = torch.where(cell * 255 < INK_MIN, torch.zeros_like(cell), cell.clamp(0, 1))
        rows, cols = cell.amax(1).nonzero().flatten(), cell.amax(0).nonzero().flatten()
        if len(rows) == 0:
            continue  # a blank glyph: nothing to draw
        y1, y2, x1, x2 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        h, w = min(y2 - y1, height), min(x2 - x1, width)
        top = min(max(round(cy - h / 2), 0), height - h)
        left = min(max(round(cx - w / 2), 0), width - w)
        region = scene[0, top : top + h, left : left + w]
        torch.maximum(region, cell[y1 : y1 + h, x1 : x1 + w], out=region)
    return scene


class LayoutToImage(nn.Module):
    """Both stages: :class:`LayoutNet` (trained) and a glyph source (fixed); ``forward`` is the layout loss."""

    def __init__(self, layout: LayoutNet, glyphs: nn.Module):
        super().__init__()
        self.layout, self.glyphs = layout, glyphs
        self.glyphs.requires_grad_(False)

    def train(self, mode: bool = True):  # the glyph source stays as it was trained (batch norm's statistics)
        super().train(mode)
        self.glyphs.eval()
        return self

    def forward(self, tokens, labels, centres, sizes, counts):
        return self.layout.loss(tokens, labels, centres, sizes, counts)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, *, generator: torch.Generator | None = None,
                 temperature: float = 1.0) -> tuple[torch.Tensor, list]:  # fmt: skip
        """Scenes (N, 1, H, W) in [0, 1] for caption token ids (N, L), and their layouts."""
        layouts = self.layout.sample(tokens, generator=generator, temperature=temperature)
        lay = self.layout
        scenes = []
        for labels, centres, sizes in layouts:
            glyphs = (
                self.glyphs(labels.to(tokens.device), generator) if len(labels) else torch.zeros(0, 28, 28)
            )
            scenes.append(render(glyphs, centres, sizes, lay.height, lay.width))
        return torch.stack(scenes), layouts
