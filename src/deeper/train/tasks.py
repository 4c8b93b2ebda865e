"""Tasks: what the training loop asks of a problem.

The loop never looks inside a batch.  A task turns ``(model, batch)`` into a
:class:`StepOutput`: the loss to back-propagate, the model outputs, and metric
*sums* over the batch (so they add up across batches and, later, across ranks).
``summarize`` turns accumulated sums into the reported figures.  Classification
is the first task; detection, segmentation, captioning, GANs and DQN plug into
the same loop by implementing the same three methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, the mean loss to back-propagate
    outputs: torch.Tensor | None  # the model's outputs (e.g. logits)
    sums: dict[str, torch.Tensor]  # metric sums over the batch (0-dim tensors, on the device)
    count: int  # number of examples the sums cover


class Task(Protocol):
    #: the metric that names "better" (e.g. for early stopping and best checkpoints)
    primary_metric: str

    def training_step(self, model: nn.Module, batch) -> StepOutput: ...

    def evaluation_step(self, model: nn.Module, batch) -> StepOutput: ...

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]: ...


class MetricSums:
    """Accumulates :class:`StepOutput` sums on the device; one host sync at :meth:`totals`."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, out: StepOutput) -> None:
        for k, v in out.sums.items():
            v = v.detach().to(torch.float64)  # float64 sums: exact counts, and resumable bit for bit
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += out.count

    def totals(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.sums.items()}


@dataclass
class ClassificationTask:
    """Softmax cross-entropy over class logits; reports ``loss`` and ``accuracy``.

    Labels may be class indices ``(B,)`` or class probabilities ``(B, K)`` (what
    mixing augmentations produce); accuracy then counts the most probable class.
    """

    label_smoothing: float = 0.0
    primary_metric: str = "accuracy"
    #: weight of each auxiliary classifier's loss, for models that return ``(logits, *aux_logits)``
    #: in training mode (GoogLeNet's deep supervision; 0.3 as in the paper)
    aux_weight: float = 0.3

    def _step(self, model: nn.Module, batch, smoothing: float) -> StepOutput:
        x, y = batch
        logits = model(x)
        aux = ()
        if isinstance(logits, tuple):
            logits, *aux = logits
        if logits.dtype != torch.float32 and logits.dtype != torch.float64:
            logits_f = logits.float()
        else:
            logits_f = logits
        loss = F.cross_entropy(logits_f, y, label_smoothing=smoothing)
        for a in aux:
            loss = loss + self.aux_weight * F.cross_entropy(a.float(), y, label_smoothing=smoothing)
        target = y if y.ndim == 1 else y.argmax(1)
        correct = (logits_f.argmax(1) == target).sum()
        n = x.shape[0]
        return StepOutput(loss, logits, {"loss": loss.detach() * n, "correct": correct}, n)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        return self._step(model, batch, self.label_smoothing)

    def evaluation_step(self, model: nn.Module, batch) -> StepOutput:
        return self._step(model, batch, 0.0)

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if count == 0:
            return {}
        return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count}
