"""Accumulating a task's metrics over batches, and across processes.

A :class:`Meter` keeps two kinds of state:

- **sums** (loss x examples, correct answers, ...): 0-dim tensors added up on
  the device in float64 (exact counts; resumable bit for bit), one host sync
  when read; across DDP ranks they are added with one ``all_reduce``;
- **torchmetrics metrics** that may keep every prediction (top-5 accuracy, a
  confusion matrix, mAP, BLEU, FID): updated with each step's ``preds`` and
  ``target``; across ranks torchmetrics itself gathers their states (sums are
  added, lists of predictions concatenated) when ``compute`` runs.

``sync`` says whether the meter's batches were split across ranks (training
shards: yes; evaluation, which every rank runs on the whole split: no).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from deeper.train.distributed import all_reduce_sums

if TYPE_CHECKING:
    from deeper.tasks.base import StepOutput, Task


class Meter:
    def __init__(self, task: Task, metrics: dict | None = None, *, sync: bool = False):
        self.task = task
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.metrics = dict(metrics or {})
        self.sync = sync
        self._device: torch.device | None = None
        for m in self.metrics.values():
            m.sync_on_compute = sync  # evaluation runs the whole split on every rank: nothing to gather

    def add(self, out: StepOutput) -> None:
        for k, v in out.sums.items():
            v = v.detach().to(torch.float64)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += out.count
        if not self.metrics:
            return
        device = _device_of(out.preds)
        if device is not None and device != self._device:  # torchmetrics keeps its state where it is told
            self._device = device
            for m in self.metrics.values():
                m.to(device)
        for m in self.metrics.values():
            m.update(out.preds, out.target)

    def totals(self) -> dict[str, float]:
        """The sums as Python floats (one host sync), for the loop state and checkpoints."""
        return {k: float(v) for k, v in self.sums.items()}

    def load_totals(self, sums: dict[str, float], count: int) -> None:
        self.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in sums.items()}
        self.count = count

    def compute(self) -> dict:
        """Every figure: the task's summary of the sums, then each torchmetrics metric's value.

        Scalars come back as floats; tensors with more than one element (a confusion
        matrix) as nested lists.
        """
        sums, count = self.totals(), self.count
        if self.sync:
            sums, count = all_reduce_sums(sums, count)
        out = dict(self.task.summarize(sums, count))
        for name, m in self.metrics.items():
            if getattr(m, "update_count", 1) == 0:
                continue
            out[name] = to_python(m.compute())
        return out


def _device_of(value) -> torch.device | None:
    if isinstance(value, torch.Tensor):
        return value.device
    if isinstance(value, list | tuple) and value:
        return _device_of(value[0])
    if isinstance(value, dict) and value:
        return _device_of(next(iter(value.values())))
    return None


def to_python(value):
    """A metric's value as a float, or nested lists of numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return float(value) if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value


def scalars(metrics: dict) -> dict[str, float]:
    """The entries of ``metrics`` that are single numbers (what a row of ``metrics.csv`` holds)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def finite_or_none(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
