"""R-CNN (Girshick et al., 2014) and SPPNet (He et al., 2014): a network that describes each region
proposal, linear SVMs that score it, ridge regressors that tighten its box.

Both classify selective-search proposals.  What differs is where the features come from:

- **R-CNN** warps every proposal (dilated by ``context``, 16/195 of its size per side: the
  paper's 16 pixels of context around a 195-pixel warp) to ``crop x crop`` pixels
  (bilinear, ``torchvision.ops.roi_align`` on the image itself) and runs a small CNN on
  each crop: one network pass **per proposal**.
- **SPPNet** runs the backbone **once per image** and pools each proposal's window of the
  stride-8 feature map with a **spatial pyramid** of 1x1, 2x2 and 4x4 max-pooling bins
  (21 bins: a fixed-length vector whatever the window's size).

Training (the engine's gradient steps): the network learns to classify proposals into
``C + 1`` classes (softmax; 32 or 64 regions per image, a quarter foreground at IoU >= 0.5,
the rest background, ground-truth boxes among the regions), as the papers fine-tune
theirs.  Then (:mod:`deeper.detect.svm`, after training) one linear SVM per class on the
``fc7`` features and one ridge regressor per class on the ``pool5`` (R-CNN) or pyramid
(SPPNet) features; they are stored in this module's buffers and used from then on
(``svm_ready``).  Before that, detections are scored by the softmax and boxes are the
proposals themselves.  Detection: class scores for each proposal, class-specific box
regression, NMS per class at IoU ``nms_thresh`` (0.3, the paper's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align, roi_pool

from deeper.models.detect.backbone import Backbone, conv_bn
from deeper.models.detect.base import Detector, check_targets
from deeper.models.detect.boxes import box_iou, clip, decode, select
from deeper.models.registry import register_model


def sample_regions(
    proposals: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, n: int, *, fg_fraction: float = 0.25,
    fg_iou: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(regions (k, 4), labels (k,) with 0 = background)``: at most ``n`` of the proposals and the true boxes,
    at most ``fg_fraction`` of them foreground (IoU >= ``fg_iou`` with a truth: its class + 1); random
    (the global generator)."""
    regions = torch.cat([boxes.to(proposals), proposals])
    if len(boxes):
        iou, idx = box_iou(regions, boxes.to(proposals)).max(1)
        lab = torch.where(iou >= fg_iou, labels.to(proposals.device)[idx] + 1, torch.zeros_like(idx))
    else:
        lab = torch.zeros(len(regions), dtype=torch.long, device=proposals.device)
    fg, bg = torch.nonzero(lab > 0).squeeze(1), torch.nonzero(lab == 0).squeeze(1)
    n_fg = min(len(fg), int(n * fg_fraction))
    n_bg = min(len(bg), n - n_fg)
    fg = fg[torch.randperm(len(fg), device=fg.device)[:n_fg]]
    bg = bg[torch.randperm(len(bg), device=bg.device)[:n_bg]]
    keep = torch.cat([fg, bg])
    return regions[keep], lab[keep]


