"""The accuracy toolkit's commands: ``optimizers``, ``augment-preview``, ``ensemble``, ``cv``.

See ``docs/accuracy.md``; the accuracy options of ``deeper train`` are in :mod:`deeper.cli.train`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deeper.cli import add_data_dir, add_gallery_size, add_json, check_gallery_size, command, png_output
from deeper.errors import ConfigError

# ------------------------------------------------------------------ deeper optimizers


@command("optimizers", "list the optimizers and schedules, or plot the optimizers side by side")
def configure_optimizers(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n"
        "  deeper optimizers list\n"
        "  deeper optimizers plot -o trajectories.png\n"
        "  deeper optimizers plot -o trajectories.png --loss-curves mnist_loss.png --data mnist"
    )
    p.add_argument("action", choices=["list", "plot"], help="list: the registries; plot: draw the figures")
    p.add_argument(
        "-o", "--output", metavar="FILE.png",
        help="plot: the trajectories of every optimizer on x²/20 + y² and Rosenbrock",
    )  # fmt: skip
    p.add_argument(
        "--loss-curves", metavar="FILE.png",
        help="plot: also train --model on --data with each optimizer and draw the training-loss curves",
    )  # fmt: skip
    p.add_argument("--optimizers", metavar="A,B,...", help="only these optimizers [all]")
    p.add_argument("--steps", type=int, help="trajectory steps [30 on x²/20 + y², 1000 on Rosenbrock]")
    p.add_argument("--data", default="mnist", help="dataset of the loss curves")
    p.add_argument(
        "--model", default="mlp", help="network of the loss curves (the book's figure 6-9 uses the MLP)"
    )
    p.add_argument(
        "--train-steps", type=int, default=2000, help="training steps per optimizer for the loss curves"
    )
    p.add_argument("--batch-size", type=int, default=128, help="batch size of the loss curves")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and batches (shared)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run_optimizers)


def run_optimizers(args, out) -> dict:
    from deeper.train.optim import get_optimizer_entry, list_optimizers
    from deeper.train.schedule import get_schedule_entry, list_schedules

    names = list_optimizers()
    if args.optimizers:
        names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
        for n in names:
            get_optimizer_entry(n)  # unknown names fail with a suggestion
    if args.action == "list":
        opts = {}
        out.line("optimizers (--optimizer NAME --optimizer-arg KEY=VALUE):")
        for n in names:
            e = get_optimizer_entry(n)
            extra = ", ".join(f"{k}={v}" for k, v in e.defaults.items()) or "-"
            out.line(f"  {n:9s} lr {e.default_lr:<6g} {extra}\n            {e.description}")
            opts[n] = {"default_lr": e.default_lr, "options": e.defaults, "description": e.description}
        out.line("schedules (--schedule NAME --schedule-arg KEY=VALUE, --warmup EPOCHS in front of any):")
        scheds = {}
        for n in list_schedules():
            e = get_schedule_entry(n)
            out.line(f"  {n:11s} {e.description}")
            scheds[n] = {"options": e.defaults, "description": e.description}
        return {"optimizers": opts, "schedules": scheds}
    if not args.output:
        raise ConfigError("plot needs -o FILE.png for the trajectories")
    if args.steps is not None and args.steps < 1:
        raise ConfigError("--steps must be at least 1")
    if args.train_steps < 1 or args.batch_size < 1:
        raise ConfigError("--train-steps and --batch-size must be at least 1")
    from deeper.analysis.accuracy_plots import optimizer_loss_curves, optimizer_trajectories

    result: dict = {"output": png_output(args.output)}
    if args.loss_curves:
        png_output(args.loss_curves, "--loss-curves")
    result["trajectories"] = optimizer_trajectories(args.output, optimizers=names, steps=args.steps)
    out.line(f"trajectories of {len(names)} optimizers -> {args.output}")
    for fn, rows in result["trajectories"].items():
        out.line(f"  {fn}: " + ", ".join(f"{n} f={r['f_end']:.3g}" for n, r in rows.items()))
    if args.loss_curves:
        curves = optimizer_loss_curves(
            args.loss_curves, data=args.data, model=args.model, steps=args.train_steps,
            batch_size=args.batch_size, seed=args.seed, optimizers=names, device=args.device,
            data_dir=args.data_dir,
        )  # fmt: skip
        result["loss_curves"] = {"output": args.loss_curves, "optimizers": curves}
        out.line(f"training-loss curves on {args.data} -> {args.loss_curves}")
        for n, r in sorted(curves.items(), key=lambda kv: kv[1]["final_loss"]):
            out.line(f"  {n:9s} final loss {r['final_loss']:.4f} (lr {r['lr']:g})")
    return result


# ------------------------------------------------------------------ deeper augment-preview


@command("augment-preview", "draw dataset images next to augmented copies of them")
def configure_augment_preview(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "examples:\n  deeper augment-preview --data mnist --augment rotate=15,elastic=34 -o aug.png\n"
        "  deeper augment-preview --data mnist --width-norm 10,14,20 -o widths.png"
    )
    p.add_argument("--data", default="mnist", help="dataset whose training images are shown")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png", help="where to write the grid")
    p.add_argument(
        "--augment", metavar="SPEC",
        help="augmentation spec, as `deeper train --augment` takes it [default]",
    )  # fmt: skip
    p.add_argument("--images", type=int, default=8, help="how many images (rows)")
    p.add_argument("--copies", type=int, help="augmented copies per image (columns) [6]")
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentations (same seed, same grid)")
    p.add_argument(
        "--width-norm", metavar="W,W,...",
        help="instead of augmented copies, show each image normalised to these ink widths in pixels "
        "(the `--model-arg width_norm=W` of deep-convnet)",
    )  # fmt: skip
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run_augment_preview)


def parse_widths(text: str) -> list[float]:
    """``"10,14,20"`` -> ``[10.0, 14.0, 20.0]``; a clear error for anything else."""
    try:
        widths = [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"--width-norm takes comma-separated widths in pixels, got {text!r}") from None
    if not widths or not all(0 < w <= 1000 for w in widths) or len(widths) > 30:
        raise ConfigError(f"--width-norm takes 1 to 30 positive widths in pixels, got {text!r}")
    return widths


def run_augment_preview(args, out) -> dict:
    import torch

    from deeper.analysis.accuracy_plots import augment_preview
    from deeper.data import load_dataset
    from deeper.data.augment import Augment, describe_augment, parse_augment

    png_output(args.output)
    if args.width_norm and (args.augment is not None or args.copies is not None):
        raise ConfigError(
            "--width-norm draws one column per width: it does not combine with --augment or --copies"
        )
    args.augment = args.augment or "default"
    args.copies = 6 if args.copies is None else args.copies
    if not 1 <= args.images <= 100 or not 1 <= args.copies <= 30:
        raise ConfigError("--images must be in 1..100 and --copies in 1..30")
    ops = parse_augment(args.augment, args.data)
    widths = parse_widths(args.width_norm) if args.width_norm else None
    ds = load_dataset(args.data, "train", data_dir=args.data_dir)
    images = ds.images[: args.images]
    x = images.float() / 255.0
    if widths:
        from deeper.models.preprocess import WidthNormalize

        copies = [WidthNormalize(w)(x) for w in widths]
        labels = [f"width {w:g}" for w in widths]
        spec, title = "width normalisation", f"{args.data}: ink stretched to a fixed width"
    else:
        augment = Augment(ops)
        g = torch.Generator().manual_seed(args.seed)
        copies = [augment(x, g) if augment else x.clone() for _ in range(args.copies)]
        spec = describe_augment(ops)
        labels, title = None, f"{args.data}: {spec} (seed {args.seed})"
    augment_preview(images, copies, args.output, title=title, labels=labels)
    out.line(f"{len(images)} images x {len(copies)} copies ({spec}) -> {args.output}")
    return {
        "output": args.output,
        "data": args.data,
        "augment": None if widths else ops,
        "width_norm": widths,
        "images": len(images),
        "copies": len(copies),
    }


# ------------------------------------------------------------------ deeper ensemble


@command("ensemble", "evaluate an ensemble of trained runs (mean of probabilities or majority vote)")
def configure_ensemble(p: argparse.ArgumentParser) -> None:
    from deeper.train.ensemble import METHODS, TTA

    p.epilog = (
        "examples:\n"
        "  deeper ensemble --runs runs/a runs/b runs/c --method vote\n"
        "  deeper ensemble --runs runs/a runs/b runs/c --gallery wrong.png   # the images it gets wrong"
    )
    p.add_argument(
        "--runs", nargs="+", required=True, metavar="RUN",
        help="run folders (holding model.safetensors) or .safetensors files",
    )  # fmt: skip
    p.add_argument(
        "--method", choices=METHODS, default="mean", help="mean: average the probabilities; vote: majority"
    )
    p.add_argument("--data", help="dataset [the one recorded in the weights]")
    p.add_argument(
        "--tta", choices=TTA, default="none",
        help="test-time augmentation: flip also scores each image's mirror image (not for digits), "
        "shift its four one-pixel shifts [none]",
    )  # fmt: skip
    p.add_argument("--split", choices=["train", "test"], default="test", help="which split to score")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass")
    p.add_argument(
        "--cache", action="store_true",
        help="keep each member's probabilities in predictions/ beside its weights and reuse them "
        "while the weights file is unchanged (re-scoring a large ensemble then takes seconds)",
    )  # fmt: skip
    p.add_argument(
        "--gallery", metavar="FILE.png",
        help="also draw the images the ensemble gets wrong: true class top left, its prediction "
        "bottom right, how many members get the image right bottom left",
    )  # fmt: skip
    add_gallery_size(p, prefix="gallery: ")
    add_data_dir(p)
    add_json(p)
    p.set_defaults(run=run_ensemble)


def run_ensemble(args, out) -> dict:
    from deeper.train.ensemble import evaluate_ensemble

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.gallery:  # checked before the members are scored
        png_output(args.gallery, "--gallery")
        check_gallery_size(args)
    r = evaluate_ensemble(
        args.runs, data=args.data, method=args.method, split=args.split, device=args.device,
        data_dir=args.data_dir, batch_size=args.batch_size, tta=args.tta, cache=args.cache,
    )  # fmt: skip
    for m in r["members"]:
        out.line(f"{m['weights']}: {m['accuracy']:.4f}")
    out.line(
        f"ensemble of {len(r['members'])} ({args.method}) on {r['data']}/{r['split']}: accuracy "
        f"{r['ensemble_accuracy']:.4f} (best member {r['best_member_accuracy']:.4f}, "
        f"mean {r['mean_accuracy']:.4f}, vote {r['vote_accuracy']:.4f})"
    )
    if args.gallery:
        draw_ensemble_errors(r, args)
        out.line(
            f"drew {min(len(r['wrong']), args.max)} of the {len(r['wrong'])} images it gets wrong in {args.gallery}"
        )
        r["gallery"] = args.gallery
    return r


def draw_ensemble_errors(r: dict, args) -> None:
    """The gallery of the images the ensemble ``r`` (:func:`evaluate_ensemble`'s result) gets wrong."""
    import torch

    from deeper.analysis.gallery import misclassified_gallery
    from deeper.data import load_dataset

    ds = load_dataset(r["data"], r["split"], data_dir=args.data_dir)
    k = min(len(r["wrong"]), args.max)
    members = len(r["members"])
    title = (
        f"{len(r['wrong'])} of {r['images']:,} {r['data']} {r['split']} images an ensemble of {members} "
        f"({r['method']}) gets wrong\ntop left: true class, bottom right: predicted, "
        "bottom left: members that get it right"
    )
    misclassified_gallery(
        ds.images[torch.tensor(r["wrong"][:k], dtype=torch.long)], torch.tensor(r["true"][:k]),
        torch.tensor(r["predicted"][:k]), args.gallery, classes=ds.classes, title=title,
        columns=args.columns, notes=[f"{n}/{members}" for n in r["members_right"][:k]],
    )  # fmt: skip


# ------------------------------------------------------------------ deeper cv


@command("cv", "k-fold cross-validation of training options on the training split (hyper-parameter choice)")
def configure_cv(p: argparse.ArgumentParser) -> None:
    from deeper.cli.train import configure as configure_train

    configure_train(p)  # every `deeper train` option sets the fixed part of the configuration
    p.epilog = (
        "k-fold options:\n"
        "  --folds K               number of folds [5]\n"
        "  --grid KEY=V1,V2,...    a training option and the values to try, repeatable (all combinations);\n"
        "                          separate values with ';' when they contain commas (augment specs)\n\n"
        "example:\n"
        "  deeper cv --data digits --epochs 5 --folds 5 --grid lr=0.001,0.004 --grid label_smoothing=0,0.1 --out runs/cv"
    )
    k = p.add_argument_group("k-fold cross-validation")
    k.add_argument("--folds", type=int, default=5, help="number of folds")
    k.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2",
        help="an option and the values to try (repeatable; every combination is cross-validated)",
    )  # fmt: skip
    p.set_defaults(run=run_cv)


def run_cv(args, out) -> dict:
    from deeper.cli.train import config_from_args
    from deeper.train.cv import cross_validate, parse_grid

    if args.resume:
        raise ConfigError("cv has no --resume: run the same command again, finished folds are reused")
    cfg, _ = config_from_args(args, skip=("folds", "grid"), defaults={"tensorboard": False})
    if cfg.ensemble.members != 1 or cfg.speed.nproc != 1:
        raise ConfigError("cv trains single models in one process (no --ensemble or --nproc)")
    grid = parse_grid(args.grid)
    out_dir = Path(cfg.run.out or f"runs/cv-{cfg.model}-{cfg.data}")
    cfg = cfg.replace(out=None)
    result = cross_validate(cfg, grid, folds=args.folds, out=out_dir)
    for row in result["results"]:
        label = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "(the given options)"
        out.line(f"{label}: val accuracy {row['mean']:.4f} +- {row['std']:.4f} over {args.folds} folds")
    best = ", ".join(f"{k}={v}" for k, v in result["best"]["params"].items()) or "(the given options)"
    out.line(f"best: {best} ({result['best']['mean']:.4f}); details in {out_dir / 'cv.json'}")
    return result
