"""Knowledge distillation: a small student learns from a trained teacher's soft outputs.

The student's loss (Hinton et al., 2015) mixes the usual cross-entropy with
the labels and the KL divergence between the teacher's and the student's
class distributions softened by a temperature ``T``::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(``T^2`` keeps the soft term's gradients on the scale of the hard one's.)  The
task plugs into deeper's ordinary training loop through a callback that swaps
it in at the start of ``fit``; evaluation stays plain accuracy of the student.
:func:`distill` trains the same student twice with the same recipe, alone and
with the teacher, and reports the gain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError
from deeper.train.callbacks import Callback
from deeper.train.tasks import ClassificationTask, StepOutput


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(teacher || student)`` of the temperature-softened distributions (mean over the batch)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)  # fmt: skip


@dataclass
class DistillationTask(ClassificationTask):
    teacher: nn.Module | None = None
    temperature: float = 4.0
    alpha: float = 0.9

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        out = self._step(model, batch, self.label_smoothing)
        with torch.no_grad():
            teacher_logits = self.teacher(batch[0]).float()
        soft = distillation_loss(out.outputs.float(), teacher_logits, self.temperature)
        out.loss = self.alpha * soft + (1 - self.alpha) * out.loss
        out.sums["loss"] = out.loss.detach() * out.count
        return out


class Distill(Callback):
    """Makes ``fit`` train against a teacher (the model in ``teacher_weights``)."""

    name = "distill"

    def __init__(self, teacher_weights: str | os.PathLike, temperature: float = 4.0, alpha: float = 0.9):
        if not temperature > 0:
            raise ConfigError(f"--temperature must be positive, got {temperature}")
        if not 0 <= alpha <= 1:
            raise ConfigError(f"--alpha must be in [0, 1], got {alpha}")
        self.teacher_weights, self.temperature, self.alpha = teacher_weights, temperature, alpha

    def on_fit_start(self, run, state) -> None:
        from deeper.models import model_from_weights

        teacher, meta = model_from_weights(self.teacher_weights)
        if int(meta.get("num_classes", run.metadata["num_classes"])) != run.metadata["num_classes"]:
            raise ConfigError(f"teacher {self.teacher_weights} predicts {meta['num_classes']} classes")
        teacher = teacher.to(run.device).eval().requires_grad_(False)
        if run.train_loader.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        run.task = DistillationTask(
            label_smoothing=run.task.label_smoothing, teacher=teacher,
            temperature=self.temperature, alpha=self.alpha,
        )  # fmt: skip


def distill(
    teacher_weights: str | os.PathLike,
    cfg,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> dict:
    """Train ``cfg``'s student alone and distilled from the teacher; compare their test accuracy.

    Both runs share every option (seed included); their folders are
    ``OUT/alone`` and ``OUT/distilled``.
    """
    from deeper.inference import evaluate_weights
    from deeper.train import fit

    cb = Distill(teacher_weights, temperature, alpha)
    out = Path(cfg.run.out or "runs/distill")
    teacher = evaluate_weights(teacher_weights, cfg.data, data_dir=cfg.run.data_dir, device=cfg.run.device)
    alone = fit(cfg.replace(out=str(out / "alone")))
    distilled = fit(cfg.replace(out=str(out / "distilled")), callbacks=[cb])
    keep = ("test_accuracy", "train_seconds", "weights", "params")
    return {
        "student": cfg.model,
        "data": cfg.data,
        "teacher_accuracy": teacher["test_accuracy"],
        "temperature": temperature,
        "alpha": alpha,
        "alone": {k: alone[k] for k in keep},
        "distilled": {k: distilled[k] for k in keep},
        "gain": (distilled["test_accuracy"] - alone["test_accuracy"]) * 100,  # points
        "out": str(out),
    }
