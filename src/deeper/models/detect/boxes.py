"""Box arithmetic shared by the detectors: IoU, the centre-size encoding of box offsets, NMS.

Boxes are float pixel ``xyxy`` (``x2``/``y2`` one past the last pixel, as the scenes store
them).  The encoding is the one of R-CNN's box regression, also used by Fast/Faster R-CNN
and SSD (SSD's "variances" 0.1/0.2 are the weights 10, 10, 5, 5):

    tx = wx (gx - px) / pw      ty = wy (gy - py) / ph
    tw = ww log(gw / pw)        th = wh log(gh / ph)

with ``(px, py, pw, ph)`` the centre and size of the reference box (a proposal, an anchor,
a default box) and ``(gx, gy, gw, gh)`` those of the box it should become.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import batched_nms, box_iou, nms

__all__ = [
    "box_iou",
    "paired_iou",
    "nms",
    "batched_nms",
    "encode",
    "decode",
    "to_cxcywh",
    "to_xyxy",
    "select",
    "clip",
]

#: the largest log-scale a decoded offset may have (torchvision's bound: exp(4.135) = 62.5x)
MAX_LOG_SCALE = math.log(1000.0 / 16)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of corresponding boxes (broadcast over leading dimensions): (..., 4), (..., 4) -> (...)."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def encode(boxes: torch.Tensor, refs: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Offsets (..., 4) that turn reference boxes ``refs`` into ``boxes`` (both (..., 4) xyxy)."""
    g, p = to_cxcywh(boxes), to_cxcywh(refs)
    wx, wy, ww, wh = weights
    pw, ph = p[..., 2].clamp(min=1e-6), p[..., 3].clamp(min=1e-6)
    return torch.stack(
        [
            wx * (g[..., 0] - p[..., 0]) / pw,
            wy * (g[..., 1] - p[..., 1]) / ph,
            ww * torch.log(g[..., 2].clamp(min=1e-6) / pw),
            wh * torch.log(g[..., 3].clamp(min=1e-6) / ph),
        ],
        -1,
    )


def decode(deltas: torch.Tensor, refs: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """The boxes (..., 4) xyxy that offsets ``deltas`` make of reference boxes ``refs`` (inverse of :func:`encode`)."""
    p = to_cxcywh(refs)
    wx, wy, ww, wh = weights
    dw = (deltas[..., 2] / ww).clamp(max=MAX_LOG_SCALE)
    dh = (deltas[..., 3] / wh).clamp(max=MAX_LOG_SCALE)
    cx = p[..., 0] + deltas[..., 0] / wx * p[..., 2]
    cy = p[..., 1] + deltas[..., 1] / wy * p[..., 3]
    return to_xyxy(torch.stack([cx, cy, p[..., 2] * dw.exp(), p[..., 3] * dh.exp()], -1))


def clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)], -1)


def select(
    boxes: torch.Tensor, scores: torch.Tensor, *, score_thresh: float, nms_thresh: float, max_det: int,
    pre_nms: int = 1000, min_side: float = 1.0,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Detections of one image from candidate boxes and class scores.

    ``boxes``: (K, 4) shared by all classes, or (K, C, 4) one per class; ``scores`` (K, C).
    Every (box, class) pair above ``score_thresh`` is a candidate (the best ``pre_nms``
    of them), NMS runs per class, and the best ``max_det`` survivors are returned as
    ``{"boxes" (n, 4), "scores" (n,), "labels" (n,)}`` (labels 0-based).
    """
    k, c = scores.shape
    if boxes.dim() == 2:
        boxes = boxes[:, None, :].expand(k, c, 4)
    flat = scores.reshape(-1)
    keep = torch.nonzero(flat > score_thresh).squeeze(1)
    if keep.numel() > pre_nms:
        keep = keep[flat[keep].topk(pre_nms).indices]
    cand_scores = flat[keep]
    labels = keep % c
    cand = boxes.reshape(-1, 4)[keep]
    wide = ((cand[:, 2] - cand[:, 0]) >= min_side) & ((cand[:, 3] - cand[:, 1]) >= min_side)
    cand, cand_scores, labels = cand[wide], cand_scores[wide], labels[wide]
    kept = batched_nms(cand.float(), cand_scores.float(), labels, nms_thresh)[:max_det]
    return {"boxes": cand[kept].float(), "scores": cand_scores[kept].float(), "labels": labels[kept]}
