"""Fast R-CNN (Girshick, 2015) and Faster R-CNN (Ren et al., 2015), from torchvision's detection parts.

Both run the backbone once per image (a stride-8 map that also sees the stride-16 one,
:class:`~deeper.models.detect.backbone.Backbone` with ``fuse``) and pool a fixed-size
feature for each region from it; a two-layer MLP head (torchvision's ``TwoMLPHead``)
feeds a softmax classifier over ``C + 1`` classes and class-specific box regressors
(``FastRCNNPredictor``), trained jointly: torchvision's ``RoIHeads`` samples the regions
(a quarter foreground, IoU >= 0.5), computes the two losses, and at test time decodes,
scores and runs NMS per class.

- **Fast R-CNN**: the regions are selective-search proposals (given, or searched for per
  image); pooled with **RoI max pooling** (``torchvision.ops.roi_pool``) to 7x7, as in the paper.
- **Faster R-CNN**: the regions come from a **region proposal network** (torchvision's
  ``RegionProposalNetwork`` and ``AnchorGenerator``): 9 anchors per position, 3 scales
  (``anchor_sizes``, default 12, 24 and 48 pixels: the digits are 9-36 pixels tall) x 3
  aspect ratios (h/w 0.5, 1, 2).  Its head is the paper's: a 3x3 convolution, then per
  anchor 2 objectness scores and 4 box offsets, 9 x (4 + 2) = 54 channels; the objectness
  of an anchor is the difference of its two scores (the 2-way softmax is a sigmoid of that
  difference, so torchvision's binary loss is the paper's softmax loss).  Regions are
  pooled with RoIAlign (``MultiScaleRoIAlign``, 7x7 bins of one bilinear sample each: on
  a stride-8 map a digit's region spans 2-5 cells, and the CPU backward pass of
  ``roi_align`` costs in proportion to the samples).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import MultiScaleRoIAlign, roi_pool

from deeper.models.detect.backbone import Backbone
from deeper.models.detect.base import Detector, check_targets
from deeper.models.registry import register_model


class TwoScoreRPNHead(nn.Module):
    """The RPN head of the paper: 3x3 conv, then per anchor 2 scores (object, background) and 4 offsets."""

    def __init__(self, channels: int, anchors: int):
        super().__init__()
        self.anchors = anchors
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.scores = nn.Conv2d(channels, 2 * anchors, 1)
        self.offsets = nn.Conv2d(channels, 4 * anchors, 1)
        for layer in (self.scores, self.offsets):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    @property
    def out_channels(self) -> int:
        return self.scores.out_channels + self.offsets.out_channels  # 9 x (2 + 4) = 54

    def forward(self, features: list[torch.Tensor]):
        objectness, offsets = [], []
        for f in features:
            t = self.conv(f)
            s = self.scores(t)
            n, _, h, w = s.shape
            s = s.view(n, self.anchors, 2, h, w)
            objectness.append(s[:, :, 1] - s[:, :, 0])  # log-odds of "object" under the 2-way softmax
            offsets.append(self.offsets(t))
        return objectness, offsets


class RoIMaxPool(nn.Module):
    """Fast R-CNN's RoI max pooling of one feature map, with the signature ``RoIHeads`` calls."""

    def __init__(self, output_size: int, stride: int):
        super().__init__()
        self.output_size, self.stride = output_size, stride

    def forward(self, features: dict, proposals: list[torch.Tensor], image_shapes) -> torch.Tensor:
        return roi_pool(features["0"], proposals, self.output_size, 1.0 / self.stride)


def _tv_targets(targets: list[dict]) -> list[dict]:
    """torchvision's labels count the background as 0."""
    return [{"boxes": t["boxes"].float(), "labels": t["labels"] + 1} for t in targets]


def _from_tv(dets: list[dict]) -> list[dict]:
    return [{"boxes": d["boxes"], "scores": d["scores"], "labels": d["labels"] - 1} for d in dets]


