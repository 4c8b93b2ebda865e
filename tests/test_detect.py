"""Object detection (issue 21): box arithmetic, NMS, anchors, YOLO's targets and loss, SSD's matching,
pooling layers, selective search, mAP, every detector's train and eval contract, the task end to end,
``deeper predict`` and its errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.ops import roi_pool

from deeper.cli import main
from deeper.detect.data import DetectionLoader, load_split, scene_proposals
from deeper.detect.metrics import detection_metrics
from deeper.detect.predict import detect_files, letterbox, light_on_dark
from deeper.errors import ConfigError
from deeper.models import create_model, list_models
from deeper.models.detect.boxes import box_iou, decode, encode, paired_iou, select
from deeper.models.detect.proposals import selective_search
from deeper.models.detect.region import SpatialPyramidPool, sample_regions
from deeper.models.detect.ssd import default_boxes
from deeper.train import TrainConfig, fit

DETECTORS = ["rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo-v1", "ssd"]
QUIET = dict(tensorboard=False, progress=False, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The machine is shared: one torch thread for every test here."""


@pytest.fixture(scope="module")
def scenes():
    """A few scenes-det scenes made of scikit-learn's digits (no MNIST needed)."""
    return load_split("scenes-det", "val", n=12, source="digits", data_dir=None)


def targets_of(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


# ----------------------------------------------------------------------------- boxes, IoU, NMS


def test_iou_of_hand_cases():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]])
    b = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [1, 1, 3, 3]])
    expected = torch.tensor([1.0, 50 / 150, 0.0, 4 / 16])
    assert torch.allclose(paired_iou(a, b), expected)
    assert torch.allclose(box_iou(a, b).diagonal(), expected)


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]])
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.7], [0.0, 0.6]])  # (K boxes, C classes)
    out = select(boxes, scores, score_thresh=0.05, nms_thresh=0.5, max_det=10)
    found = sorted(zip(out["labels"].tolist(), [round(s, 2) for s in out["scores"].tolist()]))
    # class 0: box 1 (IoU 0.82 with box 0) is suppressed; class 1 keeps box 1 and box 2 (disjoint)
    assert found == [(0, 0.9), (1, 0.6), (1, 0.7)]
    assert len(select(boxes, scores, score_thresh=0.05, nms_thresh=0.5, max_det=2)["scores"]) == 2
    assert len(select(boxes, scores, score_thresh=0.95, nms_thresh=0.5, max_det=10)["scores"]) == 0


def test_box_encoding_round_trips():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    refs = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=g) * 40], 1)
    xy2 = torch.rand(50, 2, generator=g) * 100
    boxes = torch.cat([xy2, xy2 + 3 + torch.rand(50, 2, generator=g) * 50], 1)
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        assert torch.allclose(decode(encode(boxes, refs, weights), refs, weights), boxes, atol=1e-3)
    same = encode(refs, refs, (10.0, 10.0, 5.0, 5.0))
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-6)
    shifted = refs + torch.tensor([4.0, 0, 4, 0])  # moved right by 4 px: tx = 4 / width
    assert torch.allclose(encode(shifted, refs)[:, 0], 4 / (refs[:, 2] - refs[:, 0]), atol=1e-5)


# ----------------------------------------------------------------------------- Faster R-CNN's anchors


