"""``deeper train``."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from deeper.cli import add_data_dir, add_json, command
from deeper.errors import ConfigError

S = argparse.SUPPRESS

# Options that may differ from the saved configuration when resuming a run.
RESUMABLE = {"epochs", "max_steps", "device", "progress", "checkpoint_every", "tensorboard", "data_dir"}
# speed options that do not change the run's recipe
RESUMABLE |= {"nproc", "max_restarts", "compile", "cuda_graphs"}


def _kv(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def _val_size(text: str) -> int | float:
    value = float(text)
    return value if 0 < value < 1 else int(value)


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
    g.add_argument("--model", default=S, help="registered model name (see `deeper models`) [deep-convnet]")
    g.add_argument("--data", default=S, help="registered dataset name (see `deeper datasets`) [mnist]")
    g.add_argument(
        "--model-arg",
        dest="model_kwargs",
        action="append",
        type=_kv,
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
    r.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
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
        "--amp", choices=["off", "bf16", "fp16"], default=S,
        help="mixed precision: autocast to bfloat16 or float16 (fp16 adds a grad scaler) [off]",
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
    from deeper.cli.accuracy import add_train_options

    add_train_options(p)  # optimizer/schedule options, regularization, augmentation, ensembles (issue 4)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out) -> dict:
    from deeper.train import TrainConfig, fit

    given = {k: v for k, v in vars(args).items() if k not in ("run", "command", "json", "resume")}
    if "model_kwargs" in given:
        given["model_kwargs"] = dict(given["model_kwargs"])
    from deeper.cli.accuracy import run_ensemble_training, train_kwargs

    given = train_kwargs(given)
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
        changed = sorted(k for k in given if k not in RESUMABLE and k != "out")
        if changed:
            raise ConfigError(
                f"cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when resuming; "
                f"only {', '.join(sorted('--' + k.replace('_', '-') for k in RESUMABLE))}"
            )
        cfg = TrainConfig.from_dict({**yaml.safe_load(saved.read_text()), **given, "out": str(run_dir)})
    else:
        cfg = TrainConfig(**given)
    if cfg.engine != "torch":  # the from-scratch engine (issue 5)
        from deeper.scratch.trainer import fit_scratch

        result = fit_scratch(cfg, resume=bool(args.resume))
        out.line(
            f"test accuracy {result['test_accuracy']:.4f} after {result['epochs']} epochs "
            f"({result['train_seconds']:.1f} s training, {result['img_per_s']:,.0f} img/s, {cfg.engine} engine); "
            f"weights: {result['weights']}"
        )
        return result
    if cfg.ensemble.members > 1:
        return run_ensemble_training(cfg, bool(args.resume), out)
    if cfg.speed.nproc > 1:
        from deeper.accel.distributed import launch

        result = launch(cfg, resume=bool(args.resume))
    else:
        from deeper.accel.distributed import is_main_process

        result = fit(cfg, resume=bool(args.resume))
        if not is_main_process():  # a torchrun worker other than rank 0: rank 0 reports
            return None
    out.line(
        f"test accuracy {result['test_accuracy']:.4f} after {result['epochs']} epochs "
        f"({result['train_seconds']:.1f} s training, {result['img_per_s']:,.0f} img/s); "
        f"weights: {result['weights']}"
    )
    return result
