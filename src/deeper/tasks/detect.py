"""Object detection on digit scenes: R-CNN, SPPNet, Fast R-CNN, Faster R-CNN, YOLO v1 and SSD on one engine.

Every detector is a registered model of family ``detect`` (:mod:`deeper.models.detect`): in
training mode it returns its named loss terms, which this task adds up for the engine's one
optimizer; in eval mode it returns boxes, scores and labels per image.  Reported:

- ``loss`` (and each term, ``loss_<term>``, in ``metrics.csv``) while training;
- ``map50`` (COCO AP at IoU 0.5) and ``map`` (AP averaged over IoU 0.5:0.95, the primary
  metric: it keeps rewarding tighter boxes after ``map50`` saturates), ``map75``, and per-class
  lists ``ap50_per_class`` and ``ap_per_class``, with torchmetrics (pycocotools);
- ``latency_ms`` (:meth:`DetectionTask.finish`): median time per test image at batch size 1
  on the run's device and threads, everything the model does included (selective search
  for the models that run it);
- figures in the run folder: ``detections.png`` (test scenes, true and predicted boxes),
  ``pr_curves.png`` (precision-recall per class at IoU 0.5), ``anchors.png`` (models with an RPN).

R-CNN and SPPNet end with a stage that is not gradient training: linear SVMs per class and
class-specific ridge box regressors fitted on the trained network's features
(:mod:`deeper.detect.svm`) in :meth:`DetectionTask.finish`; the weights file is written
again with them, and the test split scored again.
"""

from __future__ import annotations

import torch

from deeper.errors import ConfigError
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

#: the most scenes scored per evaluation batch (R-CNN runs its CNN on every proposal of every scene at once)
EVAL_BATCH = 50


