"""Training and evaluation with the scratch engine, in the torch engine's run folders.

``deeper train --engine numpy`` (or ``cupy``) ends up in :func:`fit_scratch`,
which does what :func:`deeper.train.fit` does, with a scratch network in place of
the torch model: the same datasets, validation split and batch order
(:class:`deeper.data.BatchLoader` on the CPU, converted batch by batch), the same
run folder (``config.yaml`` recording the engine, ``metrics.csv``, TensorBoard,
``curves.png``, ``result.json``), the same resumable checkpoints (weights as
tensors in safetensors, the rest ``weights_only``-loadable), weights saved with
the same metadata (plus ``engine`` and ``dtype``), and the same result keys.

Learning-rate schedules are deeper's own (``--schedule``): they drive a
one-parameter torch optimizer whose learning rate (and momentum / Adam's
beta1, which one-cycle also varies) is copied into the scratch optimizer after
every step, so a schedule means exactly the same in both engines.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deeper.data import BatchLoader, get_dataset_spec, load_dataset
from deeper.errors import ConfigError, DivergedError
from deeper.fileio import write_text_atomic
from deeper.runtime import notice
from deeper.scratch.backend import array_module, get_xp, parse_dtype, to_numpy
from deeper.scratch.functions import cross_entropy
from deeper.scratch.nets import Sequential, create_net
from deeper.scratch.optim import Optimizer, create_optimizer
from deeper.train.checkpoint import load_checkpoint, save_checkpoint
from deeper.train.config import TrainConfig
from deeper.train.loop import LoopState

ENGINES = ("numpy", "cupy")
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float32}
#: callbacks (by checkpoint name) that work with the scratch engine: they only read the schedule
SUPPORTED_CALLBACKS = {"plateau"}
#: options of the torch engine the scratch engine does not implement, with their "off" values
UNSUPPORTED = {
    "amp": ("off", "auto", None),  # auto: the scratch engine has its own --dtype
    "compile": (False,),
    "nproc": (1,),
    "augment": (None, "none"),
    "mixup": (None, 0, 0.0),
    "cutmix": (None, 0, 0.0),
    "input_noise": (None, 0, 0.0),
    "weight_noise": (None, 0, 0.0),
    "ema": (None, 0, 0.0),
    "clip_grad": (None,),
    "early_stop": (None,),
    "restore_best": (None, False),
    "ensemble": (1,),
    "bootstrap": (False,),
    "boost": (False,),
    "sample_weights": (None,),
    "folds": (None,),
    "init_from": (None,),
    "freeze": ("none", None),
}


# ---- one step ----------------------------------------------------------------------------------


def train_step(net: Sequential, optimizer: Optimizer, x, t, *, where: str = "") -> tuple[float, int]:
    """Forward, loss, backward and update on one batch: ``(loss, number of correct predictions)``.

    A non-finite loss raises :class:`DivergedError` before the weights are touched.
    """
    loss = net.loss(x, t)
    if not math.isfinite(loss):
        raise DivergedError(
            f"the loss became {loss}{' at ' + where if where else ''}; "
            "try a lower learning rate (or float32 instead of float16)"
        )
    net.backward()
    optimizer.update(net.params, net.grads)
    t = net.loss_layer.t.argmax(axis=1) if getattr(t, "ndim", 1) > 1 else net.xp.asarray(t)
    return loss, int((net.logits.argmax(axis=1) == t).sum())


def evaluate_net(net: Sequential, loader: BatchLoader, *, chunk: int = 250, progress: bool = False) -> dict:
    """``{"loss", "accuracy", "top5"}`` of ``net`` in evaluation mode over ``loader`` (top-5: more than 5 classes).

    Batches are cut into chunks of ``chunk`` images: the scratch engine's column
    matrices grow with the batch, and the chunk size does not change the result.
    """
    was = net.training
    net.eval()
    loss_sum, correct, top5, count = 0.0, 0, 0, 0
    try:
        for x, y in tqdm(
            loader, desc="eval", unit="batch", disable=not progress, leave=False, file=sys.stderr
        ):
            x, y = net.asarray(x.numpy()), net.xp.asarray(y.numpy())
            for i in range(0, len(x), chunk):
                logits = net.forward(x[i : i + chunk])
                yt = y[i : i + chunk]
                loss_sum += float(cross_entropy(logits, yt)) * len(yt)
                correct += int((logits.argmax(axis=1) == yt).sum())
                if logits.shape[1] > 5:
                    best5 = net.xp.argpartition(-logits, 5, axis=1)[:, :5]
                    top5 += int((best5 == yt[:, None]).any(axis=1).sum())
                count += len(yt)
    finally:
        net.train(was)
    if not count:
        return {}
    out = {"loss": loss_sum / count, "accuracy": correct / count}
    return out | ({"top5": top5 / count} if logits.shape[1] > 5 else {})


# ---- schedules ---------------------------------------------------------------------------------


class ScheduleDriver:
    """Runs deeper's torch schedule on a stand-in torch optimizer and copies its values to ``optimizer``."""

    def __init__(self, cfg: TrainConfig, optimizer: Optimizer, total_steps: int, steps_per_epoch: int):
        from deeper.train.schedule import create_schedule

        self.optimizer = optimizer
        dummy = torch.zeros(1, requires_grad=True)
        if hasattr(optimizer, "beta1"):
            self.proxy = torch.optim.Adam([dummy], lr=optimizer.lr, betas=(optimizer.beta1, optimizer.beta2))
        elif getattr(optimizer, "momentum", 0) > 0:
            self.proxy = torch.optim.SGD([dummy], lr=optimizer.lr, momentum=optimizer.momentum)
        else:
            self.proxy = torch.optim.SGD([dummy], lr=optimizer.lr)
        self.scheduler = create_schedule(
            cfg.optim.schedule, self.proxy, total_steps, steps_per_epoch=steps_per_epoch,
            warmup_steps=round((cfg.optim.warmup or 0) * steps_per_epoch), **cfg.optim.schedule_kwargs,
        )  # fmt: skip
        self.sync()

    def sync(self) -> None:
        group = self.proxy.param_groups[0]
        self.optimizer.lr = float(group["lr"])
        if "betas" in group and hasattr(self.optimizer, "beta1"):
            self.optimizer.beta1 = float(group["betas"][0])
        elif "momentum" in group and hasattr(self.optimizer, "momentum") and group["momentum"] > 0:
            self.optimizer.momentum = float(group["momentum"])

    def step(self) -> None:
        if self.scheduler is not None:
            self.proxy.step()  # no gradient, so nothing changes; keeps torch's step-order check quiet
            self.scheduler.step()
            self.sync()

    def state_dict(self) -> dict:
        return {
            "proxy": self.proxy.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.proxy.load_state_dict(state["proxy"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.sync()


# ---- checkpoints -------------------------------------------------------------------------------


def _to_torch(tree):
    """Arrays (NumPy or CuPy) inside dicts/lists as CPU tensors; other values unchanged."""
    if isinstance(tree, dict):
        return {k: _to_torch(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_to_torch(v) for v in tree]
    if hasattr(tree, "shape") and hasattr(tree, "dtype") and not isinstance(tree, torch.Tensor):
        return torch.from_numpy(np.array(to_numpy(tree), copy=True))
    return tree


def _from_torch(tree):
    if isinstance(tree, dict):
        return {k: _from_torch(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_from_torch(v) for v in tree]
    if isinstance(tree, torch.Tensor):
        return tree.numpy()
    return tree


def net_state_tensors(net: Sequential) -> dict[str, torch.Tensor]:
    """The network's state dict as CPU tensors (PyTorch names, no transposes)."""
    return {k: torch.from_numpy(np.array(to_numpy(v), copy=True)) for k, v in net.state_dict().items()}


# ---- the run -----------------------------------------------------------------------------------


class ScratchRun:
    """What :func:`fit_scratch` assembles (the scratch counterpart of :class:`deeper.train.Run`)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.xp = array_module(cfg.engine)
        self.dtype = parse_dtype(cfg.speed.dtype or "float32")
        spec = get_dataset_spec(cfg.data)
        from deeper.tasks.classify import ClassificationTask, split_data

        train, val, test = split_data(cfg)
        self.task = ClassificationTask(num_classes=spec.num_classes)  # what the shared epoch loop reports
        tdtype = TORCH_DTYPES[self.dtype.name]
        self.train_loader = BatchLoader(
            train, cfg.optim.batch_size, shuffle=True, seed=cfg.seed, dtype=tdtype
        )
        self.val_loader = (
            BatchLoader(val, cfg.sampling.eval_batch_size, dtype=tdtype) if val is not None else None
        )
        self.test_loader = BatchLoader(test, cfg.sampling.eval_batch_size, dtype=tdtype)
        c, h, w = spec.image_shape
        kwargs = dict(cfg.model_kwargs)
        kwargs.update({k: v for k in ("dropout", "norm") if (v := getattr(cfg.regularize, k)) is not None})
        if h == w:
            kwargs.setdefault("img_size", h)
        self.net = create_net(
            cfg.model,
            num_classes=spec.num_classes,
            in_chans=c,
            dtype=self.dtype,
            xp=self.xp,
            seed=cfg.seed,
            **kwargs,
        )
        self.net.loss_layer.label_smoothing = cfg.regularize.label_smoothing or 0.0
        self.optimizer = create_optimizer(
            cfg.optim.optimizer,
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay or 0.0,
            **cfg.optim.optimizer_kwargs,
        )
        self.total_steps = cfg.optim.epochs * len(self.train_loader)
        self.schedule = ScheduleDriver(cfg, self.optimizer, self.total_steps, len(self.train_loader))
        self.scheduler = self.schedule.scheduler  # what schedule callbacks (plateau) look at
        self.schedulers = {"net": self.scheduler}
        extra = {k: v for k, v in kwargs.items() if k != "img_size"}
        self.metadata = {
            "model": cfg.model,
            "num_classes": spec.num_classes,
            "in_chans": c,
            "dataset": cfg.data,
            "classes": list(spec.classes),
            **({"img_size": kwargs["img_size"]} if "img_size" in kwargs else {}),
            **({"model_kwargs": extra} if extra else {}),
            "engine": cfg.engine,
            "dtype": self.dtype.name,
        }

    @property
    def device(self) -> str:
        return "cuda (cupy)" if self.xp is not np else "cpu (numpy)"


def _check_supported(cfg: TrainConfig) -> None:
    if cfg.engine not in ENGINES:
        raise ConfigError(f"fit_scratch runs --engine {' or '.join(ENGINES)}, not {cfg.engine!r}")
    if cfg.engine == "numpy" and cfg.run.device not in ("auto", "cpu"):
        raise ConfigError(
            f"--engine numpy runs on the CPU; for --device {cfg.run.device} use --engine cupy (or torch)"
        )
    flat = cfg.flat()
    for name, off in UNSUPPORTED.items():
        if name in flat and flat[name] not in off:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} is not available with --engine {cfg.engine}; use --engine torch")


def default_run_dir(cfg: TrainConfig) -> Path:
    from deeper.train.run import default_run_dir as torch_default

    path = torch_default(cfg)
    return path.with_name(f"{path.name}-{cfg.engine}")


def fit_scratch(cfg: TrainConfig, *, resume: bool = False, log=notice) -> dict:
    """Train ``cfg`` with the scratch engine; the result has the keys of :func:`deeper.train.fit`'s."""
    cfg = cfg.resolved()
    _check_supported(cfg)
    array_module(cfg.engine)  # CuPy/GPU missing: one line, before any data is loaded
    run_dir = Path(cfg.run.out) if cfg.run.out else default_run_dir(cfg)
    from deeper.fileio import RunLock

    with RunLock(run_dir):  # one writer per run folder
        return _fit_scratch_locked(cfg, run_dir, resume=resume, log=log)


def _fit_scratch_locked(cfg: TrainConfig, run_dir: Path, *, resume: bool, log) -> dict:
    from deeper.train.engine import checkpoint_to_resume, start_state

    ckpt_path = checkpoint_to_resume(run_dir, resume)
    started = time.perf_counter()
    run = ScratchRun(cfg)
    from deeper.train.callbacks import callbacks_for

    cbs = callbacks_for(cfg)
    for cb in cbs:
        if cb.name not in SUPPORTED_CALLBACKS:
            raise ConfigError(
                f"the option that turns on {cb.name!r} is not available with --engine {cfg.engine}"
            )
    state = start_state(run, cbs, _restore if resume else None, ckpt_path, run_dir, log)

    from deeper.train.logger import RunLogger

    logger = RunLogger(
        run_dir, tensorboard=cfg.run.tensorboard, purge_step=state.global_step if resume else None
    )
    logger.write_config(cfg.to_dict())
    net = run.net
    n_val = len(run.val_loader.dataset) if run.val_loader else 0
    log(
        f"training {cfg.model} ({net.num_params():,} parameters) on {cfg.data} "
        f"({len(run.train_loader.dataset):,} train / {n_val:,} val) with the {cfg.engine} engine in "
        f"{run.dtype.name}, recipe {cfg.recipe}: {cfg.optim.optimizer} lr {cfg.optim.lr:g}, batch {cfg.optim.batch_size}, "
        f"{cfg.optim.epochs} epochs, schedule {cfg.optim.schedule} -> {run_dir}"
    )

    def checkpoint() -> None:
        save_checkpoint(
            run_dir,
            state.global_step,
            net_state_tensors(net),
            {
                "engine": cfg.engine,
                "optimizer": _to_torch(run.optimizer.state_dict()),
                "scheduler": run.schedule.state_dict(),
                "rng": {"numpy": net.rng.bit_generator.state},
                "loop": state.to_dict(),
                "callbacks": {cb.name: cb.state_dict() for cb in cbs},
                "config": cfg.to_dict(),
            },
        )

    stop: list[str] = []
    from deeper.train.engine import EpochHooks, run_epochs

    hooks = EpochHooks(
        train_epoch=lambda: _train_epoch(run, state, logger, checkpoint, stop),
        validate=(lambda: evaluate_net(net, run.val_loader)) if run.val_loader is not None else None,
        lr=lambda: {"lr": run.optimizer.lr},
        after_callbacks=run.schedule.sync,  # a callback may have changed the schedule (plateau)
        task=run.task,
    )
    run_epochs(
        run, state, hooks, cbs=cbs, logger=logger, log=log, checkpoint=checkpoint, run_dir=run_dir, stop=stop
    )
    return _finish(run, state, run_dir, logger, stop[0] if stop else "completed", started)


def _train_epoch(run: ScratchRun, state: LoopState, logger, checkpoint, stop: list[str]) -> dict:
    cfg, net = run.cfg, run.net
    net.train()
    sums = dict(state.epoch_sums) or {"loss": 0.0, "correct": 0.0}
    count = state.epoch_count
    progress = sys.stderr.isatty() if cfg.run.progress is None else cfg.run.progress
    bar = tqdm(
        total=len(run.train_loader), initial=state.step_in_epoch, desc=f"epoch {state.epoch + 1}/{cfg.optim.epochs}",
        unit="batch", disable=not progress, leave=False, dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip
    start = time.perf_counter()
    try:
        for x, y in run.train_loader:
            where = f"step {state.global_step + 1} (epoch {state.epoch + 1}, batch {state.step_in_epoch + 1})"
            loss, correct = train_step(net, run.optimizer, x.numpy(), y.numpy(), where=where)
            run.schedule.step()
            n = len(y)
            sums["loss"] += loss * n
            sums["correct"] += correct
            count += n
            state.global_step += 1
            state.step_in_epoch += 1
            state.train_samples += n
            bar.update(1)
            if state.step_in_epoch % 25 == 0:
                bar.set_postfix(loss=sums["loss"] / count, accuracy=sums["correct"] / count, refresh=False)
            if state.global_step % 50 == 0:
                logger.scalar("loss/train_step", sums["loss"] / count, state.global_step)
            if cfg.run.checkpoint_every and state.global_step % cfg.run.checkpoint_every == 0:
                state.epoch_sums, state.epoch_count = dict(sums), count
                checkpoint()
            if cfg.run.max_steps is not None and state.global_step >= cfg.run.max_steps:
                stop.append(f"max-steps {cfg.run.max_steps}")
                break
    finally:
        state.train_seconds += time.perf_counter() - start
        state.epoch_sums, state.epoch_count = dict(sums), count
        bar.close()
    return {"loss": sums["loss"] / count, "accuracy": sums["correct"] / count} if count else {}


def _restore(run: ScratchRun, cbs, path: Path) -> LoopState:
    model_state, saved = load_checkpoint(path)
    engine = saved.get("engine", "torch")
    if engine not in ENGINES:
        raise ConfigError(f"{path} was written by the {engine} engine; resume it with --engine {engine}")
    run.net.load_state_dict(model_state, source=str(path))
    try:
        run.optimizer.load_state_dict(_from_torch(saved["optimizer"]), xp=run.xp)
        run.schedule.load_state_dict(saved["scheduler"])
        for cb in cbs:
            cb.load_state_dict(saved.get("callbacks", {}).get(cb.name, {}))
        run.net.rng.bit_generator.state = saved["rng"]["numpy"]
        return LoopState.from_dict(saved["loop"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        from deeper.errors import CheckpointError

        raise CheckpointError(
            f"{path}: the checkpoint does not match this run ({type(e).__name__}: {e})"
        ) from None


def _finish(run: ScratchRun, state: LoopState, run_dir: Path, logger, stopped: str, started: float) -> dict:
    from deeper.models import save_weights
    from deeper.train.engine import run_result

    cfg = run.cfg
    test = evaluate_net(run.net, run.test_loader)
    weights = save_weights(
        net_state_tensors(run.net),
        run_dir / "model.safetensors",
        {**run.metadata, "task": "classify", "test_accuracy": test.get("accuracy")},
    )
    if state.history:
        from deeper.analysis.plots import plot_curves

        plot_curves(
            state.history, run_dir / "curves.png",
            title=f"{cfg.model} on {cfg.data} ({cfg.recipe} recipe, {cfg.engine} engine, {run.dtype.name})",
        )  # fmt: skip
    logger.close()
    result = run_result(
        cfg, state, test, stopped=stopped, started=started, params=run.net.num_params(), device=run.device,
        run_dir=run_dir, weights=weights, amp="off", engine=cfg.engine, dtype=run.dtype.name, task=run.task,
    )  # fmt: skip
    write_text_atomic(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    return result


# ---- trained weights ---------------------------------------------------------------------------


def net_from_weights(path, name: str | None = None, *, dtype="float32", engine: str = "numpy", **overrides):
    """``(network, metadata)`` rebuilt from a deeper weights file (written by either engine)."""
    from deeper.models.weights import read_model_spec

    name, kwargs, state, meta = read_model_spec(path, name, **overrides)
    net = create_net(name, dtype=dtype, xp=array_module(engine), **kwargs)
    net.load_state_dict(state, source=str(path))
    return net.eval(), meta


def evaluate_weights_scratch(
    weights,
    data: str,
    *,
    model: str | None = None,
    dtype: str = "float32",
    split: str = "test",
    batch_size: int = 1000,
    data_dir: str | None = None,
    engine: str = "numpy",
) -> dict:
    """What :func:`deeper.inference.evaluate_weights` returns, computed by the scratch engine."""
    from deeper.inference import check_compatible, evaluation_result

    net, meta = net_from_weights(weights, model, dtype=dtype, engine=engine)
    check_compatible(meta, data, weights)
    ds = load_dataset(data, split, data_dir=data_dir)
    tdtype = TORCH_DTYPES[parse_dtype(dtype).name]
    start = time.perf_counter()
    metrics = evaluate_net(net, BatchLoader(ds, batch_size, dtype=tdtype))
    seconds = time.perf_counter() - start
    device = "cuda (cupy)" if get_xp(next(iter(net.params.values()))) is not np else "cpu (numpy)"
    return evaluation_result(meta, model, weights, data, split, dtype, len(ds), metrics, seconds, device) | {
        "engine": engine
    }
