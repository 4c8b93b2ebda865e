"""The one training loop: ``train_one_epoch``, ``evaluate`` and ``fit``.

``train_one_epoch`` and ``evaluate`` work on any model, task and loader and are
importable on their own.  ``fit`` assembles a run from a :class:`TrainConfig`:
data, model, optimizer, schedule, logs and checkpoints, and can resume a run
exactly where its last checkpoint left it (same weights, optimizer and schedule
state, RNG, position in the epoch and metric sums).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from deeper.data import BatchLoader, get_dataset_spec, load_dataset
from deeper.errors import ConfigError, DeeperError, DivergedError
from deeper.fileio import write_text_atomic
from deeper.models import count_parameters, create_model, get_model_entry, save_weights
from deeper.runtime import (
    notice,
    resolve_device,
    rng_state,
    seed_everything,
    set_deterministic,
    set_rng_state,
)
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from deeper.train.config import TrainConfig
from deeper.train.optim import create_optimizer, get_optimizer_entry
from deeper.train.schedule import create_schedule, list_schedules
from deeper.train.tasks import ClassificationTask, MetricSums, Task


class Interrupted(DeeperError):
    """Training was interrupted (Ctrl-C); a checkpoint was saved."""


@dataclass
class LoopState:
    """Where a run is: updated by the loop, saved in every checkpoint."""

    epoch: int = 0  # the epoch being trained (0-based)
    step_in_epoch: int = 0  # batches of it already done
    global_step: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)  # metric sums of the current epoch so far
    epoch_count: int = 0
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


StepHook = Callable[[LoopState], bool | None]  # return True to stop after this step


def _progress_enabled(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def train_one_epoch(
    model: nn.Module,
    task: Task,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler=None,
    state: LoopState | None = None,
    on_step: StepHook | None = None,
    progress: bool | None = False,
    desc: str = "train",
) -> dict[str, float]:
    """Train over ``loader`` (from ``state.step_in_epoch`` on); return the task's summary of the epoch.

    Stops early when ``on_step`` returns True.  A non-finite loss raises
    :class:`DivergedError` naming the step, before the update is applied.
    """
    state = state if state is not None else LoopState()
    model.train()
    meter = MetricSums()
    meter.sums = {k: torch.tensor(v, dtype=torch.float64) for k, v in state.epoch_sums.items()}
    meter.count = state.epoch_count
    bar = tqdm(
        total=len(loader), initial=state.step_in_epoch, desc=desc, unit="batch",
        disable=not _progress_enabled(progress), leave=False, dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        for batch in loader:
            out = task.training_step(model, batch)
            if not torch.isfinite(out.loss.detach()).item():
                raise DivergedError(
                    f"the loss became {out.loss.item()} at step {state.global_step + 1} "
                    f"(epoch {state.epoch + 1}, batch {state.step_in_epoch + 1}); "
                    "try a lower learning rate or gradient clipping"
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            meter.add(out)
            state.global_step += 1
            state.step_in_epoch += 1
            state.train_samples += out.count
            bar.update(1)
            if state.step_in_epoch % 25 == 0:
                bar.set_postfix(task.summarize(meter.totals(), meter.count), refresh=False)
            if on_step is not None and on_step(state):
                break
    finally:
        state.train_seconds += time.perf_counter() - start
        state.epoch_sums, state.epoch_count = meter.totals(), meter.count
        bar.close()
    return task.summarize(state.epoch_sums, state.epoch_count)


@torch.inference_mode()
def evaluate(
    model: nn.Module, task: Task, loader: BatchLoader, *, progress: bool | None = False
) -> dict[str, float]:
    """The task's summary over ``loader`` in eval mode (dropout off, batch-norm frozen)."""
    was_training = model.training
    model.eval()
    meter = MetricSums()
    for batch in tqdm(
        loader,
        desc="eval",
        unit="batch",
        disable=not _progress_enabled(progress),
        leave=False,
        file=sys.stderr,
    ):
        meter.add(task.evaluation_step(model, batch))
    model.train(was_training)
    return task.summarize(meter.totals(), meter.count)


# --------------------------------------------------------------------------- fit


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{cfg.data}-{stamp}"