class _RegionDetector(Detector):
    stride = 8

    def _roi_heads(
        self, pool, channels: int, roi_channels: int, representation: int, box_batch: int, score_thresh,
        nms_thresh, max_det,
    ):  # fmt: skip
        # a 1x1 convolution narrows the map the regions are pooled from (pooling's CPU cost is per channel)
        self.reduce = nn.Sequential(nn.Conv2d(channels, roi_channels, 1), nn.ReLU(inplace=True))
        head = TwoMLPHead(roi_channels * 7 * 7, representation)
        predictor = FastRCNNPredictor(representation, self.num_classes + 1)
        return RoIHeads(
            pool, head, predictor, fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=box_batch,
            positive_fraction=0.25, bbox_reg_weights=None, score_thresh=score_thresh, nms_thresh=nms_thresh,
            detections_per_img=max_det,
        )  # fmt: skip

    def roi_features(self, feature: torch.Tensor) -> OrderedDict:
        return OrderedDict([("0", self.reduce(feature))])


class FastRCNN(_RegionDetector):
    needs_proposals = True

    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, width: int = 32, representation: int = 256,
        roi_channels: int = 64, box_batch: int = 64, score_thresh: float = 0.01, nms_thresh: float = 0.5,
        max_det: int = 100,
    ):  # fmt: skip
        super().__init__(num_classes, in_chans, img_size)
        self.backbone = Backbone(in_chans, width, (self.stride,), fuse=True)
        ch = self.backbone.channels[self.stride]
        self.roi_heads = self._roi_heads(
            RoIMaxPool(7, self.stride), ch, roi_channels, representation, box_batch, score_thresh, nms_thresh,
            max_det,
        )  # fmt: skip

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, proposals=None):
        n, _, h, w = images.shape
        if self.training:
            check_targets(targets, n)
            proposals = [t["proposals"] for t in targets] if proposals is None else proposals
        props = self.proposals_for(images, proposals)
        props = [p if len(p) else images.new_tensor([[0.0, 0.0, w, h]]) for p in props]
        tv = _tv_targets(targets) if self.training else None
        feature = self.backbone(images)[self.stride]
        dets, losses = self.roi_heads(self.roi_features(feature), props, [(h, w)] * n, tv)
        if self.training:
            return {"cls": losses["loss_classifier"], "box": losses["loss_box_reg"]}
        return _from_tv(dets)


