"""Semantic segmentation of digit scenes: a class for every pixel.

    deeper train --task segment --model unet --data scenes-seg --subset 5000
    deeper predict --weights runs/segment-unet-scenes-seg-... scene.png -o masks/ --json
    deeper segment-preview --weights RUN [--weights RUN2 ...] -o preview.png

The models are the ``segment`` family (:mod:`deeper.models.segment`: FCN-32s/16s/8s,
U-Net, SegNet, DeepLab v3); the data are the ``scenes-*`` datasets, whose class
masks give every pixel its class: 0 for the background, ``d + 1`` for the ink of
digit ``d`` (so 11 classes for MNIST scenes).

- **Loss**: cross-entropy of every pixel's scores, averaged over the pixels of the
  batch (with ``--label-smoothing`` as the recipe or the user sets it).
- **Metrics**, over the whole split (one confusion matrix of every pixel seen, not
  an average of per-image figures; torchmetrics states, so they add up across
  processes): ``miou``, the mean over the classes of ``TP / (TP + FP + FN)`` with the
  background (the primary metric); ``miou_digits``, the same mean over the digit
  classes only (the background's pixels still count as the digits' false positives
  and negatives); ``pixel_accuracy``.  Classes that appear neither in the truth nor
  in the predictions are left out of the means.  On the test split the confusion
  matrix is kept (``result.json``: ``test.confusion_matrix``) and the per-class
  IoU is written as ``test_iou_per_class``.
- **Data**: ``--subset N`` trains on the first N training scenes (the first N are the
  same whatever the total), ``val_scenes``/``test_scenes`` shorten the validation
  and test splits (each has its own digits, see docs/scenes.md).  ``source=digits``
  builds the scenes from scikit-learn's bundled digits instead of MNIST: no files
  needed (the dry run uses it).
- **Figures** (``figures=true``): ``segmentation.png`` (test scenes: input, truth,
  prediction) and ``iou_per_class.png`` in the run folder.
- **Predict**: any grey image of any size (the networks pad to their stride);
  dark ink on a light background is inverted first, as the scenes are white on
  black.  With ``-o DIR`` each image gets ``NAME_mask.png`` (a palette PNG whose
  pixel values are the class indices) and ``NAME_overlay.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric as TorchMetric

from deeper.data.loader import BatchLoader
from deeper.errors import ConfigError, DataError
from deeper.tasks.base import SCENE_OPTIONS, Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

BACKGROUND = "background"
#: evaluation batches are capped at this many scenes (a 1,000-scene batch of 64x84 maps takes GBs)
EVAL_BATCH = 200


# ----------------------------------------------------------------------------- metrics


def segmentation_scores(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores from a confusion matrix (rows: true class, columns: predicted; class 0 the background).

    ``iou`` per class (NaN for a class absent from both truth and predictions), ``miou``
    (mean over the present classes), ``miou_digits`` (the same without class 0) and
    ``pixel_accuracy``.
    """
    m = matrix.double()
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    total = m.sum()
    return {
        "iou": iou,
        "miou": iou.nanmean(),
        "miou_digits": iou[1:].nanmean(),
        "pixel_accuracy": tp.sum() / total if total > 0 else torch.tensor(float("nan"), dtype=torch.float64),
    }


