"""Knowledge distillation: a student learns from a trained teacher's soft outputs.

The student's loss (Hinton et al., 2015) mixes the usual cross-entropy with
the labels and the KL divergence between the teacher's and the student's
class distributions softened by a temperature ``T``::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(``T^2`` keeps the soft term's gradients on the scale of the hard one's.)  The
teacher is a frozen part of the run (``teacher``: no optimizer, no gradients,
always in eval mode); evaluation is the student's plain classification.

    deeper train --task distill --task-arg teacher=runs/big/model.safetensors --model mlp
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deeper.errors import ConfigError
from deeper.tasks.base import Nets, StepOutput, TaskOption, register_task
from deeper.tasks.classify import ClassificationTask
from deeper.train.build import BuildContext, Built


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(teacher || student)`` of the temperature-softened distributions (mean over the batch)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)  # fmt: skip


@register_task
class DistillationTask(ClassificationTask):
    name = "distill"
    description = "a classifier trained on a frozen teacher's softened outputs and the labels (Hinton et al.)"
    metrics = ClassificationTask.metrics
    primary = "accuracy"
    options = {
        **ClassificationTask.options,
        "teacher": TaskOption("", "the teacher's weights (.safetensors file or run folder)"),
        "temperature": TaskOption(4.0, "softmax temperature of the soft targets", low=1e-3, high=1e3),
        "alpha": TaskOption(0.9, "weight of the soft (teacher) term", low=0.0, high=1.0),
    }

    def build(self, ctx: BuildContext) -> Built:
        from deeper.models import model_from_weights
        from deeper.models.weights import weights_file

        if not self.args["teacher"]:
            raise ConfigError("task distill needs its teacher: --task-arg teacher=WEIGHTS_OR_RUN")
        built = super().build(ctx)
        path = weights_file(self.args["teacher"])
        teacher, meta = model_from_weights(path)
        if int(meta.get("num_classes", self.num_classes)) != self.num_classes:
            raise ConfigError(
                f"teacher {path} predicts {meta['num_classes']} classes, the data has {self.num_classes}"
            )
        teacher.requires_grad_(False)  # a frozen part: no optimizer, no DDP wrapper
        layout = (
            torch.channels_last if getattr(built.train, "channels_last", False) else torch.contiguous_format
        )
        built.parts.modules["teacher"] = ctx.place(teacher, compile=False).to(memory_format=layout).eval()
        built.metadata["teacher"] = str(path)
        return built

    def loss(self, nets: Nets, batch) -> StepOutput:
        out = self._step(nets["net"], batch, self.label_smoothing)
        teacher = nets["teacher"].eval()
        with torch.no_grad():
            teacher_logits = teacher(batch[0]).float()
        soft = distillation_loss(out.outputs.float(), teacher_logits, self.args["temperature"])
        alpha = self.args["alpha"]
        out.loss = alpha * soft + (1 - alpha) * out.loss
        out.sums["loss"] = out.loss.detach() * out.count
        return out
