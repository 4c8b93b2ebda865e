"""``fit``: a whole training run from a :class:`TrainConfig`, resumable bit for bit.

A resumed run restores the weights, optimizer and schedule state, the RNG, the
position inside the epoch, the epoch's metric sums and every callback's state,
so N steps + checkpoint + new process + N steps equals 2N steps straight.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deeper.errors import ConfigError, DeeperError
from deeper.fileio import write_text_atomic
from deeper.models import count_parameters, save_weights
from deeper.runtime import notice, rng_state, set_rng_state
from deeper.train.callbacks import Callback, callbacks_for
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from deeper.train.config import TrainConfig
from deeper.train.loop import LoopState, evaluate, train_one_epoch
from deeper.train.run import Run, build_run, default_run_dir


class Interrupted(DeeperError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved."""

    exit_code = 130


def fit(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
    log: Callable[[str], None] = notice,
) -> dict:
    """Train as ``cfg`` says; return the summary also written to ``result.json``.

    With ``resume=True``, ``cfg.run.out`` must be an existing run folder: training
    continues from its latest checkpoint.  ``callbacks`` are added to those the
    configuration turns on.
    """
    cfg = cfg.resolved()
    from deeper.accel.distributed import Silent, all_reduce_sums, broadcast_object, init_distributed

    world = init_distributed(cfg.run.device)  # None unless launched by torchrun with several processes
    if world is not None and not world.is_main:
        log = lambda message: None  # noqa: E731 (only rank 0 talks and writes)
    run_dir = Path(cfg.run.out) if cfg.run.out else Path(broadcast_object(str(default_run_dir(cfg))))
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
    logger.write_config(cfg.to_dict())
    n_params = count_parameters(run.model)
    n_val = len(run.val_loader.dataset) if run.val_loader else 0
    log(
        f"training {cfg.model} ({n_params:,} parameters) on {cfg.data} "
        f"({len(run.train_loader.dataset):,} train / {n_val:,} val) on {run.device}"
        f"{f' x {run.world_size} processes' if run.world_size > 1 else ''}"
        f"{f', amp {cfg.speed.amp}' if run.amp is not None and run.amp.enabled else ''}, recipe {cfg.recipe}: "
        f"{cfg.optim.optimizer} lr {cfg.optim.lr:g}, batch {cfg.optim.batch_size}, {cfg.optim.epochs} epochs, schedule {cfg.optim.schedule} "
        f"-> {run_dir}"
    )

    def checkpoint() -> None:
        if not run.is_main:
            return
        save_checkpoint(
            run_dir,
            state.global_step,
            run.model.state_dict(),
            {
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
                "rng": rng_state(),
                "updater": run.updater.state_dict(),
                "loop": state.to_dict(),
                "callbacks": {cb.name: cb.state_dict() for cb in cbs},
                "config": cfg.to_dict(),
            },
        )

    stop: list[str] = []

    def on_step(s: LoopState) -> bool:
        if s.global_step % 50 == 0:
            logger.scalar(
                "loss/train_step", s.epoch_sums.get("loss", 0.0) / max(1, s.epoch_count), s.global_step
            )
        at_epoch_end = s.step_in_epoch == len(run.train_loader)  # the epoch-end checkpoint follows
        if cfg.run.checkpoint_every and s.global_step % cfg.run.checkpoint_every == 0 and not at_epoch_end:
            checkpoint()
        for cb in cbs:
            if reason := cb.on_step_end(run, s):
                stop.append(reason)
        if cfg.run.max_steps is not None and s.global_step >= cfg.run.max_steps:
            stop.append(f"max-steps {cfg.run.max_steps}")
        return bool(stop)

    def train_epoch() -> dict:
        return train_one_epoch(
            run.train_model, run.task, run.train_loader, updater=run.updater, state=state, on_step=on_step,
            progress=cfg.run.progress if run.is_main else False, desc=f"epoch {state.epoch + 1}/{cfg.optim.epochs}",
        )  # fmt: skip

    hooks = EpochHooks(
        train_epoch=train_epoch,
        validate=(lambda: evaluate(run.final_model, run.task, run.val_loader)) if run.val_loader else None,
        lr=lambda: float(run.optimizer.param_groups[0]["lr"]),
        # each rank trained on its own shard: add the sums up
        reduce=(lambda: run.task.summarize(*all_reduce_sums(state.epoch_sums, state.epoch_count)))
        if run.world_size > 1
        else None,
        world_size=run.world_size,
    )
    run_epochs(
        run, state, hooks, cbs=cbs, logger=logger, log=log, checkpoint=checkpoint, run_dir=run_dir, stop=stop
    )
    return _finish(run, state, run_dir, logger, stop[0] if stop else "completed", n_params, started)


