"""``deeper train``: its options, the one function that turns them into a configuration, and the summary.

Everything else (which engine, an ensemble, several processes) is :func:`deeper.train.fit`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deeper.cli import add_data_dir, add_json, command, parse_kv
from deeper.errors import ConfigError

if TYPE_CHECKING:
    from deeper.train import TrainConfig

S = argparse.SUPPRESS

# Options that may differ from the saved configuration when resuming a run.
RESUMABLE = {"epochs", "max_steps", "device", "progress", "checkpoint_every", "tensorboard", "data_dir"}
# speed options that do not change the run's recipe
RESUMABLE |= {"nproc", "max_restarts", "compile", "cuda_graphs"}
#: repeatable KEY=VALUE options, collected into dicts
KWARG_OPTIONS = ("model_kwargs", "task_args", "optimizer_kwargs", "schedule_kwargs")
#: argparse entries that are not training options
NOT_OPTIONS = ("run", "command", "json", "resume", "dry_run", "config", "print_config")


def _val_size(text: str) -> int | float:
    """A fraction in (0, 1) of the training images, or a count of them."""
    from deeper.validate import RANGES

    try:
        value = RANGES["val_size"].parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if 0 < value < 1:
        return value
    if value != int(value):
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1) or a whole count, got {text!r}")
    return int(value)


@command("train", "train a model on a dataset (default: the chapter's DeepConvNet on MNIST, fast recipe)")
def configure(p: argparse.ArgumentParser) -> None:
    from deeper.train import RECIPES

    p.epilog = (
        "recipes:\n"
        + "\n".join(
            f"  {name:6s} " + ", ".join(f"{k}={v}" for k, v in r.items()) for name, r in RECIPES.items()
        )
        + "\n\nexample:\n  deeper train --model deep-convnet --data mnist --recipe book --out runs/book"
    )
    g = p.add_argument_group("what to train")
    g.add_argument("--task", default=S, help="registered task (see `deeper tasks`) [classify]")
    g.add_argument(
        "--task-arg", dest="task_args", action="append", type=parse_kv, default=S, metavar="KEY=VALUE",
        help="the task's own option, repeatable (see `deeper tasks`)",
    )  # fmt: skip
    g.add_argument(
        "--env", default=S, metavar="NAME", help="environment of --task rl (same as --task-arg env=NAME)"
    )
    g.add_argument("--model", default=S, help="registered model name (see `deeper models`) [deep-convnet]")
    g.add_argument("--data", default=S, help="registered dataset name (see `deeper datasets`) [mnist]")
    g.add_argument(
        "--model-arg",
        dest="model_kwargs",
        action="append",
        type=parse_kv,
        default=S,
        metavar="KEY=VALUE",
        help="extra model option, repeatable (e.g. dropout=0.3)",
    )
    g.add_argument(
        "--recipe", default=S, choices=sorted(RECIPES), help="defaults for the options below [fast]"
    )
    g.add_argument(
        "--init-from", default=S, metavar="WEIGHTS_OR_RUN",
        help="start from these trained weights (a .safetensors file or a run folder); the classifier "
        "is replaced for the new dataset (see `deeper finetune`)",
    )  # fmt: skip
    g.add_argument(
        "--freeze", choices=["none", "features"], default=S,
        help="with --init-from: features trains only the new classifier [none]",
    )  # fmt: skip
    h = p.add_argument_group("optimisation (defaults come from the recipe)")
    h.add_argument("--epochs", type=int, default=S, help="passes over the training split")
    h.add_argument("--batch-size", type=int, default=S, help="images per step")
    h.add_argument("--optimizer", default=S, help="optimizer name (sgd, momentum, adam, ...)")
    h.add_argument("--lr", type=float, default=S, help="(peak) learning rate")
    h.add_argument("--schedule", default=S, help="learning-rate schedule (constant, cosine, onecycle, ...)")
    h.add_argument("--weight-decay", type=float, default=S, help="L2 weight decay [0]")
    h.add_argument("--label-smoothing", type=float, default=S, help="label smoothing epsilon [0]")
    e = p.add_argument_group("engine (see docs/scratch.md)")
    e.add_argument(
        "--engine", choices=["torch", "numpy", "cupy"], default=S,
        help="torch, or the from-scratch NumPy engine (cupy: the same on a CUDA GPU) [torch]",
    )  # fmt: skip
    e.add_argument(
        "--dtype", choices=["float64", "float32", "float16"], default=S,
        help="precision of --engine numpy/cupy [float32]",
    )  # fmt: skip
    d = p.add_argument_group("data")
    add_data_dir(d)
    d.add_argument(
        "--val-size",
        type=_val_size,
        default=S,
        help="images carved from the training set for validation: a count or a fraction "
        "[5000 for MNIST-size data, else 10%%]",
    )
    d.add_argument("--subset", type=int, default=S, help="train on only the first N training images")
    r = p.add_argument_group("run")
    r.add_argument("--out", default=S, metavar="DIR", help="run folder [runs/MODEL-DATA-TIMESTAMP]")
    r.add_argument(
        "--resume", metavar="DIR",
        help="continue the run in DIR from its latest checkpoint (a run stopped by --max-steps goes on to "
        "a new --max-steps, or to the end of --epochs when only that is given)",
    )  # fmt: skip
    r.add_argument(
        "--config", metavar="FILE.yaml",
        help="start from this configuration: a run's config.yaml (reruns it into a new folder) or flat "
        "options (lr: 0.01); options given here win",
    )  # fmt: skip
    r.add_argument(
        "--print-config", action="store_true",
        help="print the resolved configuration as YAML (the format of config.yaml and --config) and exit",
    )  # fmt: skip
    r.add_argument(
        "--dry-run", action="store_true",
        help="a few steps of the task on tiny data (its own settings override the recipe), into a temporary folder",
    )  # fmt: skip
    r.add_argument("--seed", type=int, default=S, help="seed for initialisation, shuffling and dropout [0]")
    r.add_argument("--device", default=S, help="auto, cpu, cuda or cuda:N [auto]")
    r.add_argument("--deterministic", action="store_true", default=S, help="use only deterministic kernels")
    r.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=S,
        help="NHWC memory layout [on for conv nets on the CPU]",
    )
    r.add_argument("--max-steps", type=int, default=S, help="stop after this many steps (checkpointed)")
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=S,
        metavar="STEPS",
        help="also checkpoint every STEPS steps [only at epoch ends]",
    )
    r.add_argument(
        "--tensorboard", action=argparse.BooleanOptionalAction, default=S, help="write TensorBoard logs [on]"
    )
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=S,
        help="progress bar [on when stderr is a terminal]",
    )
    s = p.add_argument_group("speed (see docs/speed.md)")
    s.add_argument(
        "--amp", choices=["off", "auto", "bf16", "fp16"], default=S,
        help="mixed precision: autocast to bfloat16 or float16 (fp16 adds a grad scaler); auto: "
        "bfloat16 on the CPU families where it trains faster (docs/speed.md), else off "
        "[the recipe's: auto for fast, off for book]",
    )  # fmt: skip
    s.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=S,
        help="torch.compile the model (falls back to eager with a notice where unsupported) [off]",
    )  # fmt: skip
    s.add_argument(
        "--cuda-graphs", action=argparse.BooleanOptionalAction, default=S,
        help="on a GPU, capture forward+backward once as a CUDA graph and replay it every step "
        "(for small, launch-bound models; ignored with a notice on the CPU) [off]",
    )  # fmt: skip
    s.add_argument(
        "--nproc", type=int, default=S, metavar="N",
        help="data-parallel training in N processes (DDP under torchrun; --batch-size is the global batch) [1]",
    )  # fmt: skip
    s.add_argument(
        "--max-restarts", type=int, default=S, metavar="R",
        help="with --nproc: restart the workers up to R times after a failure, resuming from the last checkpoint [0]",
    )  # fmt: skip
    _add_accuracy_options(p)  # optimizer/schedule options, regularization, augmentation, ensembles
    add_json(p)
    p.set_defaults(run=run)


def _add_accuracy_options(p: argparse.ArgumentParser) -> None:
    """The accuracy toolkit's options (issue 4; defaults suppressed: the recipe fills what is not given)."""
    from deeper.data.augment import OPS, PRESETS
    from deeper.models.deep_convnet import NORMS

    o = p.add_argument_group("optimizer and schedule hyper-parameters (see `deeper optimizers list`)")
    o.add_argument(
        "--optimizer-arg", dest="optimizer_kwargs", action="append", type=parse_kv, default=S, metavar="KEY=VALUE",
        help="optimizer option, repeatable (e.g. momentum=0.95, beta2=0.99, rho=0.95, alpha=0.9, centered=true)",
    )  # fmt: skip
    o.add_argument(
        "--schedule-arg", dest="schedule_kwargs", action="append", type=parse_kv, default=S, metavar="KEY=VALUE",
        help="schedule option, repeatable (e.g. every=5 gamma=0.1 for step, patience=3 for plateau)",
    )  # fmt: skip
    o.add_argument(
        "--warmup", type=float, default=S, metavar="EPOCHS",
        help="linear learning-rate warm-up of EPOCHS epochs (a fraction is fine) in front of the schedule [0]",
    )  # fmt: skip
    r = p.add_argument_group("regularization")
    r.add_argument(
        "--dropout", type=float, default=S, metavar="RATE",
        help="the model's dropout rate (models with a dropout option) [the model's: 0.5 for deep-convnet]",
    )  # fmt: skip
    r.add_argument(
        "--norm", choices=["none", *NORMS], default=S,
        help="normalisation after each convolution / hidden layer (models with a norm option) [none]",
    )  # fmt: skip
    r.add_argument(
        "--mixup", type=float, default=S, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) [off]"
    )
    r.add_argument(
        "--cutmix", type=float, default=S, metavar="ALPHA", help="cutmix with Beta(ALPHA, ALPHA) [off]"
    )
    r.add_argument(
        "--input-noise", type=float, default=S, metavar="STD", help="Gaussian noise on the input pixels [off]"
    )
    r.add_argument(
        "--weight-noise", type=float, default=S, metavar="STD",
        help="Gaussian noise on the weights for each step's forward/backward pass [off]",
    )  # fmt: skip
    r.add_argument("--clip-grad", type=float, default=S, metavar="NORM", help="clip the gradient norm [off]")
    r.add_argument(
        "--early-stop", type=int, default=S, metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation score of the task's primary metric (restores the best weights) [off]",
    )  # fmt: skip
    r.add_argument(
        "--restore-best", action=argparse.BooleanOptionalAction, default=S,
        help="end with the weights of the best validation epoch [on with --early-stop]",
    )  # fmt: skip
    r.add_argument(
        "--ema", type=float, default=S, metavar="DECAY",
        help="validate, test and save an exponential moving average of the weights, updated every step "
        "with this decay (e.g. 0.999: about the last 1,000 steps) [off]",
    )  # fmt: skip
    a = p.add_argument_group("data augmentation (batched, on the device; see `deeper augment-preview`)")
    a.add_argument(
        "--augment", default=S, metavar="SPEC",
        help=f"'default' (the dataset's preset), 'none', a preset ({', '.join(PRESETS)}) or ops "
        f"NAME=STRENGTH joined by commas; ops: {', '.join(OPS)} [none]",
    )  # fmt: skip
    e = p.add_argument_group("ensembles")
    e.add_argument(
        "--ensemble", type=int, default=S, metavar="K",
        help="train K members (seeds SEED..SEED+K-1) into OUT/member-<i> and evaluate their ensemble [1]",
    )  # fmt: skip
    e.add_argument(
        "--bootstrap", action="store_true", default=S,
        help="train on a bootstrap resample of the training split (with --ensemble: bagging)",
    )  # fmt: skip
    e.add_argument(
        "--boost", action="store_true", default=S,
        help="with --ensemble: boosting (SAMME by resampling): each member trains on a resample that "
        "favours the training images the one before got wrong; the ensemble is their weighted vote",
    )  # fmt: skip
    e.add_argument(
        "--boost-rate", type=float, default=S, metavar="RATE",
        help="boosting's shrinkage of each member's vote weight, and so of the reweighting [1.0]",
    )  # fmt: skip


