"""Captions of digit scenes: a small grammar, its generator, its parser and its truth check.

Every caption is one lower-case sentence of the grammar below (no final period; the
parser also accepts capitals, a final period and extra spaces).  ``NAME`` is a class
name in lower case (``0`` ... ``9`` for MNIST digits, ``trouser``, ``ankle boot``, ...
for Fashion-MNIST), ``PLURAL`` is ``NAME`` + ``s`` (``es`` after s, sh, ch, x: ``3s``,
``dresses``), ``NOUN`` is ``digit``/``digits`` (MNIST) or ``item``/``items``
(Fashion-MNIST; the parser takes either, and ``object(s)``), ``NUMBER`` is a number
word ``one`` ... ``twenty`` (or numerals), ``OBJ`` is ``a NAME`` or ``an NAME``::

    caption  := count | order | tally | relation | extreme | only | exists
    count    := NUMBER NOUN ":" list            "three digits: 3, 7 and 1"
    order    := "from left to right:" list      "from left to right: 3, 7 and 1"
    tally    := item ("," item)* " and " item   "two 3s and a 7", "a 3, a 7 and a 1"
              | item                            "a 3"
    item     := OBJ | NUMBER PLURAL             "a 7", "two 3s"
    relation := ["there is "] OBJ REL OBJ       "a 3 to the left of a 7", "there is a 7 right of a 3"
    REL      := "to the left of" | "left of" | "to the right of" | "right of" | "above" | "below"
    extreme  := "the " SIDE " " NOUN " is " OBJ "the leftmost digit is a 3"
    SIDE     := "leftmost" | "rightmost" | "topmost" | "bottommost"
    only     := "the only " NOUN " is " OBJ     "the only digit is a 3"
              | "a single " NAME                "a single 3"
    exists   := "there is " OBJ                 "there is a 3"
    list     := NAME ("," NAME)* " and " NAME | NAME

What a caption asserts (:class:`CaptionMeaning`; checked by :func:`meaning_holds`),
with boxes in pixel ``xyxy`` (``x2``, ``y2`` one past the last ink column/row) and
``cx``, ``cy`` a box's centre:

- *count*: the scene holds exactly NUMBER objects, and the list is their classes (as a
  multiset; the generator lists them left to right);
- *order*: the classes sorted by ``cx`` are the list (objects with equal ``cx`` may
  come in either order);
- *tally*: the items are the scene's exact class counts (``a 7`` = one 7, and nothing
  that is not named);
- *relation*: some object of the first class and some other object of the second
  stand in the relation: ``A left of B`` is ``A.x2 <= B.x1``, ``A right of B`` is
  ``B.x2 <= A.x1``, ``A above B`` is ``A.y2 <= B.y1``, ``A below B`` is ``B.y2 <= A.y1``
  (the boxes do not overlap along that axis, so the relation is unambiguous);
- *extreme*: an object with the least ``cx`` (leftmost), greatest ``cx`` (rightmost),
  least ``cy`` (topmost) or greatest ``cy`` (bottommost) is of that class;
- *only*: the scene is exactly that one object; *exists*: some object is of that class.

:func:`describe_scene` writes :data:`NUM_CAPTIONS` (six) paraphrases per scene, always
true by construction: count, order, tally, one horizontal relation, one vertical
relation and one extreme (a random true pair and a random wording; when no pair is
apart along an axis the relation is replaced by an extreme; a one-object scene gets
``there is``, ``a single`` and ``the only`` instead of the relations and extreme).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

NUM_CAPTIONS = 6
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
RELATIONS = {"to the left of": "left", "left of": "left", "to the right of": "right", "right of": "right"}
RELATIONS |= {"above": "above", "below": "below"}
SIDES = ("leftmost", "rightmost", "topmost", "bottommost")
_NOUNS = r"(?:digits?|items?|objects?)"


def caption_names(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The words the captions use for ``classes``: lower case, single spaces."""
    return tuple(" ".join(c.lower().split()) for c in classes)


