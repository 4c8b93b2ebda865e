"""Generalization (004 Optimization, Regularization): batch size and flat minima, regularizers, early stopping,
bias and variance."""

from __future__ import annotations

import math

import numpy as np
import torch

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import data_split, evaluate_on, mlp, seeded, subset, train_classifier

OPTIMIZATION = "Optimization"
REGULARIZATION = "Regularization"


def _in_features(ds) -> int:
    c, h, w = ds.image_shape
    return c * h * w


# ------------------------------------------------------------------------ batch size and sharpness


def _direction(model: torch.nn.Module, g: torch.Generator) -> list[torch.Tensor]:
    """A random direction in weight space, filter-normalised (Li et al. 2018): each row of each weight matrix
    scaled to the norm of that row of the weights; biases left alone."""
    out = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=g)
        if p.dim() >= 2:
            w = p.detach().reshape(p.shape[0], -1)
            dd = d.reshape(p.shape[0], -1)
            dd.mul_(w.norm(dim=1, keepdim=True) / dd.norm(dim=1, keepdim=True).clamp_min(1e-12))
        else:
            d.zero_()
        out.append(d)
    return out


@torch.no_grad()
def loss_along(model, ds, directions, alphas) -> list[list[float]]:
    """Training loss at ``w + alpha * d`` for each direction ``d`` and each ``alpha`` (the weights restored)."""
    params = list(model.parameters())
    base = [p.detach().clone() for p in params]
    curves = []
    for d in directions:
        row = []
        for a in alphas:
            for p, b, di in zip(params, base, d):
                p.copy_(b + a * di)
            row.append(evaluate_on(model, ds)["loss"])
        curves.append(row)
    for p, b in zip(params, base):
        p.copy_(b)
    return curves


def run_batch_size(ctx: Context) -> Outcome:
    p = ctx.params
    train, test = data_split(ctx)
    probe = subset(train, p["probe_images"], seed=2)
    alphas = [round(a, 3) for a in np.linspace(-p["radius"], p["radius"], 9)]
    at = [i for i, a in enumerate(alphas) if abs(abs(a) - p["radius"] / 2) < 1e-9]  # the +-radius/2 points
    rows, curves = [], {}
    for seed in p["seeds"]:
        for bs in p["batch_sizes"]:
            model = seeded(
                seed, lambda: mlp(p["hidden"], in_features=_in_features(train), num_classes=train.num_classes)
            )
            train_classifier(
                model, train, epochs=p["epochs"], batch_size=bs, optimizer="adam", lr=p["lr"], seed=seed
            )
            tr, te = evaluate_on(model, probe), evaluate_on(model, test)
            g = torch.Generator().manual_seed(1000 + seed)
            ls = loss_along(model, probe, [_direction(model, g) for _ in range(p["directions"])], alphas)
            sharp = float(np.mean([[row[i] - tr["loss"] for i in at] for row in ls]))
            rows.append({"seed": seed, "batch_size": bs, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
                         "test_accuracy": te["accuracy"], "gap": tr["accuracy"] - te["accuracy"], "sharpness": sharp})  # fmt: skip
            curves.setdefault(bs, []).append(np.mean(ls, axis=0).tolist())
            ctx.log(
                f"  batch {bs} seed {seed}: train {tr['accuracy']:.3f}, test {te['accuracy']:.3f}, sharpness {sharp:.3f}"
            )
    x = [r["batch_size"] for r in rows]
    tests = [
        stats.trend(x, [r["sharpness"] for r in rows], claim="increasing",
                    what=f"sharpness (mean rise of the training loss at +-{p['radius'] / 2:g} along random "
                    "filter-normalised directions) grows with the batch size"),
        stats.trend(x, [r["test_accuracy"] for r in rows], claim="decreasing",
                    what="test accuracy falls as the batch size grows (the same epochs and learning rate)"),
    ]  # fmt: skip
    fig, (ax1, ax2, ax3) = F.new(3, width=4.3)
    for i, bs in enumerate(p["batch_sizes"]):
        F.band(ax1, alphas, curves[bs], label=f"batch {bs}", color=F.COLORS[i], style="-")
    ax1.set_xlabel("step along a random direction (filter-normalised)")
    ax1.set_ylabel("training loss")
    ax1.legend(fontsize=8)
    F.bars(ax2, {str(bs): [r["sharpness"] for r in rows if r["batch_size"] == bs] for bs in p["batch_sizes"]},
           ylabel="sharpness", annotate="{:.3f}")  # fmt: skip
    ax2.set_xlabel("batch size")
    F.bars(ax3, {str(bs): [r["test_accuracy"] for r in rows if r["batch_size"] == bs] for bs in p["batch_sizes"]},
           ylabel="test accuracy", annotate="{:.3f}")  # fmt: skip
    ax3.set_xlabel("batch size")
    lo = min(r["test_accuracy"] for r in rows)
    ax3.set_ylim(max(0, lo - 0.05), 1.0)
    F.save(fig, ctx.figure("batch_size"), f"batch size, sharpness and generalization ({p['data']}, MLP {p['hidden']}, "
           f"{p['epochs']} epochs)")  # fmt: skip
    by = {bs: [r for r in rows if r["batch_size"] == bs] for bs in p["batch_sizes"]}
    return Outcome(
        stats.combine(tests),
        "Batch " + ", ".join(f"{bs}: sharpness {stats.mean_sd([r['sharpness'] for r in v])[0]:.3f}, test accuracy "
                             f"{stats.mean_sd([r['test_accuracy'] for r in v])[0]:.4f}" for bs, v in by.items())
        + f" (Spearman rho {tests[0]['rho'] if tests[0]['rho'] is not None else float('nan'):+.2f} and "
        f"{tests[1]['rho'] if tests[1]['rho'] is not None else float('nan'):+.2f}).",
        tests,
        numbers={**{f"sharpness[batch {bs}]": stats.mean_sd([r["sharpness"] for r in v])[0] for bs, v in by.items()},
                 **{f"test_accuracy[batch {bs}]": stats.mean_sd([r["test_accuracy"] for r in v])[0] for bs, v in by.items()},
                 **{f"train_accuracy[batch {bs}]": stats.mean_sd([r["train_accuracy"] for r in v])[0] for bs, v in by.items()}},
        figures=[("batch_size.png", "Training loss along random filter-normalised directions around the trained "
                  "weights (mean of the directions and seeds), the sharpness at half the radius, and test accuracy, "
                  "by batch size.")],
        data={"runs": rows, "alphas": alphas, "curves": {str(k): v for k, v in curves.items()}},
        rule="all parts: sharpness rises and test accuracy falls with the batch size (Spearman, one-sided)",
    )  # fmt: skip