def given_options(args: argparse.Namespace, *, skip: tuple[str, ...] = ()) -> dict:
    """The flat training options the user gave on the command line (the recipe fills the others)."""
    given = {k: v for k, v in vars(args).items() if k not in NOT_OPTIONS + skip}
    for key in KWARG_OPTIONS:
        if key in given:
            given[key] = dict(given[key])
    if "env" in given:  # --env NAME is the rl task's option env
        given["task_args"] = {**given.get("task_args", {}), "env": given.pop("env")}
    return given


def dry_run_options(given: dict) -> dict:
    """``given`` with the task's tiny settings on top (a few steps on tiny data), into a fresh folder."""
    import tempfile

    from deeper.tasks import get_task_class

    tiny = dict(get_task_class(given.get("task", "classify")).dry_run)
    task_args = {**given.get("task_args", {}), **tiny.pop("task_args", {})}
    out = given.get("out") or tempfile.mkdtemp(prefix="deeper-dry-run-")
    return {**given, **tiny, "task_args": task_args, "out": out, "tensorboard": False}


def config_from_args(
    args: argparse.Namespace, *, skip: tuple[str, ...] = (), defaults: dict | None = None
) -> tuple[TrainConfig, bool]:
    """``(config, resume)`` from parsed ``deeper train`` options: the one place arguments become a config.

    With ``--resume DIR`` the saved ``config.yaml`` is the base and only the options in
    :data:`RESUMABLE` may change; otherwise ``defaults`` (a command's own, e.g. no
    TensorBoard for ``deeper cv``) and then the given options fill a new configuration.
    """
    from deeper.train import TrainConfig
    from deeper.validate import load_yaml

    given = given_options(args, skip=skip)
    resume = getattr(args, "resume", None)
    config = getattr(args, "config", None)
    if getattr(args, "dry_run", False):
        if resume:
            raise ConfigError("--dry-run starts a run of its own; it cannot --resume one")
        given = dry_run_options(given)
    if config and resume:
        raise ConfigError("--resume continues a run with its own config.yaml; --config starts a new run")
    if config:
        base = TrainConfig.from_dict(read_config(config)).flat()
        base["out"] = None  # a rerun goes into a folder of its own unless --out says where
        return TrainConfig(**{**(defaults or {}), **base, **given}), False
    if not resume:
        return TrainConfig(**{**(defaults or {}), **given}), False
    run_dir = Path(resume)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    changed = sorted(k for k in given if k not in RESUMABLE and k != "out")
    if changed:
        raise ConfigError(
            f"cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when resuming; "
            f"only {', '.join(sorted('--' + k.replace('_', '-') for k in RESUMABLE))}"
        )
    document = load_yaml(saved.read_text(), str(saved))
    cfg = TrainConfig.from_dict(document)
    if "epochs" in given and "max_steps" not in given:  # a new --epochs goes past the old step limit
        given["max_steps"] = None
    cfg = cfg.replace(**given, out=str(run_dir))
    return cfg, True


