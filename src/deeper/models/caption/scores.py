"""Scores of generated captions against reference captions: CIDEr-D, and the metrics that keep them.

Sentences are compared as space-separated tokens (:func:`~deeper.models.caption.vocab.spaced`).

**CIDEr-D** (Vedantam et al., 2015, the ``-D`` variant of the MS COCO evaluation server,
as pycocoevalcap computes it): for each n = 1..4, every sentence becomes a vector of
its n-grams' ``tf-idf`` weights, ``g_k(s) = count_k(s) * log(|I| / max(1, df_k))``,
where ``|I|`` is the number of images in the corpus and ``df_k`` the number of images
whose references contain the n-gram (the candidates do not count).  With ``c`` the
candidate and ``s_j`` the m references of its image::

    CIDEr-D_n(c, S) = 10/m * sum_j exp(-(l(c) - l(s_j))^2 / (2 sigma^2))
                      * sum_k min(g_k(c), g_k(s_j)) g_k(s_j) / (|g(c)| |g(s_j)|)
    CIDEr-D(c, S)   = mean over n = 1..4 of CIDEr-D_n

(``sigma = 6``; ``l``: the length in words; the ``min`` clips the candidate's counts so
that repeating a word earns nothing).  The corpus score is the mean over the images.
A cosine with a zero vector is 0.  One detail differs from pycocoevalcap's code: it
takes the lengths as numbers of bigrams (one less than the words), which changes the
penalty only when a sentence has a single word.

**BLEU-n** comes from torchmetrics (corpus BLEU, clipped n-gram precisions against all
references of an image, geometric mean of orders 1..n, the brevity penalty with the
closest reference length).  :class:`Bleu` and :class:`CiderD` are torchmetrics metrics
updated with ``(hypotheses, references)``: lists of strings and of lists of strings.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.text import BLEUScore

from deeper.models.caption.vocab import spaced

NGRAMS = 4
SIGMA = 6.0


def ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, n: int = NGRAMS, sigma: float = SIGMA
) -> tuple[float, list[float]]:
    """``(corpus CIDEr-D, per-image scores)`` of ``hypotheses[i]`` against ``references[i]``
    (strings split on spaces; see the module docstring for the definition)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        return 0.0, []
    hyp_words = [h.split() for h in hypotheses]
    ref_words = [[r.split() for r in refs] for refs in references]
    if any(not refs for refs in ref_words):
        raise ValueError("every image needs at least one reference")
    df: Counter = Counter()
    for refs in ref_words:
        df.update({g for r in refs for k in range(1, n + 1) for g in ngrams(r, k)})
    log_images = math.log(len(hypotheses))

    def vectors(words):
        vec, norm = [], []
        for k in range(1, n + 1):
            v = {g: c * (log_images - math.log(max(1.0, df[g]))) for g, c in ngrams(words, k).items()}
            vec.append(v)
            norm.append(math.sqrt(sum(x * x for x in v.values())))
        return vec, norm

    scores = []
    for hyp, refs in zip(hyp_words, ref_words):
        vh, nh = vectors(hyp)
        total = 0.0
        for ref in refs:
            vr, nr = vectors(ref)
            penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2))
            for k in range(n):
                if nh[k] == 0 or nr[k] == 0:
                    continue
                dot = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                total += penalty * dot / (nh[k] * nr[k])
        scores.append(10.0 * total / n / len(refs))
    return sum(scores) / len(scores), scores


def _bytes(text: str, device) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8, device=device)


def _text(t: torch.Tensor) -> str:
    return bytes(t.cpu().tolist()).decode("utf-8")


class CiderD(Metric):
    """Corpus CIDEr-D (:func:`cider_d`) of every ``update(hypotheses, references)``.

    The sentences are kept as UTF-8 byte tensors (list states, concatenated across
    processes): CIDEr's idf is a property of the whole corpus, so it is computed at the end.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hyps", default=[], dist_reduce_fx="cat")
        self.add_state("refs", default=[], dist_reduce_fx="cat")

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        for h, refs in zip(hypotheses, references, strict=True):
            self.hyps.append(_bytes(spaced(h) + "\0", self.device))
            self.refs.append(_bytes("\n".join(spaced(r) for r in refs) + "\0", self.device))

    def compute(self) -> torch.Tensor:
        def split(states):
            if isinstance(states, torch.Tensor):  # concatenated across processes
                states = [states]
            return [s for t in states for s in _text(t).split("\0")[:-1]]

        hyps, refs = split(self.hyps), [r.split("\n") for r in split(self.refs)]
        return torch.tensor(cider_d(hyps, refs)[0], dtype=torch.float64)


class Bleu(BLEUScore):
    """torchmetrics' corpus BLEU-n on the captions' tokens (``:`` and ``,`` count as words)."""

    def __init__(self, n_gram: int = 4, **kwargs):
        super().__init__(n_gram=n_gram, **kwargs)

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        super().update([spaced(h) for h in hypotheses], [[spaced(r) for r in refs] for refs in references])