def test_the_rpn_has_9_anchors_per_position_of_3_scales_and_3_ratios_and_a_54_channel_head():
    net = create_model("faster-rcnn", num_classes=10, in_chans=1, width=4)
    anchors, stride = net.anchors_at((3, 5))
    assert anchors.shape == (9, 4) and stride == 8
    w, h = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    centres = torch.stack([(anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2], 1)
    assert torch.allclose(centres, torch.tensor([5.0 * 8, 3.0 * 8]).expand(9, 2))
    # torchvision rounds the corners to whole pixels: sides within 10% of the stated scales
    nearest = [min((12, 24, 48), key=lambda s: abs(s - math.sqrt(a))) for a in (w * h).tolist()]
    assert all(abs(math.sqrt(a) - s) / s < 0.1 for a, s in zip((w * h).tolist(), nearest))
    assert sorted(nearest) == [12] * 3 + [24] * 3 + [48] * 3
    ratio = [
        min((0.5, 1.0, 2.0), key=lambda r: abs(math.log(r * w_ / h_)))
        for w_, h_ in zip(w.tolist(), h.tolist())
    ]
    assert all(abs(h_ / w_ / r - 1) < 0.1 for w_, h_, r in zip(w.tolist(), h.tolist(), ratio))
    assert sorted(zip(nearest, ratio)) == [(s, r) for s in (12, 24, 48) for r in (0.5, 1.0, 2.0)]
    head = net.rpn.head
    assert head.out_channels == 54 == 9 * (4 + 2)
    objectness, offsets = head([torch.zeros(1, net.backbone.channels[8], 4, 4)])
    assert objectness[0].shape == (1, 9, 4, 4) and offsets[0].shape == (1, 36, 4, 4)


def test_the_two_score_objectness_is_the_softmax_probability_of_object():
    net = create_model("faster-rcnn", num_classes=3, in_chans=1, width=4)
    head = net.rpn.head
    f = torch.randn(1, net.backbone.channels[8], 3, 3)
    objectness, _ = head([f])
    two = head.scores(head.conv(f)).view(1, 9, 2, 3, 3)
    assert torch.allclose(torch.sigmoid(objectness[0]), torch.softmax(two, 2)[:, :, 1], atol=1e-6)


# ----------------------------------------------------------------------------- YOLO v1


def yolo(**kw):
    kw = {"num_classes": 2, "in_chans": 1, "img_size": 32, "S": 2, "B": 1, "width": 2, **kw}
    return create_model("yolo-v1", **kw)


def test_yolo_assigns_each_object_to_the_cell_of_its_centre():
    net = yolo(img_size=64, S=4)  # 16-pixel cells
    t = net.assign([targets_of([[16, 32, 32, 48], [0, 0, 8, 8], [18, 34, 30, 46]], [1, 0, 0])], "cpu")
    assert t["obj"].sum() == 2  # the third object's centre shares the first's cell: the first stays
    assert t["obj"][0, 2, 1] and t["obj"][0, 0, 0]
    assert t["label"][0, 2, 1] == 1 and t["label"][0, 0, 0] == 0
    x, y, sw, sh = t["xywh"][0, 2, 1].tolist()
    assert (x, y) == pytest.approx((0.5, 0.5)) and (sw, sh) == pytest.approx((0.5, 0.5))  # sqrt(16/64)
    assert t["box"][0, 2, 1].tolist() == [16, 32, 32, 48]


def test_yolo_makes_the_box_with_the_highest_iou_responsible():
    net = yolo(img_size=64, S=4, B=2)
    t = net.assign([targets_of([[16, 32, 32, 48]], [1])], "cpu")
    xywh = torch.full((1, 4, 4, 2, 4), 0.5)
    xywh[0, 2, 1, 0] = torch.tensor([0.5, 0.5, 0.2, 0.2])  # box 0: a small box at the centre
    xywh[0, 2, 1, 1] = torch.tensor([0.5, 0.5, 0.45, 0.55])  # box 1: about the truth's size
    iou, resp = net.responsible(xywh, t)
    assert resp.sum() == 1 and resp[0, 2, 1, 1]
    assert iou[0, 2, 1, 1] > iou[0, 2, 1, 0]
    xywh[0, 2, 1, 0] = torch.tensor([0.5, 0.5, 0.5, 0.5])  # now box 0 matches exactly
    iou, resp = net.responsible(xywh, t)
    assert resp[0, 2, 1, 0] and iou[0, 2, 1, 0] == pytest.approx(1.0)


def test_yolo_loss_terms_match_a_hand_computation():
    net = yolo()  # 32x32 image, S=2 (16-pixel cells), B=1, C=2
    out = torch.zeros(1, 2, 2, 1 * 5 + 2)  # every sigmoid is 0.5 and both class probabilities 0.5
    terms = net.loss(out, [targets_of([[4, 4, 20, 24]], [1])])
    # the object: centre (12, 14) in cell (0, 0): x = 0.75, y = 0.875, sqrt w = sqrt(16/32), sqrt h = sqrt(20/32)
    # prediction of cell (0, 0): centre (8, 8), w = h = 0.5^2 * 32 = 8: box (4, 4, 12, 12), IoU 64/320 = 0.2
    coord = 5 * (
        (0.5 - 0.75) ** 2 + (0.5 - 0.875) ** 2 + (0.5 - math.sqrt(0.5)) ** 2 + (0.5 - math.sqrt(0.625)) ** 2
    )
    assert float(terms["coord"]) == pytest.approx(coord, rel=1e-5)
    assert float(terms["obj"]) == pytest.approx((0.5 - 0.2) ** 2, rel=1e-5)
    assert float(terms["noobj"]) == pytest.approx(0.5 * 3 * 0.5**2, rel=1e-5)  # three empty cells
    assert float(terms["cls"]) == pytest.approx(0.5**2 + 0.5**2, rel=1e-5)
    two = net.loss(torch.cat([out, out]), [targets_of([[4, 4, 20, 24]], [1])] * 2)
    assert float(two["coord"]) == pytest.approx(coord, rel=1e-5)  # averaged over the batch


def test_yolo_decodes_a_confident_cell_into_its_box():
    net = yolo(img_size=64, S=4).eval()
    out = torch.full((1, 4, 4, 7), -20.0)  # nothing anywhere ...
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    out[0, 1, 2, :5] = torch.tensor([logit(0.5), logit(0.25), logit(0.5), logit(0.75), 20.0])  # ... but here
    out[0, 1, 2, 5:] = torch.tensor([0.0, 8.0])
    det = net.detect(out)[0]
    assert det["labels"][0] == 1 and det["scores"][0] > 0.99
    # centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20); w = 0.25 * 64 = 16, h = 0.5625 * 64 = 36
    assert det["boxes"][0].tolist() == pytest.approx([32, 2, 48, 38], abs=1e-3)


def test_yolo_refuses_a_grid_that_does_not_divide_the_image():
    with pytest.raises(ConfigError, match="S must divide"):
        yolo(img_size=128, S=5)


# ----------------------------------------------------------------------------- SSD


def test_ssd_default_boxes_tile_each_map_with_every_shape():
    d = default_boxes(64, (8, 16), (12, 24), (1.0, 0.5))
    assert d.shape == ((8 * 8 + 4 * 4) * 3, 4)
    first = d[:3]  # cell (0, 0) of the stride-8 map: centre (4, 4)
    assert torch.allclose((first[:, :2] + first[:, 2:]) / 2, torch.tensor([4.0, 4.0]))
    w, h = first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]
    assert torch.allclose(
        w * h, torch.tensor([144.0, 144.0, 12 * 24])
    )  # 12^2 at ratio 1 and 1/2, then sqrt(12*24)^2
    assert torch.allclose(w / h, torch.tensor([1.0, 0.5, 1.0]))