def read_config(path: str) -> dict:
    """The YAML document of ``--config FILE`` (plain data, a mapping), in one-line errors."""
    from deeper.validate import load_yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    document = load_yaml(p.read_text(), str(p))
    if not isinstance(document, dict):
        raise ConfigError(f"--config {path}: expected a mapping of options, got {type(document).__name__}")
    return {k: v for k, v in document.items() if k != "versions"}  # what wrote it, not an option


def run(args: argparse.Namespace, out) -> dict | None:
    from deeper.train import fit
    from deeper.train.distributed import is_main_process

    cfg, resume = config_from_args(args)
    if args.print_config:
        import yaml

        document = cfg.resolved().to_dict()
        for line in yaml.safe_dump(document, sort_keys=False).rstrip().splitlines():
            out.line(line)
        return {"config": document}
    result = fit(cfg, resume=resume)
    if not is_main_process():  # a torchrun worker other than rank 0: rank 0 reports
        return None
    if cfg.ensemble.members > 1 and cfg.engine == "torch":
        _ensemble_lines(result, out)
        return result
    from deeper.tasks import get_task_class

    unit = get_task_class(cfg.task).unit
    primary = result.get("primary_metric", "accuracy")
    engine = f", {cfg.engine} engine" if cfg.engine != "torch" else ""
    value = result.get(f"test_{primary}")
    shown = f"{value:.4f}" if isinstance(value, float) else str(value)
    line = (
        f"test {primary} {shown} after {_how_far(result)} "
        f"({result['train_seconds']:.1f} s training, {result['img_per_s'] or 0:,.0f} {unit}/s{engine}); "
        f"weights: {result['weights']}"
    )
    out.line(line)
    if result.get("run_dir"):
        from deeper.train.logger import append_console

        append_console(result["run_dir"], line)  # the run's console.log ends as the console did
    return result


def _how_far(result: dict) -> str:
    """How far a run went: '6 epochs', or for one stopped early '120 steps (inside epoch 1; stopped by ...)'."""
    epochs, steps, stopped = result.get("epochs", 0), result.get("steps"), result.get("stopped")
    whole = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    if stopped in (None, "completed") or steps is None:
        return whole
    where = "inside epoch 1" if epochs == 0 else f"{whole} complete"
    return f"{steps:,} steps ({where}; stopped by {stopped})"


def _ensemble_lines(result: dict, out) -> None:
    for m in result["members"]:
        out.line(f"member seed {m['seed']}: test accuracy {m['test_accuracy']:.4f} ({m['run_dir']})")
    out.line(
        f"ensemble of {result['ensemble']}: test accuracy {result['test_accuracy']:.4f} (mean of probabilities), "
        f"{result['vote_test_accuracy']:.4f} (vote); best member {result['best_member_test_accuracy']:.4f}"
    )
    if result.get("boost"):
        out.line(
            f"boosted ensemble (SAMME, vote weights {', '.join(f'{a:.2f}' for a in result['boost_alphas'])}): "
            f"test accuracy {result['boost_test_accuracy']:.4f}"
        )