class ProposalClassifier(Detector):
    """Shared by R-CNN and SPPNet: proposals in, ``(fc7, pool5, logits)`` per proposal out; the SVM stage's buffers."""

    needs_proposals = True
    svm_stage = True

    def __init__(self, num_classes: int, in_chans: int, img_size: int, *, pool_dim: int, fc_dim: int,
                 regions: int, score_thresh: float, nms_thresh: float, max_det: int):  # fmt: skip
        super().__init__(num_classes, in_chans, img_size)
        self.regions = regions
        self.score_thresh, self.nms_thresh, self.max_det = score_thresh, nms_thresh, max_det
        self.fc = nn.Sequential(
            nn.Linear(pool_dim, fc_dim), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.cls = nn.Linear(fc_dim, num_classes + 1)
        c = num_classes
        # the SVM stage (fitted after training; deeper.detect.svm): scores and box regressors per class
        self.register_buffer("svm_weight", torch.zeros(c, fc_dim))
        self.register_buffer("svm_bias", torch.zeros(c))
        self.register_buffer("reg_weight", torch.zeros(c, 4, pool_dim))
        self.register_buffer("reg_bias", torch.zeros(c, 4))
        self.register_buffer("svm_ready", torch.zeros((), dtype=torch.bool))

    def pooled(self, images: torch.Tensor, regions: list[torch.Tensor]) -> torch.Tensor:
        """(K, pool_dim): the fixed-length description of every region of every image, in order."""
        raise NotImplementedError

    def proposal_features(self, images, regions: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fc7 (K, fc_dim), pool5 (K, pool_dim))`` of every region of every image."""
        pool = self.pooled(images, regions)
        return self.fc(pool), pool

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, proposals=None):
        n = images.shape[0]
        if self.training:
            check_targets(targets, n)
            proposals = [t["proposals"] for t in targets] if proposals is None else proposals
            props = self.proposals_for(images, proposals)
            picked = [
                sample_regions(p, t["boxes"], t["labels"], self.regions) for p, t in zip(props, targets)
            ]  # fmt: skip
            fc7, _ = self.proposal_features(images, [r for r, _ in picked])
            labels = torch.cat([lab for _, lab in picked])
            return {"cls": F.cross_entropy(self.cls(fc7).float(), labels)}
        props = self.proposals_for(images, proposals)
        h, w = images.shape[-2:]
        props = [p if len(p) else images.new_tensor([[0.0, 0.0, w, h]]) for p in props]
        fc7, pool = self.proposal_features(images, props)
        out, start = [], 0
        for p in props:
            f, q = fc7[start : start + len(p)].float(), pool[start : start + len(p)].float()
            start += len(p)
            if bool(self.svm_ready):
                scores = torch.sigmoid(
                    f @ self.svm_weight.T + self.svm_bias
                )  # (K, C), monotone in the margins
                deltas = torch.einsum("kd,cjd->kcj", q, self.reg_weight) + self.reg_bias  # (K, C, 4)
                boxes = clip(decode(deltas, p[:, None, :].expand_as(deltas)), h, w)
            else:
                scores = torch.softmax(self.cls(f), -1)[:, 1:]
                boxes = p
            out.append(
                select(
                    boxes,
                    scores,
                    score_thresh=self.score_thresh,
                    nms_thresh=self.nms_thresh,
                    max_det=self.max_det,
                )
            )
        return out


class RCNN(ProposalClassifier):
    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, width: int = 32, crop: int = 32,
        context: float = 16 / 195, fc_dim: int = 256, regions: int = 32, score_thresh: float = 0.01,
        nms_thresh: float = 0.3, max_det: int = 100,
    ):  # fmt: skip
        if crop < 8 or crop % 8:
            raise ValueError(f"crop must be a multiple of 8 (three 2x2 poolings), got {crop}")
        pool_dim = 4 * width * (crop // 8) ** 2
        super().__init__(num_classes, in_chans, img_size, pool_dim=pool_dim, fc_dim=fc_dim, regions=regions,
                         score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det)  # fmt: skip
        self.crop, self.context = crop, context
        self.features = nn.Sequential(
            conv_bn(in_chans, width), nn.MaxPool2d(2),
            conv_bn(width, 2 * width), nn.MaxPool2d(2),
            conv_bn(2 * width, 4 * width), nn.MaxPool2d(2), nn.Flatten(),
        )  # fmt: skip

    def warp(self, images: torch.Tensor, regions: list[torch.Tensor]) -> torch.Tensor:
        """Every region, dilated by the context margin, warped to (crop x crop): (K, C, crop, crop)."""
        boxes = []
        for r in regions:
            w, h = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
            pad = torch.stack([-w, -h, w, h], 1) * self.context
            boxes.append(r + pad)
        return roi_align(images, boxes, self.crop, spatial_scale=1.0, sampling_ratio=2, aligned=True)

    def pooled(self, images, regions):
        return self.features(self.warp(images, regions))


class SPPNet(ProposalClassifier):
    stride = 8

    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, width: int = 32, levels: tuple = (1, 2, 4),
        fc_dim: int = 256, regions: int = 64, score_thresh: float = 0.01, nms_thresh: float = 0.3, max_det: int = 100,
    ):  # fmt: skip
        levels = tuple(int(v) for v in levels)
        if not levels or min(levels) < 1:
            raise ValueError(f"pyramid levels must be positive bin counts, got {levels}")
        backbone = Backbone(in_chans, width, (self.stride,), fuse=True)
        ch = backbone.channels[self.stride]
        super().__init__(num_classes, in_chans, img_size, pool_dim=ch * sum(v * v for v in levels), fc_dim=fc_dim,
                         regions=regions, score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det)  # fmt: skip
        self.backbone = backbone
        self.spp = SpatialPyramidPool(levels, 1.0 / self.stride)

    def pooled(self, images, regions):
        return self.spp(self.backbone(images)[self.stride], regions)


class SpatialPyramidPool(nn.Module):
    """Max pooling of each region's window into ``n x n`` bins for every ``n`` in ``levels``, concatenated:
    (K, channels * sum(n^2)) whatever the windows' sizes (``torchvision.ops.roi_pool`` per level)."""

    def __init__(self, levels: tuple[int, ...], spatial_scale: float):
        super().__init__()
        self.levels, self.spatial_scale = tuple(levels), spatial_scale

    def forward(self, features: torch.Tensor, regions: list[torch.Tensor]) -> torch.Tensor:
        parts = [roi_pool(features, regions, n, self.spatial_scale).flatten(1) for n in self.levels]
        return torch.cat(parts, 1)


@register_model("rcnn", default_input=(1, 128, 128), family="detect")
def rcnn(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, width: int = 32, crop: int = 32,
    context: float = 16 / 195, fc_dim: int = 256, regions: int = 32, score_thresh: float = 0.01,
    nms_thresh: float = 0.3, max_det: int = 100,
) -> RCNN:  # fmt: skip
    """R-CNN: selective search, warped crops through a CNN, linear SVMs per class, ridge box regression, NMS."""
    return RCNN(num_classes, in_chans, img_size, width=width, crop=crop, context=context, fc_dim=fc_dim,
                regions=regions, score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det)  # fmt: skip


@register_model("sppnet", default_input=(1, 128, 128), family="detect")
def sppnet(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, width: int = 32, levels: tuple = (1, 2, 4),
    fc_dim: int = 256, regions: int = 64, score_thresh: float = 0.01, nms_thresh: float = 0.3, max_det: int = 100,
) -> SPPNet:  # fmt: skip
    """SPPNet: one conv pass per image, spatial pyramid pooling (1+4+16 bins) per proposal, SVMs, ridge box regression."""
    return SPPNet(num_classes, in_chans, img_size, width=width, levels=levels, fc_dim=fc_dim, regions=regions,
                  score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det)  # fmt: skip