def noun_for(classes: tuple[str, ...]) -> str:
    """``digit`` when the classes are the ten digits, else ``item``."""
    return "digit" if tuple(classes) == tuple(str(i) for i in range(10)) else "item"


def article(name: str) -> str:
    return "an" if name[:1] in "aeiou8" else "a"


def plural(name: str) -> str:
    return name + ("es" if name.endswith(("s", "sh", "ch", "x")) else "s")


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _obj(name: str) -> str:
    return f"{article(name)} {name}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------------------------------------
# generation


def left_to_right(boxes: np.ndarray) -> np.ndarray:
    """Object indices sorted by box centre x (ties: by index)."""
    cx = boxes[:, 0] + boxes[:, 2]
    return np.lexsort((np.arange(len(boxes)), cx))


def _pairs(boxes: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """``(a, b)`` with box ``a`` wholly before box ``b`` along ``axis`` (0: x, left of; 1: y, above)."""
    lo, hi = boxes[:, axis], boxes[:, axis + 2]
    before = hi[:, None] <= lo[None, :]
    return list(zip(*(v.tolist() for v in np.nonzero(before))))


def _far(pairs: list[tuple[int, int]], boxes: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """The ``pairs`` that are not neighbours along ``axis``: some other object's centre lies strictly
    between theirs."""
    c = boxes[:, axis] + boxes[:, axis + 2]
    out = []
    for a, b in pairs:
        lo, hi = sorted((c[a], c[b]))
        if any(lo < c[i] < hi for i in range(len(c)) if i not in (a, b)):
            out.append((a, b))
    return out


def describe_scene(
    boxes: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    rng: np.random.Generator,
    noun: str,
    *,
    far_relations: bool = False,
) -> list[str]:
    """:data:`NUM_CAPTIONS` true captions of one scene (``boxes`` (k, 4) xyxy, ``labels`` (k,)).

    ``far_relations``: the relations relate non-neighbours along their axis (another object's
    centre lies between the two) whenever the scene has such a pair (the same random draws
    are made either way)."""
    k = len(labels)
    word = [names[c] for c in labels.tolist()]
    order = left_to_right(boxes).tolist()
    seq = [word[i] for i in order]
    nouns = noun if k == 1 else noun + "s"
    caps = [f"{number_word(k)} {nouns}: {_join(seq)}", f"from left to right: {_join(seq)}"]
    tally = Counter(seq)  # first appearance left to right
    caps.append(_join([_obj(w) if c == 1 else f"{number_word(c)} {plural(w)}" for w, c in tally.items()]))
    if k == 1:
        return caps + [
            f"there is {_obj(word[0])}",
            f"a single {word[0]}",
            f"the only {noun} is {_obj(word[0])}",
        ]
    there = ("", "there is ")
    for axis, (fwd, back) in enumerate((("to the left of", "left of"), ("above", "below"))):
        pairs = _pairs(boxes, axis)
        if far_relations:
            pairs = _far(pairs, boxes, axis) or pairs
        if not pairs:
            side = SIDES[2 * axis]
            caps.append(f"the {side} {noun} is {_obj(_extreme_name(boxes, word, side))}")
            continue
        a, b = pairs[rng.integers(len(pairs))]
        if axis == 0:
            forms = [
                (a, "to the left of", b),
                (a, "left of", b),
                (b, "to the right of", a),
                (b, "right of", a),
            ]
        else:
            forms = [(a, fwd, b), (b, back, a)]
        x, rel, y = forms[rng.integers(len(forms))]
        caps.append(f"{there[rng.integers(2)]}{_obj(word[x])} {rel} {_obj(word[y])}")
    side = SIDES[rng.integers(4)]
    caps.append(f"the {side} {noun} is {_obj(_extreme_name(boxes, word, side))}")
    return caps


def _centres(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2


def _extreme_index(boxes: np.ndarray, side: str) -> np.ndarray:
    """Indices of the objects at the extreme ``side`` (all of them on a tie)."""
    cx, cy = _centres(boxes)
    v = {"leftmost": -cx, "rightmost": cx, "topmost": -cy, "bottommost": cy}[side]
    return np.nonzero(v == v.max())[0]


def _extreme_name(boxes: np.ndarray, word: list[str], side: str) -> str:
    return word[int(_extreme_index(boxes, side)[0])]


# ---------------------------------------------------------------------------------------------
# parsing


class CaptionError(ValueError):
    """A caption outside the grammar (or naming a class the scenes do not have)."""


@dataclass(frozen=True)
class CaptionMeaning:
    """What one caption asserts; classes are indices into the dataset's ``classes``.

    ``form`` is the grammar rule (count, order, tally, relation, extreme, only, exists);
    ``labels`` the classes the caption names, in its order; ``count`` the number of
    objects it asserts (count, only); ``exhaustive``: ``labels`` is the scene's whole
    multiset of classes; ``ordered``: ``labels`` is the left-to-right order;
    ``relation``: ``(a, rel, b)`` with rel one of left, right, above, below;
    ``extreme``: leftmost, rightmost, topmost or bottommost (of ``labels[0]``).
    """

    form: str
    labels: tuple[int, ...]
    count: int | None = None
    exhaustive: bool = False
    ordered: bool = False
    relation: tuple[int, str, int] | None = None
    extreme: str | None = None


@lru_cache(maxsize=16)
def _patterns(names: tuple[str, ...]):
    alt = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    plurals = {plural(n): i for i, n in enumerate(names)}
    palt = "|".join(re.escape(p) for p in sorted(plurals, key=len, reverse=True))
    name = rf"(?:{alt})"
    obj = rf"an? ({alt})"
    num = r"(\d+|" + "|".join(NUMBER_WORDS) + ")"
    lst = rf"({name}(?:, {name})*(?: and {name})?)"
    rel = "|".join(sorted(map(re.escape, RELATIONS), key=len, reverse=True))
    item = rf"(?:an? {name}|{num.replace('(', '(?:')} (?:{palt}))"
    return {
        "count": re.compile(rf"{num} {_NOUNS}: {lst}"),
        "order": re.compile(rf"from left to right: {lst}"),
        "relation": re.compile(rf"(?:there is )?{obj} ({rel}) {obj}"),
        "extreme": re.compile(rf"the ({'|'.join(SIDES)}) {_NOUNS} is {obj}"),
        "only": re.compile(rf"(?:the only {_NOUNS} is {obj}|a single ({alt}))"),
        "exists": re.compile(rf"there is {obj}"),
        "tally": re.compile(rf"({item}(?:, {item})*(?: and {item})?)"),
        "item": re.compile(rf"(?:an? ({alt})|{num} ({palt}))"),
        "plurals": plurals,
    }


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS.index(text)


def _split_list(text: str) -> list[str]:
    return re.split(r", | and ", text)


def parse_caption(text: str, classes: tuple[str, ...] = tuple(str(i) for i in range(10))) -> CaptionMeaning:
    """The :class:`CaptionMeaning` of ``text``; :class:`CaptionError` when it is outside the grammar."""
    names = caption_names(tuple(classes))
    index = {n: i for i, n in enumerate(names)}
    s = " ".join(text.lower().strip().rstrip(".").split())
    s = re.sub(r"\s*,\s*", ", ", s).replace(" :", ":")
    p = _patterns(names)
    if m := p["count"].fullmatch(s):
        labels = tuple(index[w] for w in _split_list(m.group(2)))
        n = _number(m.group(1))
        if n != len(labels):
            raise CaptionError(f"caption {text!r} counts {n} but names {len(labels)}")
        return CaptionMeaning("count", labels, count=n, exhaustive=True)
    if m := p["order"].fullmatch(s):
        return CaptionMeaning("order", tuple(index[w] for w in _split_list(m.group(1))), ordered=True)
    if m := p["relation"].fullmatch(s):
        a, rel, b = index[m.group(1)], RELATIONS[m.group(2)], index[m.group(3)]
        return CaptionMeaning("relation", (a, b), relation=(a, rel, b))
    if m := p["extreme"].fullmatch(s):
        return CaptionMeaning("extreme", (index[m.group(2)],), extreme=m.group(1))
    if m := p["only"].fullmatch(s):
        return CaptionMeaning("only", (index[m.group(1) or m.group(2)],), count=1, exhaustive=True)
    if m := p["exists"].fullmatch(s):
        return CaptionMeaning("exists", (index[m.group(1)],))
    if p["tally"].fullmatch(s):
        labels: list[int] = []
        for part in _split_list(s):
            m = p["item"].fullmatch(part)
            if m.group(1):
                labels.append(index[m.group(1)])
            else:
                labels += [p["plurals"][m.group(3)]] * _number(m.group(2))
        return CaptionMeaning("tally", tuple(labels), exhaustive=True)
    raise CaptionError(f"caption {text!r} is not in the scene grammar")


# ---------------------------------------------------------------------------------------------
# truth


def meaning_holds(meaning: CaptionMeaning, boxes, labels) -> bool:
    """Whether ``meaning`` is true of a scene with ``boxes`` (k, 4) xyxy and ``labels`` (k,)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    if meaning.count is not None and meaning.count != len(labels):
        return False
    if meaning.exhaustive:
        return Counter(meaning.labels) == Counter(labels.tolist())
    if meaning.ordered:
        if len(meaning.labels) != len(labels):
            return False
        cx = boxes[:, 0] + boxes[:, 2]
        order = np.argsort(cx, kind="stable")
        said = np.asarray(meaning.labels)
        # objects tied in cx may be named in any order: compare multisets per run of equal cx
        for v in np.unique(cx):
            run = np.nonzero(cx[order] == v)[0]
            if Counter(labels[order[run]].tolist()) != Counter(said[run].tolist()):
                return False
        return True
    if meaning.relation is not None:
        a, rel, b = meaning.relation
        if rel in ("right", "below"):
            a, b = b, a
        axis = 0 if rel in ("left", "right") else 1
        before = boxes[:, axis + 2][:, None] <= boxes[:, axis][None, :]
        return bool((before & (labels[:, None] == a) & (labels[None, :] == b)).any())
    if meaning.extreme is not None:
        return bool(len(labels)) and meaning.labels[0] in labels[_extreme_index(boxes, meaning.extreme)]
    return all(c in labels.tolist() for c in meaning.labels)


def mention_order(meaning: CaptionMeaning, boxes, labels) -> list[int]:
    """The objects of a scene the caption is true of, in the order the caption names them, then the others left
    to right: for a relation the pair it holds of, for an extreme the object at that side, otherwise each named
    class's leftmost object not named before."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    rest = left_to_right(boxes).tolist()
    first: list[int] = []
    if meaning.relation is not None:
        a, rel, b = meaning.relation
        flip = rel in ("right", "below")
        lo, hi = (b, a) if flip else (a, b)
        axis = 0 if rel in ("left", "right") else 1
        before = boxes[:, axis + 2][:, None] <= boxes[:, axis][None, :]
        pairs = np.argwhere(before & (labels[:, None] == lo) & (labels[None, :] == hi))
        if len(pairs):
            i, j = (int(v) for v in pairs[0])
            first = [j, i] if flip else [i, j]
    elif meaning.extreme is not None:
        first = [int(i) for i in _extreme_index(boxes, meaning.extreme) if labels[i] == meaning.labels[0]][:1]
    else:
        for c in meaning.labels:
            i = next((i for i in rest if labels[i] == c and i not in first), None)
            if i is not None:
                first.append(i)
    return first + [i for i in rest if i not in first]


def caption_holds(
    text: str, boxes, labels, classes: tuple[str, ...] = tuple(str(i) for i in range(10))
) -> bool:
    """Whether ``text`` parses and is true of the scene (False for text outside the grammar)."""
    try:
        meaning = parse_caption(text, classes)
    except CaptionError:
        return False
    return meaning_holds(meaning, boxes, labels)
