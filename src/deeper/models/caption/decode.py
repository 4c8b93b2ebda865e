"""Writing captions with a trained decoder: greedy decoding and beam search.

Both work on any :class:`~deeper.models.caption.nic.CaptionModel` (``start`` and
``step``), a batch of images at once, and stop a caption at ``<end>`` or after
``max_len`` tokens (the ``<end>`` counted: a caption cut by the limit has
``max_len`` words and no end).  A caption's ``logprob`` is the sum of the log
probabilities of its words and of its ``<end>``.

- **greedy**: at every step the most probable word;
- **beam search** of width K: the K most probable partial captions are kept at every
  step; each is extended by every word, and the K best of those ``K x V`` extensions
  (by total log probability) survive.  A finished caption stays in the beam with its
  score (it is extended by nothing, at no cost), so it competes with the unfinished
  ones until the end.  Width 1 is greedy decoding.  No length normalisation: the most
  probable sentence wins, as in NIC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deeper.models.caption.nic import select_rows
from deeper.models.caption.vocab import END_ID, PAD_ID, START_ID


@dataclass
class Hypothesis:
    """One caption as word ids (no ``<start>``, no ``<end>``), its log probability and, for attention
    models, the attention of every step (``(len(ids) + 1, L)`` with the ``<end>`` step when it ended)."""

    ids: list[int]
    logprob: float
    ended: bool
    attention: torch.Tensor | None = None


def _word_logprobs(logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Log probabilities of the next word; ``<pad>`` and ``<start>`` are never words."""
    logits = logits.to(dtype=dtype, copy=True)
    logits[:, PAD_ID] = float("-inf")
    logits[:, START_ID] = float("-inf")
    return torch.log_softmax(logits, -1)


def _cut(row: list[int]) -> tuple[list[int], bool]:
    return (row[: row.index(END_ID)], True) if END_ID in row else (row, False)


@torch.inference_mode()
def greedy(model, images: torch.Tensor, max_len: int = 24) -> list[Hypothesis]:
    """The greedy caption of every image."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    state = model.start(images)
    n = images.shape[0]
    tokens = torch.full((n,), START_ID, dtype=torch.long, device=images.device)
    done = torch.zeros(n, dtype=torch.bool, device=images.device)
    total = torch.zeros(n, dtype=torch.float64, device=images.device)
    words, alphas = [], []
    for _ in range(max_len):
        logits, state, alpha = model.step(tokens, state)
        logp = _word_logprobs(logits, torch.float32)
        nxt = logp.argmax(-1)
        total += torch.where(done, 0.0, logp.gather(1, nxt[:, None])[:, 0].double())
        nxt = torch.where(done, PAD_ID, nxt)
        words.append(nxt)
        if alpha is not None:
            alphas.append(alpha.float())
        done |= nxt == END_ID
        tokens = nxt
        if bool(done.all()):
            break
    ids = torch.stack(words, 1).tolist()
    att = torch.stack(alphas, 1).cpu() if alphas else None
    out = []
    for i, row in enumerate(ids):
        kept, ended = _cut(row)
        a = att[i, : len(kept) + ended] if att is not None else None
        out.append(Hypothesis(kept, float(total[i]), ended, a))
    return out


@torch.inference_mode()
def beam_search(model, images: torch.Tensor, width: int = 3, max_len: int = 24) -> list[list[Hypothesis]]:
    """Per image, the ``width`` best captions the beam search finds, the most probable first."""
    if width < 1:
        raise ValueError(f"beam width must be at least 1, got {width}")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    b, k, dev = images.shape[0], width, images.device
    state = select_rows(model.start(images), torch.arange(b, device=dev).repeat_interleave(k))
    scores = torch.full((b, k), float("-inf"), dtype=torch.float64, device=dev)
    scores[:, 0] = 0.0  # one live beam per image at the start
    tokens = torch.full((b * k,), START_ID, dtype=torch.long, device=dev)
    finished = torch.zeros(b * k, dtype=torch.bool, device=dev)
    history = torch.zeros(b * k, 0, dtype=torch.long, device=dev)
    attention = None
    for _ in range(max_len):
        logits, state, alpha = model.step(tokens, state)
        logp = _word_logprobs(logits, torch.float64)
        v = logp.shape[1]
        logp[finished] = float("-inf")
        logp[finished, PAD_ID] = 0.0  # a finished caption keeps its score
        top, idx = (scores.reshape(-1, 1) + logp).reshape(b, k * v).topk(k, dim=1)
        rows = (torch.arange(b, device=dev)[:, None] * k + torch.div(idx, v, rounding_mode="floor")).reshape(
            -1
        )
        word = (idx % v).reshape(-1)
        state = select_rows(state, rows)
        history = torch.cat([history[rows], word[:, None]], 1)
        if alpha is not None:
            step_att = alpha.float()[rows][:, None]
            attention = step_att if attention is None else torch.cat([attention[rows], step_att], 1)
        finished = finished[rows] | (word == END_ID)
        scores, tokens = top, word
        if bool(finished.all()):
            break
    ids, scores = history.tolist(), scores.cpu().tolist()
    att = attention.cpu() if attention is not None else None
    out = []
    for i in range(b):
        hyps = []
        for j in range(k):
            if scores[i][j] == float("-inf"):
                continue
            kept, ended = _cut(ids[i * k + j])
            a = att[i * k + j, : len(kept) + ended] if att is not None else None
            hyps.append(Hypothesis(kept, scores[i][j], ended, a))
        out.append(hyps)
    return out
