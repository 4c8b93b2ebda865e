"""Selective search (Uijlings et al., 2013) for digit scenes: the region proposals of R-CNN, SPPNet and
Fast R-CNN.

1. **Initial regions**: Felzenszwalb-Huttenlocher graph segmentation (scikit-image's ``felzenszwalb``),
   at several scales ``k`` (the diversification over segmentations of the paper).
2. **Background**: regions whose mean intensity is below ``bg_level`` are dropped. On a black canvas
   the background is one region that touches every digit; merging through it would only ever yield
   the whole image, so the grouping runs over the ink regions alone.
3. **Hierarchical grouping**: the two most similar *neighbouring* regions merge, again and again,
   until none are left; similarity is the paper's sum of size, fill and colour (here: intensity
   histogram, 16 bins, histogram intersection) terms. Neighbours are regions whose boxes come
   within ``gap`` pixels of each other (the ink of one digit is often split by a dim stroke, and
   no region touches another through the background).
4. **Proposals**: the boxes of every region of every level of every hierarchy, duplicates removed,
   in pixel ``xyxy`` (``x2``/``y2`` one past the last pixel, as the scene boxes are).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

BINS = 16
#: bumped when the search changes (part of the proposal cache's key)
PROPOSALS_VERSION = 1
#: the search's default settings (also part of the cache key)
SEARCH = {
    "scales": (100, 300, 1000),
    "sigma": 0.5,
    "min_size": 5,
    "bg_level": 0.05,
    "gap": 2.0,
    "min_side": 2.0,
}


def initial_regions(image: np.ndarray, scale: float, *, sigma: float, min_size: int, bg_level: float):
    """``(boxes (n, 4) float64, sizes (n,), hists (n, BINS))`` of the ink regions of one segmentation."""
    from skimage.segmentation import felzenszwalb

    seg = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size, channel_axis=None)
    n = int(seg.max()) + 1
    flat = seg.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    means = np.bincount(flat, weights=image.ravel(), minlength=n) / np.maximum(sizes, 1)
    bins = np.minimum((image.ravel() * BINS).astype(np.int64), BINS - 1)
    hists = np.bincount(flat * BINS + bins, minlength=n * BINS).reshape(n, BINS).astype(np.float64)
    slices = ndimage.find_objects(seg + 1)
    keep = [r for r in range(n) if slices[r] is not None and sizes[r] > 0 and means[r] >= bg_level]
    boxes = np.array(
        [[slices[r][1].start, slices[r][0].start, slices[r][1].stop, slices[r][0].stop] for r in keep],
        dtype=np.float64,
    ).reshape(-1, 4)
    hists = hists[keep] / sizes[keep, None] if keep else np.zeros((0, BINS))
    return boxes, sizes[keep], hists


def group(
    boxes: np.ndarray, sizes: np.ndarray, hists: np.ndarray, *, image_area: float, gap: float
) -> np.ndarray:
    """Every box of the hierarchy that greedy merging of the most similar neighbours builds: (m, 4)."""
    boxes, sizes, hists = list(boxes), list(sizes), list(hists)
    out = list(boxes)
    live = list(range(len(boxes)))

    def pair_scores(i: int, others: list[int]) -> np.ndarray:
        b = np.asarray([boxes[j] for j in others]).reshape(-1, 4)
        a = boxes[i]
        near = (
            (a[0] - gap <= b[:, 2])
            & (b[:, 0] - gap <= a[2])
            & (a[1] - gap <= b[:, 3])
            & (b[:, 1] - gap <= a[3])
        )
        union = (np.maximum(a[2], b[:, 2]) - np.minimum(a[0], b[:, 0])) * (
            np.maximum(a[3], b[:, 3]) - np.minimum(a[1], b[:, 1])
        )
        s = np.asarray([sizes[j] for j in others])
        h = np.asarray([hists[j] for j in others]).reshape(-1, BINS)
        score = (
            (1 - (sizes[i] + s) / image_area)  # size: small regions merge first
            + (1 - (union - sizes[i] - s) / image_area)  # fill: regions that fill each other's gaps
            + np.minimum(hists[i], h).sum(1)  # colour: histogram intersection
        )
        return np.where(near, score, -np.inf)

    n = len(live)
    sim = np.full((n, n), -np.inf)
    for a in range(n):
        if a + 1 < n:
            sim[a, a + 1 :] = pair_scores(live[a], live[a + 1 :])
    sim = np.maximum(sim, sim.T)
    ids = list(live)  # region index of each row of sim
    while len(ids) > 1:
        k = int(np.argmax(sim))
        a, b = divmod(k, len(ids))
        if not np.isfinite(sim[a, b]):
            break
        i, j = ids[a], ids[b]
        bi, bj = boxes[i], boxes[j]
        merged = np.array([min(bi[0], bj[0]), min(bi[1], bj[1]), max(bi[2], bj[2]), max(bi[3], bj[3])])
        size = sizes[i] + sizes[j]
        boxes.append(merged)
        sizes.append(size)
        hists.append((hists[i] * sizes[i] + hists[j] * sizes[j]) / size)
        out.append(merged)
        keep = [r for r in range(len(ids)) if r not in (a, b)]
        sim = sim[np.ix_(keep, keep)]
        ids = [ids[r] for r in keep]
        new = len(boxes) - 1
        row = pair_scores(new, ids) if ids else np.zeros(0)
        sim = np.pad(sim, ((0, 1), (0, 1)), constant_values=-np.inf)
        sim[-1, :-1] = row
        sim[:-1, -1] = row
        ids.append(new)
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def selective_search(image: np.ndarray | torch.Tensor, **settings) -> torch.Tensor:
    """Region proposals of one grey image (H, W) in [0, 1]: float32 (K, 4) pixel xyxy, unique, sorted.

    ``settings`` override :data:`SEARCH`: ``scales`` (Felzenszwalb's k, one segmentation each),
    ``sigma`` (its smoothing), ``min_size`` (its smallest region), ``bg_level`` (regions darker than
    this are background), ``gap`` (pixels between neighbouring regions), ``min_side`` (smallest box side).
    """
    unknown = set(settings) - set(SEARCH)
    if unknown:
        raise ValueError(f"selective_search takes no setting(s) {sorted(unknown)}")
    s = {**SEARCH, **settings}
    scales, sigma, min_size, bg_level, gap, min_side = (
        s["scales"], s["sigma"], s["min_size"], s["bg_level"], s["gap"], s["min_side"]
    )  # fmt: skip
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(0)
    h, w = image.shape
    found = []
    for k in scales:
        boxes, sizes, hists = initial_regions(image, k, sigma=sigma, min_size=min_size, bg_level=bg_level)
        if len(boxes):
            found.append(group(boxes, sizes, hists, image_area=float(h * w), gap=gap))
    if not found:
        return torch.zeros(0, 4)
    b = np.unique(np.concatenate(found), axis=0)
    b = b[((b[:, 2] - b[:, 0]) >= min_side) & ((b[:, 3] - b[:, 1]) >= min_side)]
    return torch.as_tensor(b, dtype=torch.float32)


def batch_proposals(images: torch.Tensor, **options) -> list[torch.Tensor]:
    """Selective search on each image of a batch (B, C, H, W)."""
    return [selective_search(x, **options) for x in images]
