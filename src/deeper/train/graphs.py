"""CUDA graphs (``--cuda-graphs``): each training step's forward, loss and backward as one replayed graph.

On a GPU a small network's step is a few hundred tiny kernels, and launching
them one by one from Python costs more than running them: deeper's eager step
takes about 5 ms on an H100 whatever the batch size.  A CUDA graph records
the kernels of forward, loss and backward once (``torch.cuda.graph``) and
replays the recording with a single launch for every later batch of the same
shape.  The optimizer, gradient clipping and learning-rate schedule stay
eager: they are a handful of fused multi-tensor kernels, and keeping them out
of the graph lets every optimizer and schedule work unchanged.

How a run goes:

* the first ``warmup`` steps (3) are ordinary eager steps on a side stream
  (cuDNN picks its algorithms, the optimizer creates its state), as PyTorch's
  CUDA-graph notes ask;
* the next step records the graph for its batch shape.  Batches of any other
  shape (the short last batch of an epoch) keep running eagerly;
* each batch is copied into the graph's static input tensors before a replay.
  The gradients live in the graph's memory pool, so they are never set to
  ``None`` between steps;
* the eager engine checks every loss for NaN/inf before applying the update,
  which is one host sync per step.  Here a device flag collects non-finite
  losses and is read every ``check_every`` steps and at the end of each epoch,
  so a diverged run stops with :class:`~deeper.errors.DivergedError` within
  that many steps (their updates have been applied by then).

Not available with ``--amp fp16`` (its grad scaler reads the overflow flag on
the host every step), ``--weight-noise`` or several processes; on a machine
without CUDA the flag is ignored with a one-line notice.
"""

from __future__ import annotations

import time

import torch

from deeper.errors import ConfigError, DivergedError
from deeper.runtime import notice
from deeper.tasks.base import Nets, StepOutput, Task
from deeper.train.loop import LoopState
from deeper.train.stepper import Stepper


def _signature(batch) -> tuple | None:
    """Shapes, dtypes and strides of a batch of tensors (``None`` for any other batch: it runs eagerly)."""
    if not isinstance(batch, tuple | list) or not all(isinstance(t, torch.Tensor) for t in batch):
        return None
    return tuple((tuple(t.shape), t.dtype, t.stride()) for t in batch)


def _detach(value):
    return value.detach() if isinstance(value, torch.Tensor) else value


def _detached(out: StepOutput) -> StepOutput:
    return StepOutput(
        _detach(out.loss), out.sums, out.count, _detach(out.outputs), _detach(out.preds), _detach(out.target)
    )


class GraphedStepper(Stepper):
    """A :class:`~deeper.train.stepper.Stepper` that replays a captured CUDA graph of forward and backward."""

    def __init__(
        self, optimizers: dict[str, torch.optim.Optimizer], schedulers: dict | None = None, *, amp=None,
        clip_grad: float | None = None, warmup: int = 3, check_every: int = 100,
    ):  # fmt: skip
        if amp is not None and amp.needs_scaler:
            raise ConfigError(
                "--cuda-graphs cannot run with --amp fp16 (its grad scaler syncs with the host every step); "
                "use --amp bf16 or off"
            )
        super().__init__(optimizers, schedulers, amp=amp, clip_grad=clip_grad)
        self.name = self.only()
        self.optimizer = self.optimizers[self.name]
        self.scheduler = self.schedulers.get(self.name)
        self.warmup, self.check_every = warmup, check_every
        self.graph: torch.cuda.CUDAGraph | None = None
        self.signature: tuple | None = None
        self.static_batch: tuple[torch.Tensor, ...] = ()
        self.static_out: StepOutput | None = None
        self.nonfinite: torch.Tensor | None = None
        self.eager_steps = 0  # warm-up and odd-shaped steps taken eagerly
        self.replays = 0
        self.capture_seconds = 0.0
        self._unchecked = 0
        self._stream: torch.cuda.Stream | None = None

    def _autocast(self):
        # cached casts of the weights would be baked into the graph and go stale after each update
        if self.amp is None or not self.amp.enabled:
            return torch.autocast("cuda", enabled=False)
        return torch.autocast("cuda", dtype=self.amp.dtype, cache_enabled=False)

    def _warmup_step(self, task: Task, nets: Nets, batch, state: LoopState) -> StepOutput:
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            out = super().step(task, nets, batch, state)
        current.wait_stream(self._stream)
        self.eager_steps += 1
        return _detached(out)  # the autograd graph of a side-stream step must not outlive it

    def _capture(self, task: Task, nets: Nets, batch) -> None:
        t0 = time.perf_counter()
        device = batch[0].device
        self.signature = _signature(batch)
        self.static_batch = tuple(t.clone() for t in batch)  # clone keeps the memory format
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        self.optimizer.zero_grad(set_to_none=True)  # backward inside the graph allocates .grad from its pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            with self._autocast():
                out = task.loss(nets, self.static_batch)
            out.loss.backward()
            self.nonfinite |= ~torch.isfinite(out.loss.detach())
        self.graph = graph
        self.static_out = _detached(out)  # keep no autograd graph alive: it belongs to the capture stream
        self.grads_to_none = False  # eager steps from now on accumulate into the graph's gradient tensors
        torch.cuda.synchronize(device)
        self.capture_seconds += time.perf_counter() - t0

    def step(self, task: Task, nets: Nets, batch, state: LoopState) -> StepOutput:
        if _signature(batch) is None:  # not a tuple of tensors (e.g. lists of targets): nothing to replay
            self.eager_steps += 1
            return super().step(task, nets, batch, state)
        if self.graph is None:
            if self.eager_steps < self.warmup:
                return self._warmup_step(task, nets, batch, state)
            self._capture(task, nets, batch)
        if _signature(batch) != self.signature:  # e.g. the last, shorter batch of an epoch
            self.eager_steps += 1
            return super().step(task, nets, batch, state)
        for static, t in zip(self.static_batch, batch):
            static.copy_(t)
        self.graph.replay()
        if self.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], self.clip_grad
            )
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.replays += 1
        self._unchecked += 1
        if self._unchecked >= self.check_every:
            self.end_epoch(state)
        out = self.static_out
        # the sums are read after the next replay has overwritten the graph's outputs: hand out copies
        sums = {k: v.clone() for k, v in out.sums.items()}
        return StepOutput(out.loss, sums, out.count, out.outputs, out.preds, out.target)

    def end_epoch(self, state: LoopState) -> None:
        """Read the non-finite flag (one host sync) and stop a diverged run."""
        self._unchecked = 0
        if self.nonfinite is not None and bool(self.nonfinite):
            raise DivergedError(
                f"the loss became NaN or infinite by step {state.global_step + 1} (epoch {state.epoch + 1}; "
                f"--cuda-graphs checks every {self.check_every} steps); "
                "try a lower learning rate or gradient clipping"
            )


def make_graphed_stepper(
    optimizers: dict, schedulers: dict, *, amp, device: torch.device, clip_grad, weight_noise, world_size: int
) -> GraphedStepper | None:
    """The stepper for ``--cuda-graphs``, or ``None`` (with a notice) where CUDA graphs cannot run."""
    if device.type != "cuda":
        notice("--cuda-graphs ignored: CUDA graphs need a CUDA device; training eagerly")
        return None
    if weight_noise:
        raise ConfigError("--cuda-graphs cannot run with --weight-noise (it swaps the weights every step)")
    if world_size > 1:
        raise ConfigError("--cuda-graphs runs in one process; drop --nproc or --cuda-graphs")
    return GraphedStepper(optimizers, schedulers, amp=amp, clip_grad=clip_grad)
