"""Words of captions: tokenisation and the vocabulary saved with a captioning model's weights.

Captions are lower-cased and split into words, with ``:`` and ``,`` as tokens of their
own (``"three digits: 3, 7 and 1"`` is ``three digits : 3 , 7 and 1``);
:func:`detokenize` joins them back, so a caption of the scene grammar survives the
round trip unchanged.  The vocabulary starts with four special tokens: ``<pad>`` (0,
fills short captions in a batch and is never a target), ``<start>`` (1, the first
input of every caption), ``<end>`` (2, the last target: decoding stops there) and
``<unk>`` (3, any word the training captions did not hold); then the training
captions' words in sorted order, so the same captions always give the same ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from deeper.errors import CheckpointError, ConfigError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)
#: no vocabulary is larger than this (a weights file claiming more is refused)
MAX_WORDS = 100_000
_TOKEN = re.compile(r"[^\s,:]+|[,:]")


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``, with ``:`` and ``,`` as tokens of their own."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Iterable[str]) -> str:
    """The caption the tokens spell (no space before ``:`` and ``,``)."""
    return re.sub(r" ([,:])", r"\1", " ".join(tokens))


def spaced(text: str) -> str:
    """``text`` with its tokens separated by single spaces (what BLEU and CIDEr split on)."""
    return " ".join(tokenize(text))


class Vocabulary:
    """Word <-> id, specials first (:data:`SPECIALS`)."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ConfigError(f"a vocabulary starts with {', '.join(SPECIALS)}")
        if len(set(words)) != len(words):
            raise ConfigError("a vocabulary holds each word once")
        if len(words) > MAX_WORDS:
            raise ConfigError(f"a vocabulary of {len(words):,} words; the limit is {MAX_WORDS:,}")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], *, min_count: int = 1) -> Vocabulary:
        """The words of ``captions`` seen at least ``min_count`` times, sorted, after the specials."""
        counts = Counter(t for c in captions for t in tokenize(c))
        return cls([*SPECIALS, *sorted(w for w, n in counts.items() if n >= min_count and w not in SPECIALS)])

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def ids(self, text: str) -> list[int]:
        """``<start>``, the caption's word ids (``<unk>`` for unknown words), ``<end>``."""
        return [START_ID, *(self.index.get(t, UNK_ID) for t in tokenize(text)), END_ID]

    def encode(self, texts: Sequence[str], length: int | None = None) -> torch.Tensor:
        """int64 (N, length) of :meth:`ids` padded with ``<pad>`` (length: the longest; longer ones are cut
        and keep no ``<end>``)."""
        rows = [self.ids(t) for t in texts]
        length = max(map(len, rows), default=2) if length is None else length
        out = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
        for i, r in enumerate(rows):
            r = r[:length]
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids`` up to the first ``<end>``, without ``<start>`` and ``<pad>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (START_ID, PAD_ID):
                continue
            out.append(self.words[i] if 0 <= i < len(self.words) else UNK)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return detokenize(self.tokens(ids))

    # ---- saved with the weights (safetensors metadata is strings)
    def to_json(self) -> str:
        return json.dumps(self.words, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, source: str = "weights") -> Vocabulary:
        """The vocabulary recorded as ``text``; a :class:`CheckpointError` naming ``source`` if it is not one."""
        try:
            words = json.loads(text)
        except (ValueError, TypeError):
            raise CheckpointError(f"{source}: unreadable vocabulary in the metadata") from None
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise CheckpointError(f"{source}: the vocabulary in the metadata is not a list of words")
        try:
            return cls(words)
        except ConfigError as e:
            raise CheckpointError(f"{source}: {e}") from None
