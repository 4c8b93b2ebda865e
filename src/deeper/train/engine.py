"""The engine: a whole training run of any task in one process (or one torchrun rank), resumable bit for bit.

A resumed run restores every part's weights, every optimizer, schedule and
grad scaler, the RNG, the task's own state, the sources' state (an
augmentation generator, an environment), the position inside the epoch, the
epoch's metric sums and every callback's state, so N steps + checkpoint + new
process + N steps equals 2N steps straight.

:func:`run_epochs` (the epoch loop: train, validate, log, call back,
checkpoint) and :func:`run_result` are shared with the from-scratch NumPy
engine (:mod:`deeper.scratch.trainer`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from deeper.errors import ConfigError, DeeperError
from deeper.fileio import RunLock, write_text_atomic
from deeper.models import count_parameters, save_weights
from deeper.runtime import listening, notice, rng_state, set_rng_state, tune_allocator
from deeper.tasks.base import Metric, Task
from deeper.train import average, regularize, schedule  # noqa: F401 (register their callbacks)
from deeper.train.callbacks import Callback, callbacks_for
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from deeper.train.config import TrainConfig
from deeper.train.logger import ConsoleLog
from deeper.train.loop import LoopState, evaluate, steps_per_epoch, train_one_epoch
from deeper.train.metrics import scalars
from deeper.train.run import Run, build_run, default_run_dir


class Interrupted(DeeperError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved."""

    exit_code = 130


def run_engine(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
    log: Callable[[str], None] = notice,
) -> dict:
    """Train as ``cfg`` says in this process; return the summary also written to ``result.json``.

    With ``resume=True``, ``cfg.run.out`` must be an existing run folder: training
    continues from its latest checkpoint.  ``callbacks`` are added to those the
    configuration turns on.  (:func:`deeper.train.fit` is the entry point that also
    launches several processes, ensembles and the scratch engine.)
    """
    cfg = cfg.resolved()
    from deeper.train.distributed import broadcast_object, init_distributed

    if cfg.run.device in ("cpu", "auto"):
        tune_allocator()  # the step's large tensors stay in the heap (see its docstring)

    world = init_distributed(cfg.run.device)  # None unless launched by torchrun with several processes
    if world is not None and not world.is_main:
        log = lambda message: None  # noqa: E731 (only rank 0 talks and writes)
    run_dir = Path(cfg.run.out) if cfg.run.out else Path(broadcast_object(str(default_run_dir(cfg))))
    created = first_missing(run_dir)  # the folder this run creates (run_dir or an ancestor), if any
    lock = RunLock(run_dir).acquire() if world is None or world.is_main else None  # one writer per run
    threads = torch.get_num_threads()  # a task may narrow them for its run (rl, caption): restored after
    console = ConsoleLog() if world is None or world.is_main else None  # the run folder's console.log
    try:
        if console is None:
            return _run_locked(cfg, run_dir, world, resume=resume, callbacks=callbacks, log=log)
        with listening(console.hear):
            try:
                return _run_locked(
                    cfg, run_dir, world, resume=resume, callbacks=callbacks, log=_recorded(log, console),
                    console=console,
                )  # fmt: skip
            except DeeperError as e:  # what stopped the run (Ctrl-C, divergence), as the command prints it
                console.hear(f"deeper train: error: {e}")
                raise
    except BaseException:
        if created is not None and lock is not None and {p.name for p in run_dir.iterdir()} <= {".lock"}:
            shutil.rmtree(
                created, ignore_errors=True
            )  # refused before it wrote anything: leave nothing behind
        raise
    finally:
        torch.set_num_threads(threads)
        if console is not None:
            console.close()
        if lock is not None:
            lock.release()