class FasterRCNN(_RegionDetector):
    def __init__(
        self, num_classes: int, in_chans: int, img_size: int = 128, *, width: int = 32, representation: int = 256,
        anchor_sizes: tuple = (12, 24, 48), aspect_ratios: tuple = (0.5, 1.0, 2.0), rpn_batch: int = 128,
        rpn_pre_nms_train: int = 600, rpn_post_nms_train: int = 300, rpn_pre_nms_test: int = 300,
        rpn_post_nms_test: int = 100, roi_channels: int = 64, box_batch: int = 64, score_thresh: float = 0.01,
        nms_thresh: float = 0.5, max_det: int = 100,
    ):  # fmt: skip
        super().__init__(num_classes, in_chans, img_size)
        anchor_sizes, aspect_ratios = tuple(anchor_sizes), tuple(aspect_ratios)
        if not anchor_sizes or not aspect_ratios or min(anchor_sizes) <= 0 or min(aspect_ratios) <= 0:
            raise ValueError("anchor sizes and aspect ratios must be positive")
        self.backbone = Backbone(in_chans, width, (self.stride,), fuse=True)
        ch = self.backbone.channels[self.stride]
        self.anchor_generator = AnchorGenerator(sizes=(anchor_sizes,), aspect_ratios=(aspect_ratios,))
        head = TwoScoreRPNHead(ch, len(anchor_sizes) * len(aspect_ratios))
        self.rpn = RegionProposalNetwork(
            self.anchor_generator, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=rpn_batch,
            positive_fraction=0.5, pre_nms_top_n={"training": rpn_pre_nms_train, "testing": rpn_pre_nms_test},
            post_nms_top_n={"training": rpn_post_nms_train, "testing": rpn_post_nms_test}, nms_thresh=0.7,
        )  # fmt: skip
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=1)
        self.roi_heads = self._roi_heads(
            pool, ch, roi_channels, representation, box_batch, score_thresh, nms_thresh, max_det
        )

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None, proposals=None):
        n, _, h, w = images.shape
        tv = None
        if self.training:
            check_targets(targets, n)
            tv = _tv_targets(targets)
        feature = self.backbone(images)[self.stride]
        sizes = [(h, w)] * n
        props, rpn_losses = self.rpn(ImageList(images, sizes), OrderedDict([("0", feature)]), tv)
        dets, losses = self.roi_heads(self.roi_features(feature), props, sizes, tv)
        if self.training:
            return {
                "rpn_obj": rpn_losses["loss_objectness"], "rpn_box": rpn_losses["loss_rpn_box_reg"],
                "cls": losses["loss_classifier"], "box": losses["loss_box_reg"],
            }  # fmt: skip
        return _from_tv(dets)

    @torch.no_grad()
    def anchors_at(self, position: tuple[int, int] | None = None) -> tuple[torch.Tensor, int]:
        """``(the anchors of one feature-map position (A, 4), the stride)``: by default the centre cell's."""
        m = self.img_size // self.stride
        i, j = position if position is not None else (m // 2, m // 2)
        images = ImageList(
            torch.zeros(1, self.in_chans, self.img_size, self.img_size), [(self.img_size,) * 2]
        )
        feature = torch.zeros(1, 1, m, m)
        anchors = self.anchor_generator(images, [feature])[0]
        a = self.anchor_generator.num_anchors_per_location()[0]
        start = (i * m + j) * a
        return anchors[start : start + a], self.stride


@register_model("fast-rcnn", default_input=(1, 128, 128), family="detect")
def fast_rcnn(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, width: int = 32, representation: int = 256,
    roi_channels: int = 64, box_batch: int = 64, score_thresh: float = 0.01, nms_thresh: float = 0.5,
    max_det: int = 100,
) -> FastRCNN:  # fmt: skip
    """Fast R-CNN: selective-search proposals, RoI max pooling on shared features, softmax + box regression jointly."""
    return FastRCNN(
        num_classes, in_chans, img_size, width=width, representation=representation, roi_channels=roi_channels,
        box_batch=box_batch, score_thresh=score_thresh, nms_thresh=nms_thresh, max_det=max_det,
    )  # fmt: skip


@register_model("faster-rcnn", default_input=(1, 128, 128), family="detect")
def faster_rcnn(
    *, num_classes: int = 10, in_chans: int = 1, img_size: int = 128, width: int = 32, representation: int = 256,
    anchor_sizes: tuple = (12, 24, 48), aspect_ratios: tuple = (0.5, 1.0, 2.0), rpn_batch: int = 128,
    rpn_pre_nms_train: int = 600, rpn_post_nms_train: int = 300, rpn_pre_nms_test: int = 300,
    rpn_post_nms_test: int = 100, roi_channels: int = 64, box_batch: int = 64, score_thresh: float = 0.01,
    nms_thresh: float = 0.5, max_det: int = 100,
) -> FasterRCNN:  # fmt: skip
    """Faster R-CNN: an RPN (9 anchors: 3 scales x 3 ratios, a 54-channel head) + RoIAlign + Fast R-CNN head."""
    return FasterRCNN(
        num_classes, in_chans, img_size, width=width, representation=representation, anchor_sizes=anchor_sizes,
        aspect_ratios=aspect_ratios, rpn_batch=rpn_batch, rpn_pre_nms_train=rpn_pre_nms_train,
        rpn_post_nms_train=rpn_post_nms_train, rpn_pre_nms_test=rpn_pre_nms_test,
        rpn_post_nms_test=rpn_post_nms_test, roi_channels=roi_channels, box_batch=box_batch, score_thresh=score_thresh,
        nms_thresh=nms_thresh, max_det=max_det,
    )  # fmt: skip