def test_ssd_matches_every_truth_and_mines_three_negatives_per_match():
    net = create_model(
        "ssd", num_classes=3, in_chans=1, img_size=64, width=2, strides=(8, 16), sizes=(12, 24)
    )
    labels, offsets = net.match([targets_of([[10, 10, 22, 22], [40, 30, 44, 60]], [0, 2])])
    assert set(labels[0].unique().tolist()) == {0, 1, 3}
    assert (labels == 3).sum() >= 1  # a thin truth no default box overlaps at 0.5 still gets its best one
    pos = labels[0] > 0
    decoded = decode(offsets[0][pos], net.defaults[pos], (10.0, 10.0, 5.0, 5.0))
    truth = torch.tensor([[10.0, 10, 22, 22], [40, 30, 44, 60]])
    assert (box_iou(decoded, truth).max(1).values > 0.999).all()
    locs = torch.zeros(1, len(net.defaults), 4)
    logits = torch.zeros(1, len(net.defaults), 4)
    terms = net.loss(locs, logits, [targets_of([[10, 10, 22, 22]], [0])])
    n_pos = int((net.match([targets_of([[10, 10, 22, 22]], [0])])[0] > 0).sum())
    # uniform logits: every box costs log(4); positives plus 3 negatives per positive, divided by positives
    assert float(terms["conf"]) == pytest.approx(4 * math.log(4), rel=1e-5) and n_pos >= 1


# ----------------------------------------------------------------------------- pooling layers


