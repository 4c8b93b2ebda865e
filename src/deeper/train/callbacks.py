"""Callbacks: optional behaviour that hooks into ``fit`` without touching the loop.

A callback sees the :class:`~deeper.train.run.Run` and the
:class:`~deeper.train.loop.LoopState` at fixed points.  ``on_step_end`` and
``on_epoch_end`` may return a string: the reason to stop the run there.
``on_epoch_end`` may also add entries to the epoch's metrics row.  Whatever a
callback must remember across a resume goes in ``state_dict`` (plain values and
tensors only: it is saved in the ``weights_only`` checkpoint).

Options of ``TrainConfig`` turn callbacks on through factories registered with
:func:`register_callback`: ``fit`` calls each factory with the resolved config,
and keeps the callbacks that are not ``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeper.train.config import TrainConfig
    from deeper.train.loop import LoopState
    from deeper.train.run import Run


class Callback:
    #: key of this callback's state in checkpoints (unique within a run)
    name: str = "callback"

    def on_fit_start(self, run: Run, state: LoopState) -> None:
        pass

    def on_step_end(self, run: Run, state: LoopState) -> str | None:
        return None

    def on_epoch_end(self, run: Run, state: LoopState, row: dict) -> str | None:
        return None

    def on_fit_end(self, run: Run, state: LoopState) -> None:
        """Called after the last epoch, before the final test evaluation and the saving of weights."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


CallbackFactory = Callable[["TrainConfig"], Callback | None]
_FACTORIES: list[CallbackFactory] = []


def register_callback(factory: CallbackFactory) -> CallbackFactory:
    """Register ``factory(cfg) -> Callback | None``; ``fit`` uses the callbacks it returns."""
    _FACTORIES.append(factory)
    return factory


def callbacks_for(cfg: TrainConfig) -> list[Callback]:
    out = [cb for f in _FACTORIES if (cb := f(cfg)) is not None]
    names = [cb.name for cb in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"two callbacks share the checkpoint name(s) {sorted(dup)}")
    return out


class TimeLimit(Callback):
    """Stops a run before ``seconds`` of training steps have passed, counted as the loop counts them
    (``LoopState.train_seconds``: evaluation is not training, and a resumed run keeps its earlier
    time): at the end of a step, when one more step as long as the longest so far (the first step of
    the fit, which warms up, left out) would end past the limit. So a run of steady steps stays within
    its limit instead of ending one step past it. The stop is checkpointed like ``--max-steps``: the
    run is then scored as it stands."""

    name = "time-limit"

    def __init__(self, seconds: float):
        if seconds <= 0:
            raise ValueError(f"a time limit must be positive, not {seconds}")
        self.seconds = seconds
        self._t0: float | None = None
        self._last = 0.0  # when the last step (or the evaluation before it) ended
        self._longest: float | None = None  # the longest step but the fit's first
        self._first = True

    def _spent(self, state: LoopState) -> float:
        return state.train_seconds + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def on_fit_start(self, run: Run, state: LoopState) -> None:
        self._t0 = self._last = time.perf_counter()
        self._longest = None
        self._first = True

    def on_step_end(self, run: Run, state: LoopState) -> str | None:
        now = time.perf_counter()
        if not self._first:
            self._longest = max(self._longest or 0.0, now - self._last)
        self._last, self._first = now, False
        if self._spent(state) + (self._longest or 0.0) > self.seconds:
            return f"time limit {self.seconds / 60:g} min"
        return None

    def on_epoch_end(self, run: Run, state: LoopState, row: dict) -> str | None:
        # train_seconds now holds the epoch; what follows it (evaluation) does not count
        self._t0 = self._last = time.perf_counter()
        return None