def _recorded(log: Callable[[str], None], console: ConsoleLog) -> Callable[[str], None]:
    """``log`` that also writes each line into ``console``, once (``log`` may print through :func:`notice`)."""

    def said(message: str) -> None:
        console.hear(f"deeper: {message}")
        with console.quiet():
            log(message)

    return said


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (``None``: ``path`` exists)."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _run_locked(
    cfg: TrainConfig, run_dir: Path, world, *, resume: bool, callbacks, log, console: ConsoleLog | None = None
) -> dict:
    from deeper.train.distributed import Silent, all_reduce_sums

    ckpt_path = checkpoint_to_resume(run_dir, resume)
    started = time.perf_counter()
    run = build_run(cfg)
    cbs = callbacks_for(cfg) + list(callbacks or [])
    state = start_state(run, cbs, _restore if resume else None, ckpt_path, run_dir, log)

    from deeper.train.logger import RunLogger

    logger = (
        RunLogger(run_dir, tensorboard=cfg.run.tensorboard, purge_step=state.global_step if resume else None)
        if run.is_main
        else Silent()
    )
    from deeper.train.provenance import recorded_config

    logger.write_config(recorded_config(cfg, run))  # the options, what they resolved to, the versions
    if console is not None:
        console.open(run_dir)  # the lines said so far, then every line as it comes
    steps = StepLosses(run, logger)
    if resume:
        logger.trim_steps(state.global_step)  # rows past the checkpoint belong to the abandoned tail
    n_params = count_parameters(run.model)
    o = cfg.optim
    amp = ""
    if run.amp is not None and run.amp.enabled:
        amp = f", amp {run.amp.name}" + (" (auto: faster on this CPU family)" if cfg.speed.amp == "auto" else "")
    log(
        f"training {_describe_parts(run)} on {run.data_name} ({_sizes(run)}) on {run.device}"
        f"{f' x {run.world_size} processes' if run.world_size > 1 else ''}{amp}"
        f"{f', task {cfg.task}' if cfg.task != 'classify' else ''}, recipe {cfg.recipe}: "
        f"{o.optimizer} lr {o.lr:g}, batch {o.batch_size}, {o.epochs} epochs, schedule {o.schedule} -> {run_dir}"
    )

    def checkpoint() -> None:
        if not run.is_main:
            return
        steps.flush()  # steps.csv reaches the checkpoint: a resumed run continues it
        state.snapshot_sums()
        save_checkpoint(
            run_dir,
            state.global_step,
            run.parts.module_state(),
            {
                **run.parts.optimizer_state(),
                "rng": rng_state(),
                "stepper": run.stepper.state_dict(),
                "task": run.task.state_dict(),
                "sources": {"train": source_state(run.train_loader)},
                "loop": state.to_dict(),
                "callbacks": {cb.name: cb.state_dict() for cb in cbs},
                "config": cfg.to_dict(),
            },
        )

    stop: list[str] = []
    per_epoch = steps_per_epoch(run.train_loader)

    def on_step(s: LoopState) -> bool:
        steps.record(s)
        at_epoch_end = s.step_in_epoch == per_epoch  # the epoch-end checkpoint follows
        every = cfg.run.checkpoint_every
        if every and s.global_step % every == 0 and not at_epoch_end:
            checkpoint()
        for cb in cbs:
            if reason := cb.on_step_end(run, s):
                stop.append(reason)
        if cfg.run.max_steps is not None and s.global_step >= cfg.run.max_steps:
            stop.append(f"max-steps {cfg.run.max_steps}")
        return bool(stop)

    def train_epoch() -> dict:
        return train_one_epoch(
            run.parts, run.task, run.train_loader, stepper=run.stepper, state=state, on_step=on_step,
            progress=cfg.run.progress if run.is_main else False, desc=f"epoch {state.epoch + 1}/{o.epochs}",
        )  # fmt: skip

    bar = cfg.run.progress if run.is_main else False
    hooks = EpochHooks(
        train_epoch=train_epoch,
        validate=(lambda: evaluate(run.parts, run.task, run.val_loader, split="val", progress=bar))
        if run.val_loader
        else None,
        lr=lambda: learning_rates(run.parts.optimizers),
        # each rank trained on its own shard: add the sums up
        reduce=(lambda: run.task.summarize(*all_reduce_sums(state.epoch_sums, state.epoch_count)))
        if run.world_size > 1
        else None,
        world_size=run.world_size,
        task=run.task,
        flush=steps.flush,
    )
    run_epochs(
        run, state, hooks, cbs=cbs, logger=logger, log=log, checkpoint=checkpoint, run_dir=run_dir, stop=stop
    )
    steps.flush()
    return _finish(run, state, run_dir, logger, stop[0] if stop else "completed", n_params, started)