@register_task
class DetectionTask(Task):
    name = "detect"
    description = "object detection on scenes: R-CNN, SPPNet, Fast/Faster R-CNN, YOLO v1, SSD; COCO mAP"
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("map50", label="mAP50"),
        Metric("map", label="mAP"),
    )
    primary = "map"
    data_kind = "scenes"
    model_family = "detect"
    dry_run = {
        "model": "yolo-v1",
        "data": "scenes-det",
        "model_kwargs": {"width": 8},
        "task_args": {
            "source": "digits",
            "val_scenes": 8,
            "test_scenes": 8,
            "latency_images": 2,
            "svm_scenes": 8,
        },
        "subset": 24,
        "batch_size": 8,
        "eval_batch_size": 8,
        "epochs": 2,
    }
    options = {
        "source": TaskOption(
            "mnist",
            "digits the scenes are made of: mnist (the dataset's own), or digits (scikit-learn's "
            "bundled 8x8 digits: offline, for dry runs and tests)",
            choices=("mnist", "digits"),
        ),  # fmt: skip
        "val_scenes": TaskOption(
            500, "scenes of the val split scored after each epoch (0: none)", low=0, high=10**6
        ),
        "test_scenes": TaskOption(0, "scenes of the test split scored (0: all of it)", low=0, high=10**6),
        "svm_scenes": TaskOption(
            1000,
            "R-CNN and SPPNet: training scenes whose proposals fit the SVMs and box regressors",
            low=1,
            high=10**6,
        ),
        "latency_images": TaskOption(
            50, "test images timed one at a time for latency_ms (0: none)", low=0, high=10**5
        ),
        "figures": TaskOption(
            True, "draw detections, precision-recall curves (and anchors) into the run folder"
        ),
        "score_thresh": TaskOption(
            0.3, "deeper predict: the lowest score of a box it reports", low=0.0, high=1.0
        ),
    }

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.num_classes: int | None = None
        self.classes: list[str] = []
        self._data: dict = {}  # split -> (SceneDataset, proposals or None)
        self._test_evaluator = None

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        from deeper.data import get_dataset_spec
        from deeper.detect.data import DetectionLoader, cache_dir_of, load_split, scene_proposals
        from deeper.models import create_model, get_model_entry

        cfg, a = ctx.cfg, self.args
        get_model_entry(cfg.model)
        spec = get_dataset_spec(cfg.data)
        c, h, w = spec.image_shape
        if h != w:
            raise ConfigError(f"task 'detect' trains on square scenes; {cfg.data} is {h}x{w}")
        self.num_classes, self.classes = spec.num_classes, list(spec.classes)
        kwargs = dict(cfg.model_kwargs)
        kwargs.setdefault("img_size", h)
        model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=c, **kwargs)
        counts = {"train": cfg.sampling.subset, "val": a["val_scenes"], "test": a["test_scenes"] or None}
        cache = cache_dir_of(cfg.run.data_dir) if a["source"] == "mnist" else None
        for split, n in counts.items():
            if split == "val" and not n:
                continue
            ds = load_split(cfg.data, split, n=n, source=a["source"], data_dir=cfg.run.data_dir)
            props = scene_proposals(ds, cache_dir=cache) if model.needs_proposals else None
            self._data[split] = (ds, props)
        channels_last = model.channels_last_ok and ctx.channels_last(model)
        model = ctx.place(model, channels_last=channels_last)

        def loader(split: str, batch: int, **kw):
            ds, props = self._data[split]
            return DetectionLoader(
                ds.to(ctx.device), batch, proposals=props, channels_last=channels_last, **kw
            )

        train = loader(
            "train", ctx.batch_size, shuffle=True, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size
        )
        eval_bs = min(cfg.sampling.eval_batch_size, EVAL_BATCH)
        val = loader("val", eval_bs) if "val" in self._data else None
        test = loader("test", eval_bs)
        opt, sched = ctx.optimizer([p for p in model.parameters() if p.requires_grad], train.steps_per_epoch)
        extra = {k: v for k, v in kwargs.items() if k != "img_size"}
        metadata = {
            "model": cfg.model,
            "num_classes": spec.num_classes,
            "in_chans": c,
            "img_size": h,
            "dataset": cfg.data,
            "classes": self.classes,
            **({"model_kwargs": extra} if extra else {}),
        }
        return Built(Parts.single(model, opt, sched), train, val, test, metadata)

    # ---- steps
    def loss(self, nets: Nets, batch) -> StepOutput:
        x, targets = batch
        terms = nets["net"](x, targets)
        total = sum(terms.values())
        n = x.shape[0]
        sums = {"loss": total.detach() * n}
        sums.update({f"loss_{k}": v.detach() * n for k, v in terms.items()})
        return StepOutput(total, sums, n)

    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        x, targets = batch
        proposals = [t["proposals"] for t in targets] if targets and "proposals" in targets[0] else None
        dets = nets["net"](x, proposals=proposals)
        preds = [
            {
                k: d[k].detach().float().cpu() if k != "labels" else d[k].cpu()
                for k in ("boxes", "scores", "labels")
            }
            for d in dets
        ]
        target = [{"boxes": t["boxes"].float().cpu(), "labels": t["labels"].cpu()} for t in targets]
        return StepOutput(None, {}, x.shape[0], preds=preds, target=target)

    def eval_metrics(self, split: str) -> dict:
        if self.num_classes is None:
            return {}
        from deeper.detect.metrics import detection_metrics

        evaluator, figures = detection_metrics(self.num_classes)
        if split == "test":
            self._test_evaluator = evaluator
        return figures

    # ---- after the test evaluation
    def finish(self, run, run_dir, test: dict) -> dict:
        from deeper.detect.finish import finish_detection

        return finish_detection(self, run, run_dir, test)

    # ---- using trained weights
    def predict(
        self, model, meta: dict, images: list, *, device: torch.device, out_dir=None, **_
    ) -> list[dict]:
        from deeper.detect.predict import detect_files, draw_answer

        classes = _classes(meta)
        answers = detect_files(
            model,
            images,
            size=int(meta.get("img_size", 128)),
            device=device,
            score_thresh=self.args["score_thresh"],
        )
        for a in answers:
            a["names"] = [classes[k] if k < len(classes) else str(k) for k in a["labels"]]
            if out_dir is not None:
                a["output"] = str(draw_answer(a["image"], a, classes, out_dir))
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        found = [
            f"{name} {score:.2f} at [{', '.join(f'{v:.0f}' for v in box)}]"
            for name, score, box in zip(answer["names"], answer["scores"], answer["boxes"])
        ]
        drawn = f" -> {answer['output']}" if "output" in answer else ""
        return f"{answer['image']}: {len(found)} found" + (": " + "; ".join(found) if found else "") + drawn


def _classes(meta: dict) -> list[str]:
    import json

    names = meta.get("classes")
    if names is None:
        return [str(i) for i in range(int(meta.get("num_classes", 10)))]
    return json.loads(names) if isinstance(names, str) else list(names)
