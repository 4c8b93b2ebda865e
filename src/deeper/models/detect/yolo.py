"""YOLO v1 (Redmon et al., 2016): one network pass, an S x S grid, B boxes and C class probabilities per cell.

The image is divided into an ``S x S`` grid; the cell that holds an object's centre is
responsible for it.  Each cell predicts ``B`` boxes ``(x, y, w, h, confidence)`` and one set
of ``C`` class probabilities: an ``S x S x (B*5 + C)`` output.  ``x, y`` are the centre's
offset inside the cell, ``w, h`` the size relative to the image; the confidence is trained
towards ``Pr(object) * IoU(pred, truth)``.  At test time a box's class-specific score is
``confidence * Pr(class | object)``.

The loss is the paper's sum-squared error (its equation 3), per image::

    l_coord * sum_ij 1obj_ij [(x - x^)^2 + (y - y^)^2]
  + l_coord * sum_ij 1obj_ij [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  +           sum_ij 1obj_ij (C - C^)^2                      (C^ = IoU of the box with the truth)
  + l_noobj * sum_ij 1noobj_ij (C - 0)^2
  +           sum_i 1obj_i sum_c (p(c) - p^(c))^2

``1obj_ij``: box ``j`` of cell ``i`` is *responsible*: the cell holds an object's centre and
``j`` is, of the cell's ``B`` predictions, the one with the highest IoU with it;
``1noobj_ij`` is every other box.  Defaults ``l_coord = 5``, ``l_noobj = 0.5``.

Parametrisation (the paper's last layer is linear): ``x, y, C`` go through a sigmoid,
the network predicts ``sqrt w`` and ``sqrt h`` through a sigmoid (so the loss compares square
roots, as the paper's, and sizes stay in (0, 1)), class probabilities are a softmax.  When
two objects' centres fall in one cell, the first of the scene's objects is kept (a v1 cell
has one set of class probabilities).

Heads: ``conv`` (default) maps the backbone's ``S x S`` feature map to the output with a
3x3 and a 1x1 convolution; ``fc`` is the paper's: flatten, a 512-unit fully connected
layer (dropout 0.5), and a linear layer to ``S*S*(B*5+C)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.models.detect.backbone import Backbone, conv_bn
from deeper.models.detect.base import Detector, check_targets
from deeper.models.detect.boxes import clip, paired_iou, select
from deeper.models.registry import register_model


class YoloV1(Detector):
    channels_last_ok = True

    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, S: int = 8, B: int = 2, width: int = 32,
        head: str = "conv", l_coord: float = 5.0, l_noobj: float = 0.5, score_thresh: float = 0.01,
        nms_thresh: float = 0.5, max_det: int = 100,
    ):  # fmt: skip
        super().__init__(num_classes, in_chans, img_size)
        stride = img_size // S if S >= 1 else 0
        if S < 1 or img_size % S or stride < 2 or stride & (stride - 1):
            raise ValueError(
                f"S must divide img_size {img_size} into cells of 2, 4, 8, ... pixels; got S={S}"
            )
        if B < 1:
            raise ValueError(f"B must be at least 1, got {B}")
        if head not in ("conv", "fc"):
            raise ValueError(f"head must be conv or fc, got {head!r}")
        self.S, self.B, self.stride = S, B, stride
        self.l_coord, self.l_noobj = l_coord, l_noobj
        self.score_thresh, self.nms_thresh, self.max_det = score_thresh, nms_thresh, max_det
        self.backbone = Backbone(in_chans, width, (stride,))
        ch = self.backbone.channels[stride]
        depth = B * 5 + num_classes
        if head == "conv":
            self.head = nn.Sequential(conv_bn(ch, ch), nn.Conv2d(ch, depth, 1))
        else:
            self.head = nn.Sequential(
                conv_bn(ch, ch // 4, kernel=1), nn.Flatten(), nn.Linear(ch // 4 * S * S, 512),
                nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(512, S * S * depth),
            )  # fmt: skip
        self.head_kind = head

    # ---- the S x S x (B*5 + C) output
    def grid_output(self, images: torch.Tensor) -> torch.Tensor:
        f = self.backbone(images)[self.stride]
        out = self.head(f)
        n = images.shape[0]
        if self.head_kind == "fc":
            return out.view(n, self.S, self.S, -1)
        return out.permute(0, 2, 3, 1)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(xywh (N,S,S,B,4), conf (N,S,S,B), class probs (N,S,S,C))`` of a raw output; ``w, h`` as square roots."""
        n, s = out.shape[0], self.S
        boxes = torch.sigmoid(out[..., : 5 * self.B].float().reshape(n, s, s, self.B, 5))
        probs = torch.softmax(out[..., 5 * self.B :].float(), -1)
        return boxes[..., :4], boxes[..., 4], probs

    def to_pixels(self, xywh: torch.Tensor) -> torch.Tensor:
        """Cell-relative ``(x, y, sqrt w, sqrt h)`` (N,S,S,B,4) -> pixel xyxy."""
        s, cell, size = self.S, self.stride, self.img_size
        j = torch.arange(s, device=xywh.device, dtype=xywh.dtype).view(1, 1, s, 1)
        i = torch.arange(s, device=xywh.device, dtype=xywh.dtype).view(1, s, 1, 1)
        cx, cy = (j + xywh[..., 0]) * cell, (i + xywh[..., 1]) * cell
        w, h = xywh[..., 2].square() * size, xywh[..., 3].square() * size
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)

    def assign(self, targets: list[dict], device) -> dict[str, torch.Tensor]:
        """Per cell: ``obj`` (N,S,S) bool, ``xywh`` (N,S,S,4) the responsible truth as (x, y, sqrt w, sqrt h),
        ``box`` (N,S,S,4) its pixel xyxy, ``label`` (N,S,S)."""
        n, s, cell, size = len(targets), self.S, self.stride, self.img_size
        obj = torch.zeros(n, s, s, dtype=torch.bool)
        xywh, box = torch.zeros(n, s, s, 4), torch.zeros(n, s, s, 4)
        label = torch.zeros(n, s, s, dtype=torch.long)
        for b, t in enumerate(targets):
            boxes, labels = t["boxes"].detach().float().cpu(), t["labels"].cpu()
            for (x1, y1, x2, y2), c in zip(boxes.tolist(), labels.tolist()):
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                j, i = min(int(cx // cell), s - 1), min(int(cy // cell), s - 1)
                if obj[b, i, j]:  # one object per cell: the first one stays
                    continue
                obj[b, i, j] = True
                xywh[b, i, j] = torch.tensor(
                    [cx / cell - j, cy / cell - i, ((x2 - x1) / size) ** 0.5, ((y2 - y1) / size) ** 0.5]
                )
                box[b, i, j] = torch.tensor([x1, y1, x2, y2])
                label[b, i, j] = c
        return {k: v.to(device) for k, v in {"obj": obj, "xywh": xywh, "box": box, "label": label}.items()}

    @torch.no_grad()
    def responsible(self, xywh: torch.Tensor, t: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(IoU of each predicted box with its cell's truth (N,S,S,B), 1obj_ij (N,S,S,B) bool)``: in a cell
        holding an object, the predictor with the highest IoU is responsible (the first on ties)."""
        iou = paired_iou(self.to_pixels(xywh), t["box"][..., None, :])
        resp = F.one_hot(iou.argmax(-1), self.B).bool() & t["obj"][..., None]
        return iou, resp

    def loss(self, out: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        """The paper's loss terms (each summed over the batch, divided by its size)."""
        xywh, conf, probs = self.split(out)
        t = self.assign(targets, out.device)
        n = out.shape[0]
        iou, resp = self.responsible(xywh, t)
        r = resp.float()
        coord_xy = ((xywh[..., :2] - t["xywh"][..., None, :2]).square().sum(-1) * r).sum()
        coord_wh = ((xywh[..., 2:] - t["xywh"][..., None, 2:]).square().sum(-1) * r).sum()
        obj = ((conf - iou).square() * r).sum()
        noobj = (conf.square() * (1 - r)).sum()
        onehot = F.one_hot(t["label"], self.num_classes).float()
        cls = ((probs - onehot).square().sum(-1) * t["obj"].float()).sum()
        return {
            "coord": self.l_coord * (coord_xy + coord_wh) / n,
            "obj": obj / n,
            "noobj": self.l_noobj * noobj / n,
            "cls": cls / n,
        }

    def detect(self, out: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        xywh, conf, probs = self.split(out)
        boxes = clip(self.to_pixels(xywh), self.img_size, self.img_size)
        n = out.shape[0]
        scores = conf[..., None] * probs[..., None, :]  # (N,S,S,B,C): class-specific confidence
        return [
            select(
                boxes[b].reshape(-1, 4),
                scores[b].reshape(-1, self.num_classes),
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                max_det=self.max_det,
            )  # fmt: skip
            for b in range(n)
        ]

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, proposals=None):
        out = self.grid_output(images)
        if self.training:
            check_targets(targets, images.shape[0])
            return self.loss(out, targets)
        return self.detect(out)


@register_model("yolo-v1", default_input=(1, 128, 128), family="detect")
def yolo_v1(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, S: int = 8, B: int = 2, width: int = 32,
    head: str = "conv", l_coord: float = 5.0, l_noobj: float = 0.5, score_thresh: float = 0.01,
    nms_thresh: float = 0.5, max_det: int = 100,
) -> YoloV1:  # fmt: skip
    """YOLO v1: an S x S grid (default 8: 16-pixel cells on 128x128), B boxes and C class probabilities per cell, the paper's loss."""
    return YoloV1(
        num_classes, in_chans, img_size, S=S, B=B, width=width, head=head, l_coord=l_coord, l_noobj=l_noobj,
        score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det,
    )  # fmt: skip