class StepLosses:
    """Every training step's loss into TensorBoard and ``steps.csv`` (columns step, epoch, the task's losses).

    Each step keeps a reference to the epoch's running sums (tensors on the device, no
    host sync); :meth:`flush`, every :data:`FLUSH` steps and before each checkpoint,
    turns the differences between consecutive sums into each step's own figures (the
    batch's mean loss) with one pass over them.
    """

    FLUSH = 50

    def __init__(self, run: Run, logger):
        self.task, self.logger = run.task, logger
        self.names = [m.name for m in run.task.metrics if m.name.startswith("loss")]
        self.enabled = run.is_main and bool(self.names)
        self.rows: list[tuple[int, int, dict, int]] = []  # (step, epoch, the epoch's sums, their count)
        self.meter = None
        self.before: tuple[dict, int] = ({}, 0)  # the sums before the first kept step

    def record(self, s: LoopState) -> None:
        if not self.enabled or s.live is None:
            return
        if s.live is not self.meter:  # a new epoch (or a resumed one): its sums start from the loop state's
            self.flush()
            self.meter, self.before = s.live, (dict(s.epoch_sums), s.epoch_count)
        self.rows.append((s.global_step, s.epoch + 1, dict(s.live.sums), s.live.count))
        if len(self.rows) >= self.FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        out = []
        prev, prev_count = {k: float(v) for k, v in self.before[0].items()}, self.before[1]
        for step, epoch, sums, count in self.rows:
            now = {k: float(v) for k, v in sums.items()}
            delta = {k: v - prev.get(k, 0.0) for k, v in now.items()}
            try:
                figures = self.task.summarize(delta, count - prev_count)
            except (KeyError, ZeroDivisionError, TypeError, ValueError):  # a step that added nothing to a sum
                figures = {}
            row = {"step": step, "epoch": epoch}
            row.update({n: figures[n] for n in self.names if isinstance(figures.get(n), float)})
            out.append(row)
            prev, prev_count = now, count
        self.before = (prev, prev_count)
        self.rows = []
        self.logger.steps(out, self.names)


def _describe_parts(run: Run) -> str:
    if len(run.parts.modules) == 1:
        return f"{run.model_name} ({count_parameters(run.model):,} parameters)"
    parts = ", ".join(f"{n} {count_parameters(m):,}" for n, m in run.parts.modules.items())
    return f"{run.model_name} (parameters: {parts})"


def _sizes(run: Run) -> str:
    def n(source) -> str:
        ds = getattr(source, "dataset", None)
        return f"{len(ds):,}" if ds is not None else "-"

    if getattr(run.train_loader, "dataset", None) is None:
        return f"{steps_per_epoch(run.train_loader):,} steps per epoch"
    return f"{n(run.train_loader)} train / {n(run.val_loader) if run.val_loader else 0} val"


def learning_rates(optimizers: dict) -> dict[str, float]:
    """``{"lr": ...}`` for one optimizer, ``{"lr_G": ..., "lr_D": ...}`` for several (first param group)."""
    if len(optimizers) == 1:
        return {"lr": float(next(iter(optimizers.values())).param_groups[0]["lr"])}
    return {f"lr_{n}": float(o.param_groups[0]["lr"]) for n, o in optimizers.items()}


def source_state(source) -> dict:
    return source.state_dict() if hasattr(source, "state_dict") else {}


@dataclass
class EpochHooks:
    """What the engines do differently inside :func:`run_epochs`."""

    train_epoch: Callable[[], dict]  # train the current epoch (from state.step_in_epoch); its metrics
    validate: Callable[[], dict] | None  # metrics on the validation split
    lr: Callable[[], dict[str, float]]  # the learning rate(s) now, as row entries
    reduce: Callable[[], dict] | None = None  # the epoch's metrics over all ranks (data parallel)
    after_callbacks: Callable[[], None] | None = None  # e.g. take up a rate a callback changed
    world_size: int = 1
    task: Task | None = None  # whose metrics the epoch line shows (None: classification's)
    flush: Callable[[], None] | None = None  # write what is logged per step (before a failure ends the run)


