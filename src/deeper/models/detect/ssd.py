"""SSD (Liu et al., 2016): class scores and box offsets for default boxes on feature maps of several scales.

Default boxes tile feature maps of strides 8, 16 and 32 (16x16, 8x8 and 4x4 cells on a
128x128 scene).  The map of stride ``s_k`` has boxes of side ``sizes[k]`` at aspect ratios
(w/h) ``ratios``, plus one square box of side ``sqrt(sizes[k] * sizes[k+1])`` (the paper's
extra scale; the last one uses ``2 * sizes[-1]``).  Digits are taller than wide, so the
default ratios are 1, 1/2 and 1/3: 4 boxes per cell, 1,344 in all at 128x128.

A 3x3 convolution per map predicts, per default box, 4 offsets (the centre-size encoding
with SSD's variances 0.1 and 0.2) and ``C + 1`` class scores (0 = background).

Training: each default box is matched to the truth it overlaps most when that IoU is at
least ``match_iou`` (0.5), and every truth to its best default box whatever the IoU;
localisation is smooth L1 over the matched boxes; confidence is softmax cross-entropy over
the matched boxes and the **hard negatives**: the unmatched boxes with the highest
background loss, ``neg_ratio`` (3) per match in each image.  Both are divided by the number
of matches.  Detection: softmax scores per class, NMS per class at IoU ``nms_thresh`` (0.45).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.detect.backbone import Backbone, conv_bn
from deeper.models.detect.base import Detector, check_targets
from deeper.models.detect.boxes import box_iou, clip, decode, encode, select
from deeper.models.registry import register_model

VARIANCE_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # 1 / SSD's variances (0.1, 0.1, 0.2, 0.2)


def default_boxes(img_size: int, strides, sizes, ratios) -> torch.Tensor:
    """(D, 4) pixel xyxy default boxes, map by map, cell by cell (row-major), box by box within a cell."""
    out = []
    for k, (stride, size) in enumerate(zip(strides, sizes)):
        nxt = sizes[k + 1] if k + 1 < len(sizes) else 2 * sizes[-1]
        shapes = [(size * math.sqrt(r), size / math.sqrt(r)) for r in ratios]
        shapes.append((math.sqrt(size * nxt),) * 2)
        m = math.ceil(img_size / stride)
        c = (torch.arange(m, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        wh = torch.tensor(shapes, dtype=torch.float32)  # (A, 2)
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)
        out.append(torch.cat([centres - wh / 2, centres + wh / 2], -1).reshape(-1, 4))
    return torch.cat(out)


class SSD(Detector):
    channels_last_ok = True

    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, width: int = 32,
        strides: tuple = (8, 16, 32), sizes: tuple = (12, 24, 48), ratios: tuple = (1.0, 0.5, 1 / 3),
        match_iou: float = 0.5, neg_ratio: float = 3.0, score_thresh: float = 0.01, nms_thresh: float = 0.45,
        max_det: int = 100,
    ):  # fmt: skip
        super().__init__(num_classes, in_chans, img_size)
        strides, sizes, ratios = tuple(strides), tuple(sizes), tuple(ratios)
        if len(strides) != len(sizes) or not strides:
            raise ValueError(
                f"give one default-box size per feature stride; got strides {strides}, sizes {sizes}"
            )
        if any(s <= 0 for s in sizes) or any(r <= 0 for r in ratios) or not ratios:
            raise ValueError("default-box sizes and ratios must be positive")
        if max(strides) > img_size:
            raise ValueError(f"a feature stride of {max(strides)} leaves no cell on {img_size}-pixel images")
        self.strides, self.match_iou, self.neg_ratio = strides, match_iou, neg_ratio
        self.score_thresh, self.nms_thresh, self.max_det = score_thresh, nms_thresh, max_det
        self.backbone = Backbone(in_chans, width, strides)
        a = len(ratios) + 1
        self.loc = nn.ModuleList()
        self.conf = nn.ModuleList()
        self.extra = nn.ModuleList()
        for s in strides:
            ch = self.backbone.channels[s]
            self.extra.append(conv_bn(ch, ch))
            self.loc.append(nn.Conv2d(ch, a * 4, 3, padding=1))
            self.conf.append(nn.Conv2d(ch, a * (num_classes + 1), 3, padding=1))
        self.register_buffer("defaults", default_boxes(img_size, strides, sizes, ratios), persistent=False)

    def head(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(offsets (N, D, 4), class logits (N, D, C + 1))`` for every default box."""
        feats = self.backbone(images)
        n = images.shape[0]
        locs, confs = [], []
        for s, extra, loc, conf in zip(self.strides, self.extra, self.loc, self.conf):
            f = extra(feats[s])
            locs.append(loc(f).permute(0, 2, 3, 1).reshape(n, -1, 4))
            confs.append(conf(f).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes + 1))
        return torch.cat(locs, 1).float(), torch.cat(confs, 1).float()

    def match(self, targets: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels (N, D) with 0 = background, encoded offsets (N, D, 4))`` of the default boxes."""
        d = self.defaults
        labels, offsets = [], []
        for t in targets:
            gt, lab = t["boxes"].to(d).reshape(-1, 4), t["labels"].to(d.device)
            if gt.numel() == 0:
                labels.append(torch.zeros(len(d), dtype=torch.long, device=d.device))
                offsets.append(torch.zeros_like(d))
                continue
            iou = box_iou(gt, d)  # (G, D)
            best_iou, best_gt = iou.max(0)
            forced = iou.argmax(1)  # every truth gets its best default box
            best_gt[forced] = torch.arange(len(gt), device=d.device)
            best_iou[forced] = 2.0
            cls = lab[best_gt] + 1
            cls[best_iou < self.match_iou] = 0
            labels.append(cls)
            offsets.append(encode(gt[best_gt], d, VARIANCE_WEIGHTS))
        return torch.stack(labels), torch.stack(offsets)

    def loss(self, locs, logits, targets) -> dict[str, torch.Tensor]:
        labels, offsets = self.match(targets)
        pos = labels > 0
        num_pos = pos.sum().clamp(min=1).float()
        loc = F.smooth_l1_loss(locs[pos], offsets[pos], reduction="sum")
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
        ce = ce.view(labels.shape)
        with torch.no_grad():  # hard negative mining: the unmatched boxes with the highest loss
            neg_loss = ce.detach().masked_fill(pos, -math.inf)
            rank = neg_loss.argsort(1, descending=True).argsort(1)
            num_neg = (self.neg_ratio * pos.sum(1, keepdim=True)).clamp(max=labels.shape[1] - 1)
            neg = (rank < num_neg) & ~pos
        conf = ce[pos | neg].sum()
        return {"loc": loc / num_pos, "conf": conf / num_pos}

    def detect(self, locs, logits) -> list[dict[str, torch.Tensor]]:
        boxes = clip(decode(locs, self.defaults, VARIANCE_WEIGHTS), self.img_size, self.img_size)
        scores = torch.softmax(logits, -1)[..., 1:]
        return [
            select(
                boxes[b],
                scores[b],
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                max_det=self.max_det,
            )  # fmt: skip
            for b in range(boxes.shape[0])
        ]

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, proposals=None):
        locs, logits = self.head(images)
        if self.training:
            check_targets(targets, images.shape[0])
            return self.loss(locs, logits, targets)
        return self.detect(locs, logits)


@register_model("ssd", default_input=(1, 128, 128), family="detect")
def ssd(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, width: int = 32, strides: tuple = (8, 16, 32),
    sizes: tuple = (12, 24, 48), ratios: tuple = (1.0, 0.5, 1 / 3), match_iou: float = 0.5, neg_ratio: float = 3.0,
    score_thresh: float = 0.01, nms_thresh: float = 0.45, max_det: int = 100,
) -> SSD:  # fmt: skip
    """SSD: default boxes on maps of strides 8/16/32, hard negative mining (3:1), smooth L1 + softmax loss."""
    return SSD(
        num_classes, in_chans, img_size, width=width, strides=strides, sizes=sizes, ratios=ratios,
        match_iou=match_iou, neg_ratio=neg_ratio, score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det,
    )  # fmt: skip
