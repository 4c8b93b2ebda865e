"""Text-to-image helpers: the captions' words as token ids, and a reader that checks a generated scene against its prompt.

The reader finds the digits of a generated scene as connected blobs of ink (8-connected pixels above
0.35 of full intensity, blobs whose boxes overlap merged, specks under 20 pixels dropped), crops each to MNIST's
format (the ink's box scaled to fit 20x20, centred in 28x28) and labels it with a classifier trained
here: either one of the source digits, or (better) one of the reader's own crops of real training
scenes (:func:`reader_crops`), which have been resized into the scene and cut out again as the
reader cuts them; :func:`~deeper.data.captions.meaning_holds` then says whether the prompt's
meaning holds for those boxes and labels.  Its accuracy on real scenes (their own captions read
back) is the ceiling of the figure and is reported beside it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import torch
import torch.nn.functional as F

from deeper.errors import ConfigError

PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"[a-z0-9]+|[,:]")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TextVocab:
    """Words of the training captions; id 0 is padding (and the empty, unconditional caption), 1 unknown."""

    def __init__(self, words):
        self.words = ["<pad>", "<unk>", *sorted(set(words) - {"<pad>", "<unk>"})]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions) -> TextVocab:
        return cls(w for c in captions for w in tokenize(c))

    def encode(self, texts: list[str], length: int | None = None) -> torch.Tensor:
        ids = [[self.index.get(w, UNK_ID) for w in tokenize(t)] for t in texts]
        n = length or max(1, max((len(i) for i in ids), default=1))
        out = torch.zeros(len(ids), n, dtype=torch.long)
        for row, i in zip(out, ids):
            row[: min(n, len(i))] = torch.tensor(i[:n], dtype=torch.long)
        return out

    def unknown(self, text: str) -> list[str]:
        return [w for w in tokenize(text) if w not in self.index]

    def to_json(self) -> str:
        return json.dumps(self.words[2:])

    @classmethod
    def from_json(cls, text: str) -> TextVocab:
        try:
            words = json.loads(text)
        except (TypeError, ValueError):
            raise ConfigError("unreadable vocabulary in the weights' metadata") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ConfigError("the vocabulary in the weights' metadata is not a list of words")
        return cls(words)


def find_blobs(image: np.ndarray, *, threshold: float = 0.35, min_area: int = 20) -> np.ndarray:
    """Boxes (k, 4) pixel xyxy (x2, y2 one past the ink) of the ink blobs of a (H, W) image in [0, 1]."""
    from skimage.measure import label, regionprops

    regions = [r for r in regionprops(label(image > threshold, connectivity=2)) if r.area >= min_area]
    boxes = [
        [r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]] for r in regions
    ]  # (min_row, min_col, max_row, max_col)
    merged = True
    while merged:  # pieces of one digit: boxes that overlap become one
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return np.array(sorted(boxes), dtype=np.float32).reshape(-1, 4)


def mnist_crop(image: torch.Tensor, box) -> torch.Tensor:
    """The ink in ``box`` of a (1, H, W) image, scaled to fit 20x20 and centred in 28x28 (MNIST's format)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = image[:, y1:y2, x1:x2]
    h, w = crop.shape[1:]
    side = max(h, w)
    square = F.pad(
        crop, ((side - w) // 2, side - w - (side - w) // 2, (side - h) // 2, side - h - (side - h) // 2)
    )
    small = F.interpolate(square[None], size=(20, 20), mode="bilinear", antialias=True, align_corners=False)[
        0
    ]
    return F.pad(small, (4, 4, 4, 4))


def reader_crops(images: torch.Tensor, boxes, labels, counts) -> tuple[torch.Tensor, torch.Tensor]:
    """The reader's crops (uint8, (N, 1, 28, 28)) of real scenes and their true labels: every blob whose centre
    lies in exactly one digit's box (scenes ``images`` uint8 (S, 1, H, W), ``boxes`` (S, k, 4) xyxy,
    ``labels`` (S, k), ``counts`` (S,)): the training set of a reader that sees digits as it will cut them."""
    crops, truth = [], []
    for img, b, lab, k in zip(images, boxes, labels, counts):
        x = img.float() / 255
        b, lab = torch.as_tensor(b)[: int(k)].float(), torch.as_tensor(lab)[: int(k)]
        for blob in find_blobs(x[0].numpy()):
            cx, cy = (blob[0] + blob[2]) / 2, (blob[1] + blob[3]) / 2
            inside = (
                ((b[:, 0] <= cx) & (cx <= b[:, 2]) & (b[:, 1] <= cy) & (cy <= b[:, 3])).nonzero().flatten()
            )
            if len(inside) == 1:
                crops.append(mnist_crop(x, blob))
                truth.append(int(lab[inside[0]]))
    if not crops:
        raise ConfigError("no digit of the scenes could be cut out for the reader")
    return (torch.stack(crops) * 255).round().to(torch.uint8), torch.tensor(truth, dtype=torch.long)


def train_reader(scenes, *, epochs: int = 4, seed: int = 0):
    """The reader's digit classifier (a LeNet-5, as a FeatureNet) trained on its own crops of ``scenes`` (a scenes
    dataset with boxes and labels, such as the training split of ``scenes-cap``)."""
    from deeper.generate.features import train_classifier

    crops, truth = reader_crops(scenes.images, scenes.boxes, scenes.labels, scenes.counts)
    return train_classifier(
        crops, truth, len(scenes.classes), epochs=epochs, seed=seed, on="the training scenes' crops"
    )


@torch.no_grad()
def read_scenes(images: torch.Tensor, classifier) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(boxes, labels)`` of each (1, H, W) scene in [0, 1], the labels from ``classifier`` (a FeatureNet)."""
    out, crops, owners = [], [], []
    for i, img in enumerate(images.float().cpu()):
        boxes = find_blobs(img[0].numpy())
        out.append([boxes, None])
        for b in boxes:
            crops.append(mnist_crop(img, b))
            owners.append(i)
    labels = np.zeros(0, dtype=np.int64)
    if crops:
        device = next(classifier.parameters()).device
        labels = classifier(torch.stack(crops).to(device))[1].argmax(1).cpu().numpy()
    owners = np.array(owners, dtype=np.int64)
    return [(b, labels[owners == i]) for i, (b, _) in enumerate(out)]


def prompt_matches(
    images: torch.Tensor, prompts: list[str], classifier, classes: tuple[str, ...]
) -> list[bool]:
    """Whether each generated scene, as read back, is described truly by its prompt."""
    from deeper.data.captions import CaptionError, meaning_holds, parse_caption

    answers = []
    for (boxes, labels), prompt in zip(read_scenes(images, classifier), prompts):
        try:
            meaning = parse_caption(prompt, classes)
        except CaptionError:
            answers.append(False)
            continue
        answers.append(bool(meaning_holds(meaning, boxes, labels)))
    return answers