def run_epochs(
    run, state: LoopState, hooks: EpochHooks, *, cbs: list[Callback], logger, log, checkpoint, run_dir: Path,
    stop: list[str],
) -> None:  # fmt: skip
    """The epoch loop both engines share: train, validate, log, call back, checkpoint; Ctrl-C saves."""
    cfg = run.cfg
    per_epoch = steps_per_epoch(run.train_loader)
    metrics, unit = _line_metrics(hooks.task)
    try:
        while state.epoch < cfg.optim.epochs and not stop:
            if cfg.run.max_steps is not None and state.global_step >= cfg.run.max_steps:
                stop.append(f"max-steps {cfg.run.max_steps}")
                break
            run.train_loader.set_epoch(state.epoch, skip_batches=state.step_in_epoch)
            t0, s0 = state.train_seconds, state.train_samples
            train_metrics = hooks.train_epoch()
            if state.step_in_epoch < per_epoch:  # stopped inside the epoch
                checkpoint()
                break
            if hooks.reduce is not None:
                train_metrics = hooks.reduce()
            row = {"epoch": state.epoch + 1, "step": state.global_step}
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            if hooks.validate is not None:
                row.update({f"val_{k}": v for k, v in scalars(hooks.validate()).items()})
            dt, dn = state.train_seconds - t0, state.train_samples - s0
            row.update(hooks.lr())
            row.update(epoch_seconds=dt, img_per_s=dn * hooks.world_size / dt if dt else math.nan)
            for cb in cbs:
                if reason := cb.on_epoch_end(run, state, row):
                    stop.append(reason)
            if hooks.after_callbacks is not None:
                hooks.after_callbacks()
            state.history.append(row)
            state.epoch, state.step_in_epoch, state.epoch_sums, state.epoch_count = state.epoch + 1, 0, {}, 0
            logger.epoch(state.history, state.global_step)
            log(epoch_line(row, cfg.optim.epochs, metrics, unit))
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        logger.close()
        raise interrupted(state, run_dir) from None
    except BaseException:
        if hooks.flush is not None:  # the steps up to a diverging one are what explains it
            hooks.flush()
        logger.close()
        raise
    for cb in cbs:
        cb.on_fit_end(run, state)


def start_state(run, cbs: list[Callback], restore, ckpt_path: Path | None, run_dir: Path, log) -> LoopState:
    """The loop state a run starts from: callbacks told of the start, then ``restore`` (resuming) if given."""
    state = LoopState()
    for cb in cbs:
        cb.on_fit_start(run, state)
    if restore is not None:
        state = restore(run, cbs, ckpt_path)
        log(
            f"resuming {run_dir} at step {state.global_step} (epoch {state.epoch + 1}, batch {state.step_in_epoch})"
        )
    return state