@dataclass
class EpochHooks:
    """What the engines do differently inside :func:`run_epochs`."""

    train_epoch: Callable[[], dict]  # train the current epoch (from state.step_in_epoch); its metrics
    validate: Callable[[], dict] | None  # metrics on the validation split
    lr: Callable[[], float]  # the learning rate now
    reduce: Callable[[], dict] | None = None  # the epoch's metrics over all ranks (data parallel)
    after_callbacks: Callable[[], None] | None = None  # e.g. take up a rate a callback changed
    world_size: int = 1


def run_epochs(
    run, state: LoopState, hooks: EpochHooks, *, cbs: list[Callback], logger, log, checkpoint, run_dir: Path,
    stop: list[str],
) -> None:  # fmt: skip
    """The epoch loop both engines share: train, validate, log, call back, checkpoint; Ctrl-C saves."""
    cfg = run.cfg
    try:
        while state.epoch < cfg.optim.epochs and not stop:
            if cfg.run.max_steps is not None and state.global_step >= cfg.run.max_steps:
                stop.append(f"max-steps {cfg.run.max_steps}")
                break
            run.train_loader.set_epoch(state.epoch, skip_batches=state.step_in_epoch)
            t0, s0 = state.train_seconds, state.train_samples
            train_metrics = hooks.train_epoch()
            if state.step_in_epoch < len(run.train_loader):  # stopped inside the epoch
                checkpoint()
                break
            if hooks.reduce is not None:
                train_metrics = hooks.reduce()
            row = {"epoch": state.epoch + 1, "step": state.global_step}
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            if hooks.validate is not None:
                row.update({f"val_{k}": v for k, v in hooks.validate().items()})
            dt, dn = state.train_seconds - t0, state.train_samples - s0
            row.update(
                lr=hooks.lr(), epoch_seconds=dt, img_per_s=dn * hooks.world_size / dt if dt else math.nan
            )
            for cb in cbs:
                if reason := cb.on_epoch_end(run, state, row):
                    stop.append(reason)
            if hooks.after_callbacks is not None:
                hooks.after_callbacks()
            state.history.append(row)
            state.epoch, state.step_in_epoch, state.epoch_sums, state.epoch_count = state.epoch + 1, 0, {}, 0
            logger.epoch(state.history, state.global_step)
            log(_epoch_line(row, cfg.optim.epochs))
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        logger.close()
        raise interrupted(state, run_dir) from None
    except BaseException:
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
    model_state, saved = load_checkpoint(path)
    run.model.load_state_dict(model_state)
    run.optimizer.load_state_dict(saved["optimizer"])
    if run.scheduler is not None and saved.get("scheduler") is not None:
        run.scheduler.load_state_dict(saved["scheduler"])
    for cb in cbs:
        cb.load_state_dict(saved.get("callbacks", {}).get(cb.name, {}))
    run.updater.load_state_dict(saved.get("updater", {}))
    set_rng_state(saved["rng"])
    return LoopState(**saved["loop"])


def _finish(
    run: Run, state: LoopState, run_dir: Path, logger, stopped: str, n_params: int, started: float
) -> dict:
    cfg = run.cfg
    model = run.final_model
    test_metrics = evaluate(model, run.task, run.test_loader)
    weights = run_dir / "model.safetensors"
    if run.is_main:
        save_weights(model, weights, {**run.metadata, "test_accuracy": test_metrics.get("accuracy")})
    if state.history and run.is_main:
        from deeper.analysis.plots import plot_curves

        plot_curves(
            state.history, run_dir / "curves.png", title=f"{cfg.model} on {cfg.data} ({cfg.recipe} recipe)"
        )
    logger.close()
    result = run_result(
        cfg, state, test_metrics, stopped=stopped, started=started, params=n_params, device=str(run.device),
        world_size=run.world_size, amp=cfg.speed.amp, run_dir=run_dir, weights=weights, **run.extras,
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
    **extra,
) -> dict:
    """The ``result.json`` of a finished run (either engine): what was trained, how well, how fast.

    ``extra`` (the scratch engine's ``engine`` and ``dtype``) goes before the paths.
    """
    last = state.history[-1] if state.history else {}
    seconds = state.train_seconds
    return {
        "model": cfg.model,
        "data": cfg.data,
        "recipe": cfg.recipe,
        "test_accuracy": test.get("accuracy"),
        "test_loss": test.get("loss"),
        "val_accuracy": last.get("val_accuracy"),
        "epochs": state.epoch,
        "steps": state.global_step,
        "stopped": stopped,
        "train_seconds": seconds,
        "img_per_s": state.train_samples * world_size / seconds if seconds > 0 else None,
        "seconds": time.perf_counter() - started,
        "params": params,
        "device": device,
        "world_size": world_size,
        **extra,
        "run_dir": str(run_dir),
        "weights": str(weights),
    }


def _epoch_line(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    parts.append(f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}")
    parts.append(f"{row['epoch_seconds']:.1f} s ({row['img_per_s']:,.0f} img/s)")
    return " | ".join(parts)
