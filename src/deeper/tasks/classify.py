"""Image classification: the chapter's task, and the default of ``deeper train``.

Softmax cross-entropy over class logits (label smoothing from
``--label-smoothing``; models that return auxiliary logits in training mode,
GoogLeNet, add their loss with weight ``aux_weight``).  Reported: ``loss`` and
``accuracy`` as exact sums over the batches, and in evaluation the top-5
accuracy (datasets with more than five classes) and, on the test split, the
confusion matrix (torchmetrics).  ``deeper predict`` answers with the label and
the class probabilities of each image, prepared as MNIST was.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from deeper.data import BatchLoader, ImageDataset, get_dataset_spec, load_dataset
from deeper.data.resample import bootstrap_resample, kfold_split, load_sample_weights, weighted_resample
from deeper.tasks.base import (
    CLASSIFICATION_OPTIONS,
    Metric,
    Nets,
    StepOutput,
    Task,
    TaskOption,
    register_task,
)
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts


def default_val_size(n_train: int) -> int:
    return 5000 if n_train >= 50000 else max(1, n_train // 10)


def split_data(cfg) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """The (train, val, test) datasets of a resolved config, before any resampling of train."""
    s = cfg.sampling
    train_full = load_dataset(cfg.data, "train", data_dir=cfg.run.data_dir)
    test = load_dataset(cfg.data, "test", data_dir=cfg.run.data_dir)
    val_size = default_val_size(len(train_full)) if s.val_size is None else s.val_size
    if s.folds is not None:  # k-fold cross-validation (deeper cv): validate on one fold
        train, val = kfold_split(train_full, s.folds, s.fold)
    else:
        train, val = train_full.split(val_size, seed=0) if val_size else (train_full, None)
    if s.subset is not None:
        train = train.subset(slice(0, s.subset))
    return train, val, test


def resampled(train: ImageDataset, cfg) -> ImageDataset:
    """The training split as bagging (``--bootstrap``) or a boosting member (sample weights) draws it."""
    if cfg.sampling.bootstrap:  # a resample with replacement, drawn with the run's seed
        return bootstrap_resample(train, seed=cfg.seed)
    if cfg.sampling.sample_weights is not None:  # boosting: favours an earlier member's errors
        return weighted_resample(train, load_sample_weights(cfg.sampling.sample_weights), seed=cfg.seed)
    return train


def classification_loss(logits, y, smoothing: float, aux=(), aux_weight: float = 0.3):
    logits_f = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    loss = F.cross_entropy(logits_f, y, label_smoothing=smoothing)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a.float(), y, label_smoothing=smoothing)
    return logits_f, loss


@register_task
class ClassificationTask(Task):
    name = "classify"
    description = "image classification: softmax cross-entropy, accuracy (the chapter's task)"
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("accuracy", label="acc"),
        Metric("top5", label=""),
    )
    primary = "accuracy"
    data_kind = "images"
    model_family = "classify"
    takes = frozenset(CLASSIFICATION_OPTIONS)
    auto_amp = True  # measured: benchmarks/results/time_to_accuracy_amd.json
    dry_run = {
        "data": "digits",
        "subset": 80,
        "batch_size": 16,
        "val_size": 0.2,
        "eval_batch_size": 200,
        "epochs": 2,
    }
    options = {
        "aux_weight": TaskOption(
            0.3, "weight of each auxiliary classifier's loss (GoogLeNet)", low=0.0, high=10.0
        ),
    }

    def __init__(self, *, label_smoothing: float = 0.0, num_classes: int | None = None, **task_args):
        super().__init__(**task_args)
        self.label_smoothing = label_smoothing
        #: classes of the data (for the torchmetrics metrics; set by build or by the caller)
        self.num_classes = num_classes

    @property
    def aux_weight(self) -> float:
        return self.args["aux_weight"]

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import create_model, get_model_entry
        from deeper.train.regularize import build_train_transform

        cfg = ctx.cfg
        get_model_entry(cfg.model)  # fail on a bad name before loading any data
        spec = get_dataset_spec(cfg.data)
        self.label_smoothing, self.num_classes = cfg.regularize.label_smoothing or 0.0, spec.num_classes
        train, val, test = split_data(cfg)
        train = resampled(train, cfg)
        c, h, w = spec.image_shape
        kwargs = dict(cfg.model_kwargs)
        kwargs.update({k: v for k in ("dropout", "norm") if (v := getattr(cfg.regularize, k)) is not None})
        if h == w:
            kwargs.setdefault("img_size", h)
        model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=c, **kwargs)
        transfer = {}
        if cfg.transfer.init_from is not None or cfg.transfer.freeze != "none":  # deeper finetune
            from deeper.train.transfer import prepare_transfer

            transfer = prepare_transfer(
                model, cfg.transfer.init_from, cfg.transfer.freeze, model_name=cfg.model
            )
        channels_last = ctx.channels_last(model)
        model = ctx.place(model, channels_last=channels_last)
        train, test = train.to(ctx.device), test.to(ctx.device)
        val = val.to(ctx.device) if val is not None else None
        train_loader = BatchLoader(
            train, ctx.batch_size, shuffle=True, seed=cfg.seed, channels_last=channels_last,
            rank=ctx.rank, world_size=ctx.world_size,
            transform=build_train_transform(cfg, spec.num_classes, ctx.device),
        )  # fmt: skip
        eval_bs = cfg.sampling.eval_batch_size
        val_loader = BatchLoader(val, eval_bs, channels_last=channels_last) if val is not None else None
        test_loader = BatchLoader(test, eval_bs, channels_last=channels_last)
        opt, sched = ctx.optimizer(model.parameters(), train_loader.steps_per_epoch)
        extra = {k: v for k, v in kwargs.items() if k != "img_size"}
        metadata = {
            "model": cfg.model,
            "num_classes": spec.num_classes,
            "in_chans": c,
            "dataset": cfg.data,
            "classes": list(spec.classes),
            **({"img_size": kwargs["img_size"]} if "img_size" in kwargs else {}),
            # options that shape the model (e.g. norm), so eval/ensemble rebuild the same network
            **({"model_kwargs": extra} if extra else {}),
            **transfer,  # init_from / freeze of a fine-tuned model
        }
        return Built(Parts.single(model, opt, sched), train_loader, val_loader, test_loader, metadata)

    # ---- steps
    def _step(self, net: nn.Module, batch, smoothing: float) -> StepOutput:
        x, y = batch
        logits = net(x)
        aux = ()
        if isinstance(logits, tuple):
            logits, *aux = logits
        logits_f, loss = classification_loss(logits, y, smoothing, aux, self.aux_weight)
        target = y if y.ndim == 1 else y.argmax(1)
        correct = (logits_f.argmax(1) == target).sum()
        n = x.shape[0]
        return StepOutput(loss, {"loss": loss.detach() * n, "correct": correct}, n, logits, logits_f, target)

    def loss(self, nets: Nets, batch) -> StepOutput:
        return self._step(nets["net"], batch, self.label_smoothing)

    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        return self._step(nets["net"], batch, 0.0)

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if count == 0:
            return {}
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}

    def eval_metrics(self, split: str) -> dict:
        k = self.num_classes
        if k is None:
            return {}
        from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

        out = {"top5": MulticlassAccuracy(k, top_k=5, average="micro")} if k > 5 else {}
        if split == "test":
            out["confusion_matrix"] = MulticlassConfusionMatrix(k)
        return out

    # ---- predict
    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device, **_) -> list[dict]:
        from deeper.data.images import prepare_image

        in_chans = int(meta.get("in_chans", 1))
        size = int(meta.get("img_size", 28))
        classes = class_names(meta)
        batch = torch.stack([torch.from_numpy(prepare_image(p, (in_chans, size, size))) for p in images])
        probs = torch.softmax(model(batch.to(device)).float(), dim=1).cpu()
        out = []
        for path, row in zip(images, probs):
            k = int(row.argmax())
            out.append(
                {"image": str(path), "label": k, "name": classes[k] if k < len(classes) else str(k),
                 "probabilities": [float(v) for v in row]}
            )  # fmt: skip
        return out

    def describe_prediction(self, answer: dict, *, top: int = 3, **_) -> str:
        p = answer["probabilities"]
        ranked = sorted(range(len(p)), key=lambda k: -p[k])[: max(1, top)]
        return f"{answer['image']}: {answer['name']}  ({', '.join(f'{k}: {p[k]:.3f}' for k in ranked)})"


def class_names(meta: dict) -> list[str]:
    if "classes" in meta:
        names = meta["classes"]
        return json.loads(names) if isinstance(names, str) else list(names)
    return [str(i) for i in range(int(meta.get("num_classes", 10)))]