def checkpoint_to_resume(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a resumed run starts from; ``None`` for a new run, which must not overwrite one."""
    if resume:
        return latest_checkpoint(run_dir)
    if (run_dir / "checkpoints" / "latest").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out"
        )
    return None


def interrupted(state: LoopState, run_dir: Path) -> Interrupted:
    """The error a Ctrl-C becomes once the checkpoint is saved (it says how to resume)."""
    return Interrupted(
        f"interrupted at step {state.global_step}; checkpoint saved. Resume with: deeper train --resume {run_dir}"
    )


def _restore(run: Run, cbs: list[Callback], path: Path) -> LoopState:
    from deeper.errors import CheckpointError

    tensors, saved = load_checkpoint(path)
    try:
        loop = LoopState.from_dict(saved["loop"])
        saved_epochs = (saved.get("config") or {}).get("optim", {}).get("epochs")
        # resumed with a new --epochs: the schedules are the new run's, at the step reached
        longer = saved_epochs is not None and saved_epochs != run.cfg.optim.epochs
        run.parts.load_module_state(tensors, str(path))
        run.parts.load_optimizer_state(saved, str(path), replay_steps=loop.global_step if longer else None)
        for cb in cbs:
            cb.load_state_dict(saved.get("callbacks", {}).get(cb.name, {}))
        run.stepper.load_state_dict(saved.get("stepper", {}))
        run.task.load_state_dict(saved.get("task", {}))
        if hasattr(run.train_loader, "load_state_dict"):
            run.train_loader.load_state_dict(saved.get("sources", {}).get("train", {}))
        set_rng_state(saved["rng"])
        return loop
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: the checkpoint does not match this run ({type(e).__name__}: {e})"
        ) from None


def _finish(
    run: Run, state: LoopState, run_dir: Path, logger, stopped: str, n_params: int, started: float
) -> dict:
    cfg, task = run.cfg, run.task
    bar = cfg.run.progress if run.is_main else False
    test = (
        evaluate(run.parts, task, run.test_loader, split="test", progress=bar)
        if run.test_loader is not None
        else {}
    )
    weights = run_dir / "model.safetensors"
    if run.is_main:
        meta = {**run.metadata, "task": cfg.task, f"test_{task.primary}": test.get(task.primary)}
        if cfg.task_args:
            meta["task_args"] = cfg.task_args
        save_weights(run.final_model, weights, meta)
    if run.is_main:
        run.extras.update(task.finish(run, run_dir, test))
    if state.history and run.is_main:
        from deeper.analysis.plots import plot_curves

        keys = {k.partition("_")[2] for row in state.history for k in row}
        shown = tuple(m.name for m in task.metrics if m.shown and m.name in keys)
        plot_curves(
            state.history,
            run_dir / "curves.png",
            title=f"{run.model_name} on {run.data_name} ({cfg.recipe} recipe)",
            metrics=shown,
        )
    logger.close()
    result = run_result(
        cfg, state, test, stopped=stopped, started=started, params=n_params, device=str(run.device),
        world_size=run.world_size, amp=run.amp.name if run.amp is not None else "off", run_dir=run_dir, weights=weights, task=task,
        model=run.model_name, data=run.data_name, **run.extras,
    )  # fmt: skip
    if run.is_main:
        write_text_atomic(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def run_result(
    cfg,
    state: LoopState,
    test: dict,
    *,
    stopped: str,
    started: float,
    params: int,
    device: str,
    run_dir: Path,
    weights: Path,
    world_size: int = 1,
    task: Task | None = None,
    model: str | None = None,
    data: str | None = None,
    **extra,
) -> dict:
    """The ``result.json`` of a finished run (either engine): what was trained, how well, how fast.

    Every scalar test figure of the task is a ``test_<metric>`` entry (``test_accuracy``,
    ``test_loss``, ...), the last validation figure of its primary metric ``val_<metric>``;
    ``test`` holds all the test figures (a confusion matrix too).  ``extra`` (the scratch
    engine's ``engine`` and ``dtype``) goes before the paths.
    """
    primary = task.primary if task is not None else "accuracy"
    last = state.history[-1] if state.history else {}
    seconds = state.train_seconds
    flat = {f"test_{k}": v for k, v in scalars(test).items()}
    return {
        "task": cfg.task,
        "model": model or cfg.model,
        "data": data or cfg.data,
        "recipe": cfg.recipe,
        "primary_metric": primary,
        f"test_{primary}": test.get(primary),
        **flat,
        f"val_{primary}": last.get(f"val_{primary}"),
        "epochs": state.epoch,
        "steps": state.global_step,
        "stopped": stopped,
        "train_seconds": seconds,
        "img_per_s": state.train_samples * world_size / seconds if seconds > 0 else None,
        "seconds": time.perf_counter() - started,
        "params": params,
        "device": device,
        "world_size": world_size,
        "test": test,
        **extra,
        "run_dir": str(run_dir),
        "weights": str(weights),
    }


_CLASSIFY_LINE = (Metric("loss", higher_is_better=False), Metric("accuracy", label="acc"))


def _line_metrics(task: Task | None) -> tuple[tuple[Metric, ...], str]:
    if task is None:
        return _CLASSIFY_LINE, "img"
    return tuple(m for m in task.metrics if m.shown), task.unit


def epoch_line(
    row: dict, epochs: int, metrics: tuple[Metric, ...] = _CLASSIFY_LINE, unit: str = "img"
) -> str:
    """``epoch 3/6 | train loss 0.1234 acc 0.9876 | val loss ... | 12.3 s (4,000 img/s)``."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for split in ("train", "val"):
        shown = [
            f"{m.shown} {row[f'{split}_{m.name}']:{m.fmt}}" for m in metrics if f"{split}_{m.name}" in row
        ]
        if shown:
            parts.append(f"{split} {' '.join(shown)}")
    parts.append(f"{row['epoch_seconds']:.1f} s ({row['img_per_s']:,.0f} {unit}/s)")
    return " | ".join(parts)