def median_frequency_weights(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """SegNet's class balancing (Eigen & Fergus): ``median(freq) / freq(c)``, where ``freq(c)`` is class c's pixels
    over the pixels of the images that hold c; a class absent from ``masks`` (N, H, W) gets weight 1."""
    flat = masks.reshape(len(masks), -1).long()
    counts = torch.stack([torch.bincount(m, minlength=num_classes)[:num_classes] for m in flat]).double()
    present = counts > 0
    seen = (present.double() * flat.shape[1]).sum(0)
    freq = counts.sum(0) / seen.clamp(min=1)
    known = present.any(0)
    weights = torch.ones(num_classes, dtype=torch.float64)
    weights[known] = freq[known].median() / freq[known]
    return weights.float()


def classifier_of(net: nn.Module, num_classes: int) -> nn.Conv2d:
    """The convolution ``score`` to the classes that ends a U-Net, SegNet or DeepLab (FCN sums several)."""
    score = getattr(net, "score", None)
    if not isinstance(score, nn.Conv2d) or score.bias is None or score.out_channels != num_classes:
        raise ConfigError(
            f"prior_bias needs a network that ends in one convolution to the classes (U-Net, SegNet, DeepLab); "
            f"{type(net).__name__} does not"
        )
    return score


def prior_bias_(net: nn.Module, masks: torch.Tensor, num_classes: int, *, std: float = 0.01) -> torch.Tensor:
    """RetinaNet's prior initialisation of the last convolution (:func:`classifier_of`): its weights
    ~ N(0, ``std``) and its bias the log of each class's share of the pixels of ``masks`` (N, H, W), so
    that the untrained network's softmax is about the class prior everywhere (a class absent from
    ``masks`` counts as one pixel). Returns the bias."""
    score = classifier_of(net, num_classes)
    counts = torch.bincount(masks.reshape(-1).long(), minlength=num_classes)[:num_classes]
    counts = counts.double().clamp(min=1)
    bias = (counts / counts.sum()).log().float()
    with torch.no_grad():
        nn.init.normal_(score.weight, 0.0, std)
        score.bias.copy_(bias)
    return bias


class ConfusionScore(TorchMetric):
    """One score of :func:`segmentation_scores` (``"matrix"``: the confusion matrix itself) over every
    pixel of every batch: ``update(preds, target)`` with class maps of the same shape."""

    full_state_update = False

    def __init__(self, num_classes: int, score: str = "miou", **kwargs):
        super().__init__(**kwargs)
        if score not in ("matrix", "iou", "miou", "miou_digits", "pixel_accuracy"):
            raise ValueError(f"unknown segmentation score {score!r}")
        self.num_classes, self.score = int(num_classes), score
        k = self.num_classes
        self.add_state("matrix", default=torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        k = self.num_classes
        idx = target.reshape(-1).long() * k + preds.reshape(-1).long()
        self.matrix += torch.bincount(idx, minlength=k * k).reshape(k, k)

    def compute(self) -> torch.Tensor:
        if self.score == "matrix":
            return self.matrix
        return segmentation_scores(self.matrix)[self.score]


# ----------------------------------------------------------------------------- data


class MaskLoader(BatchLoader):
    """Batches ``(images, class masks)`` of a :class:`~deeper.data.scenes.SceneDataset`: float images
    (B, C, H, W) in [0, 1] and int64 masks (B, H, W), 0 = background, ``label + 1`` on a digit's ink."""

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(sel), self.dataset.class_masks[sel].long()


def load_split(data: str, split: str, n: int | None, *, source: str = "", data_dir=None):
    """``split`` scenes of dataset ``data`` (``source="digits"``: made from scikit-learn's bundled digits)."""
    from deeper.data import load_dataset
    from deeper.data.scenes import load_scenes

    digits = None
    if source == "digits":
        digits = load_dataset("digits", "test" if split == "test" else "train")
    return load_scenes(data, split, n=n, data_dir=data_dir, digits=digits)


def class_names(digit_classes) -> list[str]:
    return [BACKGROUND, *map(str, digit_classes)]


# ----------------------------------------------------------------------------- the task


@register_task
class SegmentationTask(Task):
    name = "segment"
    description = "semantic segmentation of digit scenes: per-pixel cross-entropy, mean IoU (FCN, U-Net, ...)"
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("miou", label="mIoU"),
        Metric("miou_digits", label="mIoU-digits"),
        Metric("pixel_accuracy", label="pix"),
    )
    primary = "miou"
    data_kind = "scenes"
    model_family = "segment"
    dry_run = {
        "data": "scenes-seg",
        "model": "unet",
        "model_kwargs": {"width": 4, "depth": 2},
        "subset": 48,
        "batch_size": 16,
        "eval_batch_size": 16,
        "epochs": 2,
        "task_args": {"source": "digits", "val_scenes": 16, "test_scenes": 16, "figures": False},
    }
    options = {
        **SCENE_OPTIONS,
        "figures": TaskOption(True, "draw segmentation.png and iou_per_class.png into the run folder"),
        "preview": TaskOption(8, "test scenes drawn in segmentation.png", low=1, high=64),
        "class_weights": TaskOption("none", "training loss per class: none, or median-frequency (SegNet's "
                                    "balancing: rare classes weigh more)", choices=("none", "median-frequency")),
        "prior_bias": TaskOption(False, "start the classifier at the class prior (RetinaNet's initialisation: bias "
                                 "= log of each class's pixel share, small weights); U-Net, SegNet, DeepLab"),
    }  # fmt: skip

    def __init__(self, **task_args):
        super().__init__(**task_args)
        self.num_classes: int | None = None  # classes with the background (set by build or load_model)
        self.label_smoothing = 0.0
        self.class_weights: torch.Tensor | None = None  # of the training loss (None: every class weighs 1)

    # ---- building
    def build(self, ctx: BuildContext) -> Built:
        from deeper.data import get_dataset_spec
        from deeper.models import create_model, get_model_entry

        cfg = ctx.cfg
        get_model_entry(cfg.model)  # fail on a bad name before making any scenes
        spec = get_dataset_spec(cfg.data)
        k = len(spec.classes) + 1
        kwargs = dict(cfg.model_kwargs)
        if cfg.regularize.dropout is not None:
            kwargs["dropout"] = cfg.regularize.dropout
        c, h, w = spec.image_shape
        model = create_model(cfg.model, num_classes=k, in_chans=c, **kwargs)  # before the data: fail fast
        if self.args["prior_bias"]:
            classifier_of(model, k)
        self.num_classes, self.label_smoothing = k, cfg.regularize.label_smoothing or 0.0
        a = self.args
        source = a["source"]
        where = {"source": source, "data_dir": cfg.run.data_dir}
        train = load_split(cfg.data, "train", cfg.sampling.subset, **where)
        val = (
            load_split(cfg.data, "val", a["val_scenes"] or None, **where)
            if cfg.sampling.val_size != 0
            else None
        )
        test = load_split(cfg.data, "test", a["test_scenes"] or None, **where)
        if a["prior_bias"]:
            prior_bias_(model, train.class_masks, k)
        channels_last = ctx.channels_last(model)
        model = ctx.place(model, channels_last=channels_last)
        dev = ctx.device
        if a["class_weights"] == "median-frequency":
            self.class_weights = median_frequency_weights(train.class_masks, k).to(dev)
        train_loader = MaskLoader(
            train.to(dev), ctx.batch_size, shuffle=True, seed=cfg.seed, channels_last=channels_last,
            rank=ctx.rank, world_size=ctx.world_size,
        )  # fmt: skip
        eval_bs = min(cfg.sampling.eval_batch_size, EVAL_BATCH)
        val_loader = (
            MaskLoader(val.to(dev), eval_bs, channels_last=channels_last) if val is not None else None
        )
        test_loader = MaskLoader(test.to(dev), eval_bs, channels_last=channels_last)
        opt, sched = ctx.optimizer(model.parameters(), train_loader.steps_per_epoch)
        metadata = {
            "model": cfg.model,
            "num_classes": k,
            "in_chans": c,
            "dataset": cfg.data,
            "classes": class_names(spec.classes),
            "scene_size": [h, w],
            "train_scenes": len(train),
            **({"model_kwargs": kwargs} if kwargs else {}),
            **({"digits": source} if source else {}),
        }
        return Built(Parts.single(model, opt, sched), train_loader, val_loader, test_loader, metadata)

    # ---- steps
    def _step(
        self, net: nn.Module, batch, smoothing: float, weight: torch.Tensor | None = None
    ) -> StepOutput:
        x, y = batch
        logits = net(x)
        scores = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        loss = F.cross_entropy(scores, y, weight=weight, label_smoothing=smoothing)
        pred = scores.argmax(1)
        n = x.shape[0]
        sums = {
            "loss": loss.detach() * n,
            "correct": (pred == y).sum(),
            "pixels": y.new_full((), y.numel()),  # a fill on the device (CUDA graphs can replay it)
        }
        return StepOutput(loss, sums, n, logits, pred, y)

    def loss(self, nets: Nets, batch) -> StepOutput:
        return self._step(nets["net"], batch, self.label_smoothing, self.class_weights)

    def evaluation_step(self, nets: Nets, batch) -> StepOutput:
        return self._step(nets["net"], batch, 0.0)

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if count == 0:
            return {}
        out = {"loss": sums["loss"] / count}
        if sums.get("pixels"):
            out["pixel_accuracy"] = sums["correct"] / sums["pixels"]
        return out

    def eval_metrics(self, split: str) -> dict:
        k = self.num_classes
        if k is None:
            return {}
        out = {name: ConfusionScore(k, name) for name in ("miou", "miou_digits", "pixel_accuracy")}
        if split == "test":
            out["confusion_matrix"] = ConfusionScore(k, "matrix")
        return out

    # ---- the end of a run: per-class IoU and the figures
    def finish(self, run, run_dir, test: dict) -> dict:
        matrix = test.get("confusion_matrix")
        if matrix is None:
            return {}
        names = class_names_of(run.metadata)
        iou = segmentation_scores(torch.tensor(matrix))["iou"].tolist()
        per_class = {n: (None if v != v else v) for n, v in zip(names, iou)}
        if self.args["figures"] and run.test_loader is not None:
            from deeper.analysis.segment_figures import draw_segmentations, plot_class_iou

            ds = run.test_loader.dataset
            n = min(self.args["preview"], len(ds))
            masks = segment_images(run.final_model, ds.float_images(range(n)))
            title = f"{run.model_name} on {run.data_name}: test mIoU {test.get('miou', float('nan')):.3f}"
            draw_segmentations(
                ds.images[:n, 0].cpu().numpy(), ds.class_masks[:n].cpu().numpy(), [(run.model_name, masks)],
                Path(run_dir) / "segmentation.png", num_classes=len(names), title=title,
            )  # fmt: skip
            plot_class_iou({run.model_name: per_class}, Path(run_dir) / "iou_per_class.png", title=title)
        return {"test_iou_per_class": per_class}

    # ---- using trained weights
    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import model_from_weights

        model, meta = model_from_weights(path, name)
        self.num_classes = int(meta.get("num_classes", 11))
        return model, meta

    @torch.inference_mode()
    def predict(self, model: nn.Module, meta: dict, images: list, *, device: torch.device,
                out_dir=None, **_) -> list[dict]:  # fmt: skip
        names = class_names_of(meta)
        in_chans = int(meta.get("in_chans", 1))
        out = Path(out_dir) if out_dir else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        answers, used = [], set()
        for path in images:
            grey, inverted = read_scene_image(path, in_chans)
            x = torch.from_numpy(grey)[None, None].to(device)
            mask = segment_images(model, x)[0]
            counts = np.bincount(mask.reshape(-1), minlength=len(names))
            answer = {
                "image": str(path),
                "size": [int(mask.shape[0]), int(mask.shape[1])],
                "classes": {names[c]: int(v) for c, v in enumerate(counts) if v and c < len(names)},
                "mask": None,
                "overlay": None,
                **({"inverted": True} if inverted else {}),
            }
            if out is not None:
                stem = _unique_stem(Path(path).stem, used)
                answer["mask"], answer["overlay"] = write_mask(out, stem, grey, mask)
            answers.append(answer)
        return answers

    def describe_prediction(self, answer: dict, **_) -> str:
        digits = {k: v for k, v in answer["classes"].items() if k != BACKGROUND}
        found = (
            ", ".join(f"{k}: {v} px" for k, v in sorted(digits.items(), key=lambda kv: -kv[1])) or "no digits"
        )
        where = f" -> {answer['mask']}" if answer.get("mask") else ""
        return f"{answer['image']}: {found}{where}"


# ----------------------------------------------------------------------------- helpers


def class_names_of(meta: dict) -> list[str]:
    import json

    names = meta.get("classes")
    if names is None:
        return [BACKGROUND, *(str(i) for i in range(int(meta.get("num_classes", 11)) - 1))]
    return json.loads(names) if isinstance(names, str) else list(names)


@torch.inference_mode()
def segment_images(model: nn.Module, images: torch.Tensor, *, batch: int = 64) -> np.ndarray:
    """Predicted class masks (N, H, W) uint8 of float images (N, C, H, W), in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        out = []
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device=p.device, dtype=p.dtype)
            out.append(model(x).argmax(1).to(torch.uint8).cpu())
        return torch.cat(out).numpy()
    finally:
        model.train(was_training)


def read_scene_image(path, in_chans: int = 1) -> tuple[np.ndarray, bool]:
    """``(grey float32 (H, W) in [0, 1], inverted)`` of an image file, white ink on black as the scenes are.

    A colour image (channels that differ) for a grey model, an unreadable or empty file
    are :class:`DataError`; dark ink on a light background (the border's median above
    0.5) is inverted.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if in_chans != 1:
        raise ConfigError(f"these weights read {in_chans}-channel images; predict reads grey scenes only")
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    if rgb.size == 0:
        raise DataError(f"{path}: empty image")
    if np.abs(rgb - rgb[..., :1]).max() > 2 / 255:
        raise DataError(f"{path}: a colour image; the model reads grey images (1 channel)")
    grey = rgb[..., 0]
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    inverted = bool(np.median(border) > 0.5)
    return (1.0 - grey if inverted else grey).astype(np.float32), inverted


def palette() -> list[int]:
    """A PIL palette (768 values): black for class 0, tab10's colours for classes 1-10, repeating after."""
    from deeper.analysis.plots import plt

    tab10 = [tuple(round(255 * c) for c in rgb) for rgb in plt.get_cmap("tab10").colors]
    return [v for i in range(256) for v in ((0, 0, 0) if i == 0 else tab10[(i - 1) % 10])]


def write_mask(out: Path, stem: str, grey: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    """``STEM_mask.png`` (palette PNG, pixel value = class index) and ``STEM_overlay.png``; their paths."""
    from PIL import Image

    from deeper.analysis.scene_preview import mask_overlay
    from deeper.fileio import write_bytes_atomic

    def png(im) -> bytes:
        import io

        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    m = Image.fromarray(mask.astype(np.uint8))
    m.putpalette(palette())  # an "L" image becomes a palette image with the same pixel values
    rgb = mask_overlay((grey * 255).round().astype(np.uint8), mask)
    overlay = Image.fromarray((rgb * 255).round().clip(0, 255).astype(np.uint8))
    mask_path, overlay_path = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
    write_bytes_atomic(mask_path, png(m))
    write_bytes_atomic(overlay_path, png(overlay))
    return str(mask_path), str(overlay_path)


def _unique_stem(stem: str, used: set[str]) -> str:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return name