def default_val_size(n_train: int) -> int:
    return 5000 if n_train >= 50000 else max(1, n_train // 10)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass
class Run:
    """Everything ``fit`` assembles; exposed so tests and later engines can reuse the pieces."""

    cfg: TrainConfig
    device: torch.device
    model: nn.Module
    task: Task
    train_loader: BatchLoader
    val_loader: BatchLoader | None
    test_loader: BatchLoader
    optimizer: torch.optim.Optimizer
    scheduler: object
    total_steps: int
    metadata: dict


def build_run(cfg: TrainConfig) -> Run:
    """Data, model, task, loaders, optimizer and schedule for a resolved config."""
    get_model_entry(cfg.model)  # fail on a bad name before loading any data
    get_optimizer_entry(cfg.optimizer)
    if cfg.schedule not in list_schedules():
        create_schedule(cfg.schedule, None, 1)  # raises the helpful error
    device = resolve_device(cfg.device)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    spec = get_dataset_spec(cfg.data)
    train_full = load_dataset(cfg.data, "train", data_dir=cfg.data_dir)
    test = load_dataset(cfg.data, "test", data_dir=cfg.data_dir)
    val_size = default_val_size(len(train_full)) if cfg.val_size is None else cfg.val_size
    if val_size:
        train, val = train_full.split(val_size, seed=0)
    else:
        train, val = train_full, None
    if cfg.subset is not None:
        train = train.subset(slice(0, cfg.subset))
    c, h, w = spec.image_shape
    kwargs = dict(cfg.model_kwargs)
    if h == w:
        kwargs.setdefault("img_size", h)
    model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=c, **kwargs).to(device)
    channels_last = (
        cfg.channels_last if cfg.channels_last is not None else (device.type == "cpu" and has_conv(model))
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train, test = train.to(device), test.to(device)
    val = val.to(device) if val is not None else None
    mk = dict(channels_last=channels_last)
    train_loader = BatchLoader(train, cfg.batch_size, shuffle=True, seed=cfg.seed, **mk)
    val_loader = BatchLoader(val, cfg.eval_batch_size, **mk) if val is not None else None
    test_loader = BatchLoader(test, cfg.eval_batch_size, **mk)
    optimizer = create_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * len(train_loader)
    scheduler = create_schedule(cfg.schedule, optimizer, total_steps)
    task = ClassificationTask(label_smoothing=cfg.label_smoothing)
    metadata = {
        "model": cfg.model,
        "num_classes": spec.num_classes,
        "in_chans": c,
        "dataset": cfg.data,
        "classes": list(spec.classes),
        **({"img_size": kwargs["img_size"]} if "img_size" in kwargs else {}),
    }
    return Run(
        cfg,
        device,
        model,
        task,
        train_loader,
        val_loader,
        test_loader,
        optimizer,
        scheduler,
        total_steps,
        metadata,
    )


def fit(cfg: TrainConfig, *, resume: bool = False, log: Callable[[str], None] = notice) -> dict:
    """Train a model as ``cfg`` says; return the summary written to ``result.json``.

    With ``resume=True``, ``cfg.out`` must be an existing run folder: training
    continues from its latest checkpoint.
    """
    cfg = cfg.resolved()
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if resume:
        ckpt_path = latest_checkpoint(run_dir)
    elif (run_dir / "checkpoints" / "latest").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out"
        )
    started = time.perf_counter()
    run = build_run(cfg)
    model, state = run.model, LoopState()
    if resume:
        model_state, saved = load_checkpoint(ckpt_path)
        model.load_state_dict(model_state)
        run.optimizer.load_state_dict(saved["optimizer"])
        if run.scheduler is not None and saved.get("scheduler") is not None:
            run.scheduler.load_state_dict(saved["scheduler"])
        state = LoopState(**saved["loop"])
        set_rng_state(saved["rng"])
        log(
            f"resuming {run_dir} at step {state.global_step} (epoch {state.epoch + 1}, batch {state.step_in_epoch})"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = _make_logger(run_dir, cfg, state.global_step if resume else None)
    logger.write_config(cfg.to_dict())
    n_params = count_parameters(model)
    log(
        f"training {cfg.model} ({n_params:,} parameters) on {cfg.data} "
        f"({len(run.train_loader.dataset):,} train / {len(run.val_loader.dataset) if run.val_loader else 0:,} val) "
        f"on {run.device}, recipe {cfg.recipe}: {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, "
        f"{cfg.epochs} epochs, schedule {cfg.schedule} -> {run_dir}"
    )

    def checkpoint() -> None:
        save_checkpoint(
            run_dir,
            state.global_step,
            model.state_dict(),
            {
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
                "rng": rng_state(),
                "loop": state.to_dict(),
                "config": cfg.to_dict(),
            },
        )

    def on_step(s: LoopState) -> bool:
        if s.global_step % 50 == 0:
            logger.scalar(
                "loss/train_step", s.epoch_sums.get("loss", 0.0) / max(1, s.epoch_count), s.global_step
            )
        if cfg.checkpoint_every and s.global_step % cfg.checkpoint_every == 0:
            checkpoint()
        return cfg.max_steps is not None and s.global_step >= cfg.max_steps

    stop_reason = "completed"
    try:
        while state.epoch < cfg.epochs:
            if cfg.max_steps is not None and state.global_step >= cfg.max_steps:
                stop_reason = f"max-steps {cfg.max_steps}"
                break
            run.train_loader.set_epoch(state.epoch, skip_batches=state.step_in_epoch)
            t0, s0 = state.train_seconds, state.train_samples
            train_metrics = train_one_epoch(
                model, run.task, run.train_loader, run.optimizer, scheduler=run.scheduler, state=state,
                on_step=on_step, progress=cfg.progress, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
            )  # fmt: skip
            if state.step_in_epoch < len(run.train_loader):  # stopped inside the epoch
                stop_reason = f"max-steps {cfg.max_steps}"
                checkpoint()
                break
            row = {"epoch": state.epoch + 1, "step": state.global_step}
            row.update({f"train_{k}": v for k, v in train_metrics.items()})
            if run.val_loader is not None:
                row.update({f"val_{k}": v for k, v in evaluate(model, run.task, run.val_loader).items()})
            dt, dn = state.train_seconds - t0, state.train_samples - s0
            row["lr"] = run.optimizer.param_groups[0]["lr"]
            row["epoch_seconds"] = dt
            row["img_per_s"] = dn / dt if dt > 0 else math.nan
            state.history.append(row)
            state.epoch, state.step_in_epoch, state.epoch_sums, state.epoch_count = state.epoch + 1, 0, {}, 0
            logger.epoch(state.history, state.global_step)
            log(_epoch_line(row, cfg.epochs))
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        logger.close()
        raise Interrupted(
            f"interrupted at step {state.global_step}; checkpoint saved. Resume with: deeper train --resume {run_dir}"
        ) from None
    except BaseException:
        logger.close()
        raise

    test_metrics = evaluate(model, run.task, run.test_loader)
    weights = save_weights(
        model, run_dir / "model.safetensors", {**run.metadata, "test_accuracy": test_metrics.get("accuracy")}
    )
    if state.history:
        from deeper.analysis.plots import plot_curves

        plot_curves(
            state.history, run_dir / "curves.png", title=f"{cfg.model} on {cfg.data} ({cfg.recipe} recipe)"
        )
    logger.close()
    last = state.history[-1] if state.history else {}
    result = {
        "model": cfg.model,
        "data": cfg.data,
        "recipe": cfg.recipe,
        "test_accuracy": test_metrics.get("accuracy"),
        "test_loss": test_metrics.get("loss"),
        "val_accuracy": last.get("val_accuracy"),
        "epochs": state.epoch,
        "steps": state.global_step,
        "stopped": stop_reason,
        "train_seconds": state.train_seconds,
        "img_per_s": state.train_samples / state.train_seconds if state.train_seconds > 0 else None,
        "seconds": time.perf_counter() - started,
        "params": n_params,
        "device": str(run.device),
        "run_dir": str(run_dir),
        "weights": str(weights),
    }
    write_text_atomic(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def _make_logger(run_dir: Path, cfg: TrainConfig, purge_step: int | None):
    from deeper.train.logger import RunLogger

    return RunLogger(run_dir, tensorboard=cfg.tensorboard, purge_step=purge_step)


def _epoch_line(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    parts.append(f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}")
    if "val_accuracy" in row:
        parts.append(f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}")
    parts.append(f"{row['epoch_seconds']:.1f} s ({row['img_per_s']:,.0f} img/s)")
    return " | ".join(parts)
