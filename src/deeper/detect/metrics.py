"""COCO-style scoring of detections: mAP@0.5, mAP@[.5:.95], per-class AP and precision-recall curves.

One :class:`DetectionEvaluator` per evaluation keeps every prediction (torchmetrics'
``MeanAveragePrecision`` with the pycocotools backend, a "cat" state) and computes
everything once; :class:`MapFigure` views name one figure of it each, so the engine's
meter reports ``map50``, ``map``, the per-class APs (lists) from one evaluation.  A view
passes the batch on to its evaluator, which takes each batch once however many views
show it.
"""

from __future__ import annotations

import torch

#: figures of a :class:`DetectionEvaluator` (scalars first)
FIGURES = ("map50", "map", "map75", "ap50_per_class", "ap_per_class")


class DetectionEvaluator:
    def __init__(self, num_classes: int):
        from torchmetrics.detection import MeanAveragePrecision

        self.num_classes = num_classes
        self.metric = MeanAveragePrecision(
            box_format="xyxy",
            iou_type="bbox",
            class_metrics=True,
            extended_summary=True,
            backend="pycocotools",
        )
        self.updates = 0
        self._last = None
        self._result: dict | None = None

    def update(self, preds: list[dict], target: list[dict]) -> None:
        if preds is self._last:  # another view of the same batch
            return
        self._last, self._result = preds, None
        self.metric.update(preds, target)
        self.updates += 1

    def result(self) -> dict:
        """Every figure: ``map50``, ``map``, ``map75``, per-class lists (index = class; None where a class never
        occurs), and ``pr50`` (C, 101): precision at the 101 COCO recall points at IoU 0.5 per class."""
        if self._result is not None:
            return self._result
        r = self.metric.compute()
        k = self.num_classes
        ap50 = torch.full((k,), float("nan"))
        ap = torch.full((k,), float("nan"))
        pr = torch.full((k, 101), float("nan"))
        classes = r["classes"].reshape(-1).tolist()
        precision = r["precision"]  # (T iou thresholds, R recall points, K classes, A areas, M max dets)
        per_class = r["map_per_class"].reshape(-1)
        for idx, c in enumerate(classes):
            if not 0 <= c < k:
                continue
            p = precision[0, :, idx, 0, -1]  # IoU 0.5, every area, 100 detections
            if (p > -1).any():
                ap50[c] = p[p > -1].mean()
                pr[c] = p.clamp(min=0)
            if idx < len(per_class) and per_class[idx] > -1:
                ap[c] = per_class[idx]
        self._result = {
            "map50": float(r["map_50"]),
            "map": float(r["map"]),
            "map75": float(r["map_75"]),
            "ap50_per_class": _none_for_nan(ap50),
            "ap_per_class": _none_for_nan(ap),
            "pr50": pr,
        }
        return self._result


def _none_for_nan(values: torch.Tensor) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]


class MapFigure:
    """One figure of a shared :class:`DetectionEvaluator`, as the engine's meter updates and computes metrics."""

    def __init__(self, evaluator: DetectionEvaluator, key: str):
        self.evaluator, self.key = evaluator, key
        self.sync_on_compute = False  # every rank evaluates the whole split

    @property
    def update_count(self) -> int:
        return self.evaluator.updates

    def to(self, device):  # predictions are handed over on the CPU
        return self

    def update(self, preds, target) -> None:
        self.evaluator.update(preds, target)

    def compute(self):
        value = self.evaluator.result()[self.key]
        return torch.tensor(value) if isinstance(value, float) else value


def detection_metrics(num_classes: int, figures=FIGURES) -> tuple[DetectionEvaluator, dict[str, MapFigure]]:
    ev = DetectionEvaluator(num_classes)
    return ev, {f: MapFigure(ev, f) for f in figures}