def test_spp_output_size_does_not_depend_on_the_input_size():
    spp = SpatialPyramidPool((1, 2, 4), 1 / 8)
    for size in (64, 128, 200):
        f = torch.randn(2, 5, size // 8, size // 8)
        regions = [torch.tensor([[0.0, 0, size, size], [8, 8, 30, 60]]), torch.tensor([[4.0, 4, 20, 20]])]
        assert spp(f, regions).shape == (3, 5 * 21)
    net = create_model("sppnet", num_classes=10, in_chans=1, width=4).eval()
    with torch.no_grad():
        a = net.pooled(torch.rand(1, 1, 96, 96), [torch.tensor([[0.0, 0, 40, 40]])])
        b = net.pooled(torch.rand(1, 1, 160, 160), [torch.tensor([[10.0, 20, 150, 90]])])
    assert a.shape == b.shape


def naive_roi_pool(f: torch.Tensor, box, size: int, scale: float) -> torch.Tensor:
    """Fast R-CNN's RoI max pooling by hand: the box rounded onto the map, split into size x size bins."""
    x1, y1, x2, y2 = (math.floor(v * scale + 0.5) for v in box)  # C's round: halves away from zero
    w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    out = torch.zeros(f.shape[0], size, size)
    for i in range(size):
        for j in range(size):
            ys = min(max(y1 + math.floor(i * h / size), 0), f.shape[1])
            ye = min(max(y1 + math.ceil((i + 1) * h / size), 0), f.shape[1])
            xs = min(max(x1 + math.floor(j * w / size), 0), f.shape[2])
            xe = min(max(x1 + math.ceil((j + 1) * w / size), 0), f.shape[2])
            if ye > ys and xe > xs:
                out[:, i, j] = f[:, ys:ye, xs:xe].amax(dim=(1, 2))
    return out


def test_roi_pooling_matches_a_naive_loop():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(1, 3, 16, 16, generator=g)
    boxes = [[0.0, 0, 127, 127], [8.0, 16, 60, 40], [33.0, 41, 90, 117], [100.0, 100, 112, 109]]
    pooled = roi_pool(f, [torch.tensor(boxes)], 4, 1 / 8)
    for k, box in enumerate(boxes):
        assert torch.allclose(pooled[k], naive_roi_pool(f[0], box, 4, 1 / 8)), box
    spp = SpatialPyramidPool((1, 2), 1 / 8)(f, [torch.tensor(boxes[1:2], dtype=torch.float32)])
    assert torch.allclose(spp[0, :3], naive_roi_pool(f[0], boxes[1], 1, 1 / 8).flatten())
    assert torch.allclose(spp[0, 3:], naive_roi_pool(f[0], boxes[1], 2, 1 / 8).flatten())


# ----------------------------------------------------------------------------- proposals


def test_selective_search_proposes_the_boxes_of_separate_shapes():
    img = np.zeros((64, 64), dtype=np.float32)
    img[5:25, 10:18] = 1.0  # a bar
    img[30:50, 30:52] = 0.6  # a block
    img[30:50, 38:40] = 0.0  # ... split into two parts 2 px apart
    boxes = selective_search(img).tolist()
    assert [10, 5, 18, 25] in boxes  # x1, y1, x2 (one past), y2 (one past)
    assert [30, 30, 52, 50] in boxes  # the two parts grouped into one region
    assert all(b[2] - b[0] >= 2 and b[3] - b[1] >= 2 for b in boxes)
    assert len(selective_search(np.zeros((32, 32)))) == 0


def test_proposals_are_cached_and_travel_with_the_batches(scenes, tmp_path):
    ds = scenes.subset(slice(0, 4))
    found = scene_proposals(ds, cache_dir=tmp_path)
    assert len(found) == 4 and all(p.shape[1] == 4 for p in found)
    assert list((tmp_path / "proposals").glob("*.safetensors"))
    again = scene_proposals(ds, cache_dir=tmp_path, log=lambda m: pytest.fail("searched again: " + m))
    assert all(torch.equal(a, b) for a, b in zip(found, again))
    x, targets = next(iter(DetectionLoader(ds, 4, proposals=found)))
    assert x.shape == (4, 1, 128, 128) and all(torch.equal(t["proposals"], p) for t, p in zip(targets, found))
    recall = [
        float((box_iou(t["boxes"], t["proposals"]).max(1).values >= 0.5).float().mean()) for t in targets
    ]  # fmt: skip
    assert np.mean(recall) > 0.7


def test_region_sampling_keeps_a_quarter_foreground():
    torch.manual_seed(0)
    props = torch.tensor(
        [[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [70, 70, 80, 80], [90, 90, 99, 99]] * 4
    )
    regions, labels = sample_regions(props, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([6]), 8)
    assert len(regions) == 8 and (labels == 7).sum() == 2 and (labels == 0).sum() == 6
    assert (box_iou(regions[labels == 7], torch.tensor([[0.0, 0, 10, 10]])) >= 0.5).all()


# ----------------------------------------------------------------------------- mAP


def test_map_of_perfect_predictions_is_one_and_of_shuffled_labels_is_low(scenes):
    targets = scenes.targets(range(12))
    perfect = [
        {"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]} for t in targets
    ]
    ev, figures = detection_metrics(10)
    for f in figures.values():
        f.update(perfect, targets)
    r = ev.result()
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    shuffled = [
        {**p, "labels": (p["labels"] + torch.randint(1, 10, p["labels"].shape, generator=g)) % 10}
        for p in perfect
    ]
    ev2, figures2 = detection_metrics(10)
    for f in figures2.values():
        f.update(shuffled, targets)
    assert ev2.updates == 1  # one batch, however many figures show it
    assert figures2["map50"].compute() < 0.2 and ev2.result()["map"] < 0.2


# ----------------------------------------------------------------------------- every detector


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_trains_a_step_and_answers_in_eval_mode(name, scenes):
    assert name in list_models(family="detect")
    torch.manual_seed(0)
    net = create_model(name, num_classes=10, in_chans=1, img_size=128, width=4)
    x = scenes.float_images(range(2))
    targets = scenes.targets(range(2))
    props = [selective_search(img[0]) for img in x]
    for t, p in zip(targets, props):
        t["proposals"] = p
    net.train()
    terms = net(x, targets)
    loss = sum(terms.values())
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.eval()
    with torch.no_grad():
        dets = net(x, proposals=props if net.needs_proposals else None)
    assert len(dets) == 2
    for d in dets:
        n = len(d["scores"])
        assert d["boxes"].shape == (n, 4) and d["labels"].shape == (n,) and n <= 100
        assert ((d["labels"] >= 0) & (d["labels"] < 10)).all()
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 128).all()


def test_a_detection_model_needs_the_detection_task_and_scene_data(tmp_path):
    with pytest.raises(ConfigError, match="is a detect model; task 'classify'"):
        fit(TrainConfig(model="yolo-v1", data="digits", out=str(tmp_path / "a"), **QUIET))
    with pytest.raises(ConfigError, match="holds images; task 'detect' trains on scenes"):
        fit(TrainConfig(task="detect", model="yolo-v1", data="digits", out=str(tmp_path / "b"), **QUIET))
    with pytest.raises(ConfigError, match="trains on square scenes; scenes-seg is 64x84"):
        fit(TrainConfig(task="detect", model="ssd", data="scenes-seg", task_args={"source": "digits"},
                        out=str(tmp_path / "c"), **QUIET))  # fmt: skip


# ----------------------------------------------------------------------------- the task end to end, predict


def dry(model: str, tmp_path, **over) -> dict:
    from deeper.tasks import get_task_class

    options = {**get_task_class("detect").dry_run, "task": "detect", "model": model, **over}
    return fit(TrainConfig(**options, out=str(tmp_path / model), **QUIET))


@pytest.fixture(scope="module")
def trained_yolo(tmp_path_factory) -> dict:
    return dry("yolo-v1", tmp_path_factory.mktemp("yolo"))


def test_the_task_reports_map_latency_and_draws_its_figures(trained_yolo):
    r = trained_yolo
    assert r["primary_metric"] == "map" and 0 <= r["test_map"] <= r["test_map50"] <= 1
    assert r["latency_ms"] > 0 and len(r["test"]["ap50_per_class"]) == 10
    run = r["run_dir"]
    from pathlib import Path

    assert (Path(run) / "detections.png").is_file() and (Path(run) / "pr_curves.png").is_file()
    header = (Path(run) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_coord", "train_loss_noobj", "val_map50", "val_map"} <= set(header)


@pytest.mark.slow
def test_r_cnn_fits_its_svms_after_training_and_scores_with_them(tmp_path):
    from deeper.models.weights import model_from_weights

    r = dry("rcnn", tmp_path)
    svm = r["svm"]
    assert svm["svm_positives"] > 0 and svm["svm_negatives"] > svm["svm_positives"]
    assert svm["regression_samples"] > 0 and "softmax_test_map" in svm
    assert r["test_map"] == r["test"]["map"]  # the reported figures are the SVMs'
    net, meta = model_from_weights(r["weights"])
    assert bool(net.svm_ready) and net.svm_weight.abs().sum() > 0
    assert float(json.loads(meta["test_map"])) == pytest.approx(r["test_map"])


def write_png(path, array: np.ndarray) -> str:
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


class FixedBox(nn.Module):
    """A 'detector' that finds one box at (32, 16, 64, 48) of its 128x128 input, whatever it is shown."""

    def forward(self, x, targets=None, proposals=None):
        assert x.shape[-2:] == (128, 128)
        box = {
            "boxes": torch.tensor([[32.0, 16, 64, 48]]),
            "scores": torch.tensor([0.9]),
            "labels": torch.tensor([3]),
        }
        return [box for _ in x]


def test_predict_answers_in_the_input_image_pixels(tmp_path):
    wide = write_png(tmp_path / "wide.png", np.zeros((100, 256)))  # scaled by 0.5 to fit 128
    small = write_png(tmp_path / "small.png", np.zeros((64, 32)))  # scaled by 2
    a, b = detect_files(FixedBox(), [wide, small], size=128, device="cpu", score_thresh=0.5)
    assert a["boxes"] == [[64.0, 32.0, 128.0, 96.0]] and a["size"] == [256, 100]
    assert b["boxes"] == [[16.0, 8.0, 32.0, 24.0]] and b["labels"] == [3]
    image, scale = letterbox(np.ones((50, 200), dtype=np.float32), 128)
    assert scale == 128 / 200 and image[0, :32].min() == 1 and image[0, 33:].max() == 0
    paper = np.ones((20, 20), dtype=np.float32)
    paper[5:15, 9:11] = 0  # a dark stroke on white paper becomes a light stroke on black
    assert light_on_dark(paper)[10, 10] == 1 and light_on_dark(paper)[0, 0] == 0


def test_deeper_predict_reads_any_size_and_draws_boxes(trained_yolo, scenes, tmp_path, capsys):
    scene = scenes.images[0, 0].numpy() / 255
    big = np.kron(scene, np.ones((2, 2)))[:200]  # 200 x 256: another size and aspect
    path = write_png(tmp_path / "scene.png", big)
    out = tmp_path / "drawn"
    assert main(["predict", "--weights", trained_yolo["run_dir"], path, "-o", str(out), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert set(answer) >= {"image", "boxes", "labels", "scores"}
    for x1, y1, x2, y2 in answer["boxes"]:
        assert 0 <= x1 <= x2 <= 256 and 0 <= y1 <= y2 <= 200
    assert (out / "scene.detections.png").is_file()


def test_bad_input_gets_a_one_line_error(trained_yolo, tmp_path, capsys):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    assert main(["predict", "--weights", trained_yolo["run_dir"], str(bad)]) != 0
    err = capsys.readouterr().err.strip()
    assert "not a readable image" in err and "Traceback" not in err and len(err.splitlines()) == 1
    code = main(["train", "--task", "detect", "--model", "yolo-v1", "--data", "scenes-det", "--model-arg", "S=5",
                 "--task-arg", "source=digits", "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and "S must divide" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_short_training_beats_an_untrained_detector(tmp_path):
    """YOLO on 400 scenes of scikit-learn digits for 10 epochs, against the same network untrained."""
    options = dict(task_args={"source": "digits", "val_scenes": 0, "test_scenes": 100, "latency_images": 0,
                              "figures": False}, model_kwargs={"width": 8}, subset=400, batch_size=16, lr=0.003,
                   optimizer="adamw", schedule="onecycle", eval_batch_size=50)  # fmt: skip
    untrained = dry("yolo-v1", tmp_path / "a", epochs=1, max_steps=1, **options)
    trained = dry("yolo-v1", tmp_path / "b", epochs=10, **options)
    assert trained["test_map50"] > max(0.1, 10 * untrained["test_map50"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["faster-rcnn", "sppnet"])
def test_sampling_detectors_resume_bit_for_bit(model, tmp_path):
    """Region sampling (RPN anchors, RoIs) draws from the global generator, which checkpoints carry."""
    from deeper.train.checkpoint import latest_checkpoint, load_checkpoint

    straight = dry(model, tmp_path / "a", task_args={**_dry_args(), "figures": False, "latency_images": 0})
    first = dry(
        model, tmp_path / "b", max_steps=4, task_args={**_dry_args(), "figures": False, "latency_images": 0}
    )
    assert first["steps"] == 4 < straight["steps"]
    from deeper.tasks import get_task_class

    options = {**get_task_class("detect").dry_run, "task": "detect", "model": model,
               "task_args": {**_dry_args(), "figures": False, "latency_images": 0}}  # fmt: skip
    resumed = fit(TrainConfig(**options, out=str(tmp_path / "b" / model), **QUIET), resume=True)
    a = load_checkpoint(latest_checkpoint(tmp_path / "a" / model))[0]
    b = load_checkpoint(latest_checkpoint(tmp_path / "b" / model))[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_map"] == straight["test_map"]


def _dry_args() -> dict:
    from deeper.tasks import get_task_class

    return dict(get_task_class("detect").dry_run["task_args"])