register(
    Experiment(
        name="batch-size-sharpness",
        title="Small batches find flat minima that generalise better",
        claim="Smaller batches tend to reach flat minima and larger ones sharp minima; flat minima generalise "
        "better, so small batches test better.",
        sources=(Source("004", f"{OPTIMIZATION}: Batch-size Matters"),),
        method="The same MLP trained with several batch sizes (same epochs, learning rate and seeds). Sharpness: the "
        "rise of the training loss when the weights move along random filter-normalised directions (Li et al. "
        "2018). Spearman rank correlations of sharpness and of test accuracy with the batch size.",
        profiles={
            "quick": Profile(
                "digits at 14x14, MLP 128, batches 16 and 256, 10 epochs, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "hidden": [128],
                    "batch_sizes": [16, 256],
                    "epochs": 10,
                    "lr": 0.001,
                    "seeds": [0, 1],
                    "probe_images": 500,
                    "directions": 4,
                    "radius": 1.0,
                },
            ),
            "full": Profile(
                "MNIST, 5,000 training images, MLP 512-512, batches 16 to 2,048, 30 epochs, 3 seeds",
                {
                    "data": "mnist",
                    "train_images": 5000,
                    "hidden": [512, 512],
                    "batch_sizes": [16, 64, 256, 1024, 2048],
                    "epochs": 30,
                    "lr": 0.001,
                    "seeds": [0, 1, 2],
                    "probe_images": 2000,
                    "directions": 8,
                    "radius": 1.0,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_batch_size,
    )
)


# ----------------------------------------------------------------------------- regularization


def _regularized_run(p, train, test, seed, cfg: dict, ctx) -> dict:
    from deeper.models import create_model
    from deeper.train import TrainConfig
    from deeper.train.regularize import build_train_transform

    c, h, _ = train.image_shape
    dropout = cfg.get("dropout", 0.0)

    def build():
        if p["model"] == "mlp":
            return mlp(p["hidden"], in_features=c * h * h, num_classes=train.num_classes, dropout=dropout)
        return create_model(
            p["model"], num_classes=train.num_classes, in_chans=c, img_size=h, dropout=dropout
        )

    model = seeded(seed, build)
    tcfg = TrainConfig(data=p["data"], seed=seed, mixup=cfg.get("mixup"), cutmix=cfg.get("cutmix"),
                       input_noise=cfg.get("input_noise"))  # fmt: skip
    transform = build_train_transform(tcfg, train.num_classes, torch.device("cpu"))
    train_classifier(model, train, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="adam", lr=p["lr"],
                     weight_decay=cfg.get("weight_decay", 0.0), label_smoothing=cfg.get("label_smoothing", 0.0),
                     transform=transform, weight_noise=cfg.get("weight_noise", 0.0), seed=seed)  # fmt: skip
    tr, te = evaluate_on(model, train), evaluate_on(model, test)
    return {"train_accuracy": tr["accuracy"], "test_accuracy": te["accuracy"], "gap": tr["accuracy"] - te["accuracy"],
            "train_loss": tr["loss"], "test_loss": te["loss"]}  # fmt: skip


def run_regularization(ctx: Context) -> Outcome:
    p = ctx.params
    train, test = data_split(ctx)
    configs = {"baseline": {}, **p["regularizers"]}
    runs = {k: [] for k in configs}
    for seed in p["seeds"]:
        for name, cfg in configs.items():
            runs[name].append(_regularized_run(p, train, test, seed, cfg, ctx))
        ctx.log(f"  seed {seed}: " + ", ".join(f"{k} gap {v[-1]['gap']:.3f}" for k, v in runs.items()))
    gap = {k: [r["gap"] for r in v] for k, v in runs.items()}
    acc = {k: [r["test_accuracy"] for r in v] for k, v in runs.items()}
    tests = [stats.paired(gap["baseline"], gap[k], claim="less", labels=("baseline", k),
                          what=f"{k} ({', '.join(f'{a}={b}' for a, b in configs[k].items())}): smaller generalisation gap "
                          "(training minus test accuracy) than without regularization")
             for k in p["regularizers"]]  # fmt: skip
    side = [stats.paired(acc["baseline"], acc[k], claim="greater", labels=("baseline", k),
                         what=f"{k}: higher test accuracy than without regularization") for k in p["regularizers"]]  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=6)
    F.bars(ax1, gap, ylabel="training - test accuracy", annotate="{:.3f}")
    ax1.set_title("generalisation gap")
    F.bars(ax2, acc, ylabel="test accuracy", annotate="{:.3f}")
    lo = min(min(v) for v in acc.values())
    ax2.set_ylim(max(0, lo - 0.05), 1.0)
    ax2.set_title("test accuracy")
    F.save(fig, ctx.figure("regularization"), f"regularizers on a small training set ({len(train)} {p['data']} images, "
           f"{p['model']}, {p['epochs']} epochs)")  # fmt: skip
    verdicts = {t["labels"][1]: t["verdict"] for t in tests}
    return Outcome(
        stats.combine(tests),
        f"Gap without regularization {stats.mean_sd(gap['baseline'])[0]:.3f}; with " + ", ".join(
            f"{k} {stats.mean_sd(gap[k])[0]:.3f} ({verdicts[k]})" for k in p["regularizers"]) + ".",
        tests + side,
        numbers={**{f"gap[{k}]": stats.mean_sd(v)[0] for k, v in gap.items()},
                 **{f"test_accuracy[{k}]": stats.mean_sd(v)[0] for k, v in acc.items()}},
        figures=[("regularization.png", "Generalisation gap (training minus test accuracy, both in eval mode on clean "
                  "images) and test accuracy of each regularizer against none (bars: mean and sd over seeds).")],
        data={"runs": runs, "configs": configs},
        rule="all regularizers: each one's gap significantly smaller than the baseline's (paired over seeds); the "
        "test-accuracy comparisons are shown beside, not part of the verdict",
    )  # fmt: skip


register(
    Experiment(
        name="regularization",
        title="Regularizers reduce overfitting on a small training set",
        claim="Dropout, weight decay (the parameter norm penalty), label smoothing, mixup and cutmix, and noise on "
        "the inputs or the weights each reduce overfitting: the gap between training and test performance.",
        sources=(
            Source(
                "004", f"{REGULARIZATION}: Parameter Norm Penalty, Noise Robustness, Label Smoothing, Dropout"
            ),
        ),
        method="One network trained on a small training set without regularization and with each regularizer alone "
        "(deeper's own: the model's dropout, Adam's L2 penalty, label smoothing, the mixup/cutmix and input-noise "
        "batch transforms, the stepper's weight noise), the same seeds. Gap = training accuracy - test accuracy, "
        "both in eval mode on clean images; paired t-test of each regularizer's gap against the baseline's.",
        profiles={
            "quick": Profile(
                "digits at 14x14, 200 training images, MLP 256-256, 25 epochs, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "train_images": 200,
                    "model": "mlp",
                    "hidden": [256, 256],
                    "epochs": 25,
                    "batch_size": 32,
                    "lr": 0.001,
                    "seeds": [0, 1],
                    "regularizers": {
                        "dropout": {"dropout": 0.5},
                        "weight decay": {"weight_decay": 0.001},
                        "label smoothing": {"label_smoothing": 0.1},
                        "mixup": {"mixup": 0.4},
                        "cutmix": {"cutmix": 1.0},
                        "input noise": {"input_noise": 0.2},
                        "weight noise": {"weight_noise": 0.01},
                    },
                },
            ),
            "full": Profile(
                "MNIST, 1,000 training images, MLP 256-256, 30 epochs, 4 seeds",
                {
                    "data": "mnist",
                    "train_images": 1000,
                    "model": "mlp",
                    "hidden": [256, 256],
                    "epochs": 30,
                    "batch_size": 50,
                    "lr": 0.001,
                    "seeds": [0, 1, 2, 3],
                    "regularizers": {
                        "dropout": {"dropout": 0.5},
                        "weight decay": {"weight_decay": 0.001},
                        "label smoothing": {"label_smoothing": 0.1},
                        "mixup": {"mixup": 0.4},
                        "cutmix": {"cutmix": 1.0},
                        "input noise": {"input_noise": 0.2},
                        "weight noise": {"weight_noise": 0.01},
                    },
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_regularization,
    )
)


# ------------------------------------------------------------------------------ early stopping


def run_early_stopping(ctx: Context) -> Outcome:
    p = ctx.params
    full, test = data_split(ctx)
    train_all, val = full.split(p["val_images"], seed=0)
    train = subset(train_all, p["fit_images"], seed=0)
    rows, histories = [], []
    for seed in p["seeds"]:
        model = seeded(
            seed, lambda: mlp(p["hidden"], in_features=_in_features(train), num_classes=train.num_classes)
        )
        r = train_classifier(model, train, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="adam", lr=p["lr"],
                             seed=seed, track={"train": train, "val": val, "test": test})  # fmt: skip
        h = r["history"]
        histories.append(h)
        vl = [row["val_loss"] for row in h]
        stop = len(
            h
        )  # early stopping with patience: the first epoch without improvement for `patience` epochs
        best = 0
        for e in range(1, len(h)):
            if vl[e] < vl[best]:
                best = e
            elif e - best >= p["patience"]:
                stop = e + 1
                break
        picked = best  # restore the best weights (0-based epoch)
        gaps = [row["val_loss"] - row["train_loss"] for row in h]
        tl = [row["test_loss"] for row in h]
        rows.append({"seed": seed, "picked_epoch": picked + 1, "stopped_after": stop,
                     "min_gap_epoch": int(np.argmin(gaps)) + 1, "min_test_loss_epoch": int(np.argmin(tl)) + 1,
                     "gap_at_picked": gaps[picked], "min_gap": min(gaps), "test_loss_at_picked": tl[picked],
                     "test_loss_last": tl[-1], "test_accuracy_at_picked": h[picked]["test_accuracy"],
                     "test_accuracy_last": h[-1]["test_accuracy"]})  # fmt: skip
        ctx.log(f"  seed {seed}: picks epoch {picked + 1}, smallest gap at {rows[-1]['min_gap_epoch']}, lowest test loss "
                f"at {rows[-1]['min_test_loss_epoch']}")  # fmt: skip
    excess = [r["gap_at_picked"] - r["min_gap"] for r in rows]
    tests = [
        stats.one_sample(excess, p["gap_tolerance"], claim="less",
                         what=f"the notes' words: the epoch early stopping picks has (within {p['gap_tolerance']:g} of "
                         "loss) the smallest generalisation gap (validation loss - training loss) of the run"),
        stats.paired([r["test_loss_last"] for r in rows], [r["test_loss_at_picked"] for r in rows], claim="less",
                     labels=("last epoch", "early stopping"),
                     what="what it does: the test loss at the picked epoch is lower than after the whole run"),
        stats.paired([r["test_accuracy_last"] for r in rows], [r["test_accuracy_at_picked"] for r in rows],
                     claim="noninferior", delta=0.005, labels=("last epoch", "early stopping"),
                     what="and its test accuracy is no worse than the last epoch's by more than 0.005"),
    ]  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=5.5)
    epochs = range(1, len(histories[0]) + 1)
    n = min(len(h) for h in histories)
    for key, col, lab in (
        ("train_loss", 0, "training"),
        ("val_loss", 1, "validation"),
        ("test_loss", 2, "test"),
    ):
        F.band(
            ax1,
            list(epochs)[:n],
            [[row[key] for row in h[:n]] for h in histories],
            label=lab,
            color=F.COLORS[col],
            style="-",
        )
    F.band(ax2, list(epochs)[:n], [[row["val_loss"] - row["train_loss"] for row in h[:n]] for h in histories],
           label="gap (validation - training loss)", color=F.COLORS[3], style="-")  # fmt: skip
    for ax in (ax1, ax2):
        for r in rows:
            ax.axvline(r["picked_epoch"], color="k", ls=":", lw=0.8)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax2.set_ylabel("generalisation gap")
    F.save(fig, ctx.figure("early_stopping"), f"early stopping ({len(train)} {p['data']} images, patience {p['patience']}; "
           "dotted: the epochs it picks)")  # fmt: skip
    return Outcome(
        tests[0]["verdict"],
        f"Early stopping picks epochs {[r['picked_epoch'] for r in rows]}, the lowest validation loss; the gap is "
        f"smallest at epochs {[r['min_gap_epoch'] for r in rows]} (it only grows), the test loss lowest at "
        f"{[r['min_test_loss_epoch'] for r in rows]}. Test loss at the picked epoch {stats.mean_sd([r['test_loss_at_picked'] for r in rows])[0]:.3f} "
        f"vs {stats.mean_sd([r['test_loss_last'] for r in rows])[0]:.3f} after all {p['epochs']} epochs.",
        tests,
        numbers={"picked_epoch": stats.mean_sd([r["picked_epoch"] for r in rows])[0],
                 "min_gap_epoch": stats.mean_sd([r["min_gap_epoch"] for r in rows])[0],
                 "min_test_loss_epoch": stats.mean_sd([r["min_test_loss_epoch"] for r in rows])[0],
                 "test_loss_picked": stats.mean_sd([r["test_loss_at_picked"] for r in rows])[0],
                 "test_loss_last": stats.mean_sd([r["test_loss_last"] for r in rows])[0]},
        figures=[("early_stopping.png", "Training, validation and test loss per epoch (log scale), and the "
                  "generalisation gap; dotted lines: the epochs early stopping picks (one per seed).")],
        data={"runs": rows, "histories": histories},
        rule="the claim as the notes state it (the first test) decides; the other two show what early stopping does",
    )  # fmt: skip


register(
    Experiment(
        name="early-stopping",
        title="Early stopping picks the epoch of the smallest generalisation gap",
        claim="Early stopping compares the validation error with the training error and stops where the "
        "generalisation gap is smallest.",
        sources=(
            Source("004", f"{REGULARIZATION}: Early Stopping"),
            Source("004", f"{OPTIMIZATION}: generalization"),
        ),  # fmt: skip
        method="An MLP trained well past its best epoch on a small training set, with the training, validation and "
        "test loss recorded after every epoch. Early stopping (patience, restore the best) picks the epoch of the "
        "lowest validation loss; that epoch's gap (validation - training loss) is compared with the smallest gap of "
        "the run (one-sample t-test over seeds against a tolerance), and its test loss with the last epoch's.",
        profiles={
            "quick": Profile(
                "digits at 14x14, 200 training images, MLP 256, 40 epochs, 3 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "fit_images": 200,
                    "val_images": 300,
                    "hidden": [256],
                    "epochs": 40,
                    "batch_size": 32,
                    "lr": 0.004,
                    "patience": 5,
                    "seeds": [0, 1, 2],
                    "gap_tolerance": 0.05,
                },
            ),
            "full": Profile(
                "MNIST, 1,000 training images, 5,000 validation, MLP 512-512, 100 epochs, 5 seeds",
                {
                    "data": "mnist",
                    "fit_images": 1000,
                    "val_images": 5000,
                    "hidden": [512, 512],
                    "epochs": 100,
                    "batch_size": 50,
                    "lr": 0.001,
                    "patience": 10,
                    "seeds": [0, 1, 2, 3, 4],
                    "gap_tolerance": 0.05,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_early_stopping,
    )
)


# ----------------------------------------------------------------------------- bias and variance


def _target(x):
    return np.sin(2 * np.pi * x)


def bias_variance(degree: int, x, t, x_test, *, resamples: int, noise: float, rng) -> dict:
    """Bias^2, variance and expected test error of polynomial least squares of ``degree``, over bootstrap
    resamples of the training set ``(x, t)``; the noise of the targets is known (``noise`` std)."""
    from numpy.polynomial import Legendre

    preds = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        preds.append(Legendre.fit(x[i], t[i], degree, domain=[0, 1])(x_test))
    preds = np.array(preds)  # (B, M)
    mean = preds.mean(0)
    f = _target(x_test)
    bias2 = float(np.mean((mean - f) ** 2))
    var = float(np.mean(preds.var(0)))
    draws = f + noise * rng.standard_normal((20, len(x_test)))  # fresh noisy targets at the test points
    mse = float(np.mean((draws[None] - preds[:, None]) ** 2))
    return {"degree": degree, "bias2": bias2, "variance": var, "noise": noise**2, "test_mse": mse,
            "sum": bias2 + var + noise**2}  # fmt: skip


def run_bias_variance(ctx: Context) -> Outcome:
    p = ctx.params
    rows, example = [], None
    x_test = np.linspace(0.05, 0.95, 200)  # inside the range the training points cover
    for seed in p["seeds"]:
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, p["train_points"])
        t = _target(x) + p["noise"] * rng.standard_normal(len(x))
        for d in p["degrees"]:
            rows.append(
                {
                    "seed": seed,
                    **bias_variance(d, x, t, x_test, resamples=p["resamples"], noise=p["noise"], rng=rng),
                }
            )
        if example is None:
            example = (x, t)
    rel = max(abs(r["test_mse"] - r["sum"]) / r["test_mse"] for r in rows)
    by = {d: [r for r in rows if r["degree"] == d] for d in p["degrees"]}
    mean = {
        k: [float(np.mean([r[k] for r in by[d]])) for d in p["degrees"]]
        for k in ("bias2", "variance", "test_mse", "sum")
    }
    lo, hi = min(p["degrees"]), max(p["degrees"])
    best = p["degrees"][int(np.argmin(mean["test_mse"]))]  # the capacity of the least expected test error
    tests = [
        stats.paired([math.log10(r["bias2"]) for r in by[lo]], [math.log10(r["bias2"]) for r in by[best]], claim="less",
                     labels=(f"degree {lo}", f"degree {best}"),
                     what=f"bias^2 falls from the simplest model (degree {lo}) to the best one (degree {best}), "
                     "paired over training sets (log10)"),
        stats.paired([math.log10(r["variance"]) for r in by[best]], [math.log10(r["variance"]) for r in by[hi]],
                     claim="greater", labels=(f"degree {best}", f"degree {hi}"),
                     what=f"the variance rises from the best model to the most flexible one (degree {hi}) (log10)"),
        stats.trend([r["degree"] for r in rows], [r["variance"] for r in rows], claim="increasing",
                    what="the variance grows with the degree (Spearman, every degree)"),
        stats.exact("the expected test error equals bias^2 + variance + noise (largest relative difference below 5%)",
                    rel < 0.05, largest_relative_difference=rel),
    ]  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=5.5)
    ax1.plot(p["degrees"], mean["bias2"], "-o", label="bias$^2$")
    ax1.plot(p["degrees"], mean["variance"], "-s", label="variance")
    ax1.axhline(p["noise"] ** 2, color="0.5", ls=":", label="noise $\\sigma^2$")
    ax1.plot(p["degrees"], mean["test_mse"], "-^", color="k", label="expected test error")
    ax1.plot(p["degrees"], mean["sum"], "x", color="tab:red", label="bias$^2$ + variance + noise")
    ax1.set_yscale("log")
    ax1.set_xlabel("capacity: polynomial degree")
    ax1.legend(fontsize=8)
    from numpy.polynomial import Legendre

    x, t = example
    ax2.plot(x, t, "k.", label="training points")
    ax2.plot(x_test, _target(x_test), "k--", lw=1, label="f(x)")
    rng = np.random.default_rng(123)
    for d, c in ((min(p["degrees"]), F.COLORS[0]), (best, F.COLORS[2]), (max(p["degrees"]), F.COLORS[3])):
        for b in range(5):
            i = rng.integers(0, len(x), len(x))
            ax2.plot(x_test, Legendre.fit(x[i], t[i], d, domain=[0, 1])(x_test), color=c, lw=0.8, alpha=0.7,
                     label=f"degree {d}" if b == 0 else None)  # fmt: skip
    ax2.set_ylim(-2, 2)
    ax2.legend(fontsize=8)
    ax2.set_title("fits on bootstrap resamples")
    F.save(fig, ctx.figure("bias_variance"), f"bias-variance decomposition ({p['train_points']} points, noise sd "
           f"{p['noise']}, {p['resamples']} bootstrap resamples, {len(p['seeds'])} training sets)")  # fmt: skip
    return Outcome(
        stats.combine(tests),
        f"The expected test error is lowest at degree {best}. From degree {lo} to {best} bias^2 falls "
        f"{mean['bias2'][0]:.3f} -> {mean['bias2'][p['degrees'].index(best)]:.4f}; from degree {best} to {hi} the "
        f"variance rises {mean['variance'][p['degrees'].index(best)]:.4f} -> {mean['variance'][-1]:.3g} (medians over "
        f"training sets of the last: {float(np.median([r['variance'] for r in by[hi]])):.3g}); test error = bias^2 + "
        f"variance + noise to within {rel:.1%}.",
        tests,
        numbers={"best_degree": best, **{f"bias2[{d}]": v for d, v in zip(p["degrees"], mean["bias2"])},
                 **{f"variance[{d}]": v for d, v in zip(p["degrees"], mean["variance"])}, "noise": p["noise"] ** 2},
        figures=[("bias_variance.png", "Bias^2, variance, noise and the expected test error against capacity (mean "
                  "over training sets), and fits of a too simple, the best and a too flexible model on bootstrap "
                  "resamples.")],
        data={"rows": rows},
        rule="all parts: bias^2 falls from the simplest to the best model, the variance rises from the best to the most "
        "flexible one (and with the degree), and the decomposition adds up",
    )  # fmt: skip


register(
    Experiment(
        name="bias-variance",
        title="The bias-variance decomposition, measured with bootstrap resamples",
        claim="The expected error splits into bias^2 + variance + noise; as capacity grows the bias falls and the "
        "variance rises, so with noisy data both cannot be minimised at once. Bootstrapping (training on resamples) "
        "shows the variance.",
        sources=(Source("004", f"{OPTIMIZATION}: Bias and Variance, bootstrapping"),),
        method="Noisy samples of a known function (sin 2 pi x, Gaussian noise of known sd); least-squares "
        "polynomials of growing degree fitted on bootstrap resamples of one training set; bias^2 and variance of the "
        "fits against the true function at 200 test points inside the training range, the expected error on fresh "
        "noisy targets; several training sets. Paired t-tests over training sets: bias^2 of the simplest model against "
        "the best one (least expected test error), variance of the best against the most flexible; a Spearman trend of "
        "the variance; the identity checked numerically.",
        profiles={
            "quick": Profile(
                "40 points, degrees 0-10, 50 resamples, 4 training sets",
                {
                    "train_points": 40,
                    "noise": 0.3,
                    "degrees": list(range(11)),
                    "resamples": 50,
                    "seeds": [0, 1, 2, 3],
                },
            ),
            "full": Profile(
                "40 points, degrees 0-10, 400 resamples, 30 training sets",
                {
                    "train_points": 40,
                    "noise": 0.3,
                    "degrees": list(range(11)),
                    "resamples": 400,
                    "seeds": list(range(30)),
                },
            ),
        },  # fmt: skip
        run=run_bias_variance,
    )
)
