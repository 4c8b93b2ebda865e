"""Optimization (004): stochastic, mini-batch and full-batch gradient descent; the optimizers of the notes."""

from __future__ import annotations

import math
import statistics
import time

import torch
from torch import nn

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import data_split, mlp, subset

SECTION = "Optimization: Practical Gradient Descent Methods"


def _tensors(ds):
    return ds.images.float().div(255), ds.labels


@torch.no_grad()
def _loss(model, x, y) -> float:
    model.eval()
    out = float(nn.functional.cross_entropy(model(x), y))
    model.train()
    return out


# ------------------------------------------------------------------------ SGD, mini-batch, full batch


def gd_run(
    x, y, px, py, *, hidden, batch: int, lr: float, seed: int, budget: float, evals_per_epoch: int
) -> list[dict]:
    """Plain gradient descent (``W <- W - lr * g``) with batches of ``batch`` samples for ``budget`` seconds of
    training (the evaluations are not timed); the training loss on ``(px, py)`` a few times per epoch."""
    from deeper.train import create_optimizer

    torch.manual_seed(seed)
    model = mlp(hidden, in_features=x[0].numel(), num_classes=int(y.max()) + 1)
    opt = create_optimizer("sgd", model.parameters(), lr=lr, weight_decay=0.0)
    n = len(x)
    every = max(1, n // evals_per_epoch)
    g = torch.Generator().manual_seed(seed)
    spent, samples, nxt = 0.0, 0, every
    curve = [{"seconds": 0.0, "samples": 0, "loss": _loss(model, px, py)}]
    while spent < budget:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            start = time.perf_counter()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            spent += time.perf_counter() - start
            samples += len(idx)
            if samples >= nxt or spent >= budget:
                value = _loss(model, px, py)
                curve.append(
                    {"seconds": spent, "samples": samples, "loss": value if math.isfinite(value) else 1e9}
                )
                nxt = samples + every
                if not math.isfinite(value) or spent >= budget:
                    return curve
    return curve


def time_to(curve: list[dict], target: float, budget: float) -> float:
    """Seconds of training until the loss first reaches ``target`` (``budget`` if it never does: censored)."""
    return next((c["seconds"] for c in curve if c["loss"] <= target), budget)


def run_gd(ctx: Context) -> Outcome:
    p = ctx.params
    train, _ = data_split(ctx)
    x, y = _tensors(train)
    px, py = _tensors(subset(train, p["probe_images"], seed=3))
    variants = {
        "stochastic (1)": 1,
        f"mini-batch ({p['mini_batch']})": p["mini_batch"],
        f"full batch ({len(train)})": len(train),
    }
    runs: dict[str, dict[float, list]] = {}
    for name, bs in variants.items():
        runs[name] = {}
        for lr in p["lrs"][name.split(" (")[0]]:
            runs[name][lr] = [gd_run(x, y, px, py, hidden=p["hidden"], batch=bs, lr=lr, seed=s, budget=p["budget"],
                                     evals_per_epoch=p["evals_per_epoch"]) for s in p["seeds"]]  # fmt: skip
            ctx.log(
                f"  {name}, lr {lr}: loss {statistics.mean(c[-1]['loss'] for c in runs[name][lr]):.3f} after {p['budget']} s"
            )
    best, ttt = {}, {}
    for name, by_lr in runs.items():  # each variant at its own best learning rate (the same for every seed)
        best[name] = min(
            by_lr, key=lambda lr: statistics.mean(time_to(c, p["target"], p["budget"]) for c in by_lr[lr])
        )
        ttt[name] = [time_to(c, p["target"], p["budget"]) for c in by_lr[best[name]]]
    sgd, mini, full = list(variants)
    tests = [
        stats.paired(ttt[sgd], ttt[mini], claim="less", labels=(sgd, mini),
                     what=f"mini-batch reaches a training loss of {p['target']} in less time than per-sample SGD"),
        stats.paired(ttt[full], ttt[mini], claim="less", labels=(full, mini),
                     what="mini-batch reaches it in less time than full-batch gradient descent"),
    ]  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=5.5)
    for i, name in enumerate(variants):
        for j, c in enumerate(runs[name][best[name]]):
            lab = f"{name}, lr {best[name]:g}" if j == 0 else None
            ax1.plot(
                [r["seconds"] for r in c],
                [r["loss"] for r in c],
                "-",
                color=F.COLORS[i],
                alpha=0.8,
                label=lab,
            )
            ax2.plot(
                [r["samples"] / len(train) for r in c],
                [r["loss"] for r in c],
                "-",
                color=F.COLORS[i],
                alpha=0.8,
                label=lab,
            )
    for ax, xl in ((ax1, "training seconds"), (ax2, "epochs (samples seen / training set)")):
        ax.axhline(p["target"], color="k", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    ax2.set_xscale("log")
    F.save(fig, ctx.figure("gd_variants"), f"gradient descent by batch size ({p['data']}, MLP {p['hidden']}, each at its best "
           "learning rate; dotted: the target)")  # fmt: skip
    med = {k: statistics.median(v) for k, v in ttt.items()}
    return Outcome(
        stats.combine(tests),
        "Seconds to a training loss of " + f"{p['target']}: " + ", ".join(
            f"{k} {v:.2f}" + (" (not reached)" if v >= p["budget"] else "") for k, v in med.items()) + ".",
        tests,
        numbers={**{f"seconds_to_target[{k}]": v for k, v in med.items()}, **{f"lr[{k}]": v for k, v in best.items()}},
        figures=[("gd_variants.png", "Training loss against training time and against epochs, each variant at its best "
                  "learning rate of the grid (one line per seed).")],
        data={"best_lr": best, "seconds_to_target": ttt,
              "curves": {k: {str(lr): c for lr, c in v.items()} for k, v in runs.items()}},
        rule="all parts: mini-batch faster to the target than both",
    )  # fmt: skip


register(
    Experiment(
        name="gd-variants",
        title="Stochastic, mini-batch and full-batch gradient descent",
        claim="Gradient descent can update from one sample (stochastic), from a subset (mini-batch) or from all the "
        "data (batch); mini-batch is the one used most, because it learns fastest in practice.",
        sources=(Source("004", f"{SECTION}: Gradient Descent Methods"),),
        method="The same MLP trained by plain gradient descent (`W <- W - lr g`) with batches of 1, of a few dozen and "
        "of the whole training set, each with the learning rate of a small grid that reaches the target soonest, for "
        "the same training time. Seconds of training (evaluations untimed) until the training loss reaches a target, "
        "paired t-tests over seeds.",
        profiles={
            "quick": Profile(
                "digits at 14x14, MLP 64, 1 s per run, one learning rate each, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "hidden": [64],
                    "mini_batch": 32,
                    "budget": 1.0,
                    "target": 0.3,
                    "evals_per_epoch": 8,
                    "probe_images": 500,
                    "seeds": [0, 1],
                    "lrs": {"stochastic": [0.03], "mini-batch": [0.3], "full batch": [1.0]},
                },
            ),
            "full": Profile(
                "MNIST, 10,000 training images, MLP 100-100, 4 s of training per run, 3 learning rates each, 3 seeds",
                {
                    "data": "mnist",
                    "train_images": 10000,
                    "hidden": [100, 100],
                    "mini_batch": 32,
                    "budget": 4.0,
                    "target": 0.25,
                    "evals_per_epoch": 10,
                    "probe_images": 2000,
                    "seeds": [0, 1, 2],
                    "lrs": {
                        "stochastic": [0.003, 0.01, 0.03],
                        "mini-batch": [0.03, 0.1, 0.3],
                        "full batch": [0.3, 1.0, 3.0],
                    },
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_gd,
    )
)


# ------------------------------------------------------------------------------------ optimizers

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam")


def opt_run(name: str, lr: float, train, val, test, *, hidden, epochs: int, batch: int, seed: int) -> dict:
    """``name`` at ``lr`` on an MLP: the training loss after each epoch, the size of the updates, final figures."""
    from deeper.train import create_optimizer

    x, y = _tensors(train)
    torch.manual_seed(seed)
    model = mlp(hidden, in_features=x[0].numel(), num_classes=train.num_classes)
    opt = create_optimizer(name, model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    curve, updates = [_loss(model, x, y)], []
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                return {
                    "diverged": True,
                    "curve": curve,
                    "val_loss": math.inf,
                    "test_accuracy": 0.0,
                    "updates": updates,
                }
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if step % 10 == 0:
                before = [q.detach().clone() for q in params]
                opt.step()
                updates.append(
                    math.sqrt(sum(float((q.detach() - b).pow(2).sum()) for q, b in zip(params, before)))
                )
            else:
                opt.step()
            step += 1
        curve.append(_loss(model, x, y))
    vx, vy = _tensors(val)
    tx, ty = _tensors(test)
    with torch.no_grad():
        model.eval()
        acc = float((model(tx).argmax(1) == ty).float().mean())
    val_loss = _loss(model, vx, vy)
    return {"diverged": False, "curve": curve, "val_loss": val_loss if math.isfinite(val_loss) else math.inf,
            "test_accuracy": acc, "updates": updates}  # fmt: skip


def _decay(updates: list[float]) -> float:
    """How much the updates shrank: the mean of the last tenth over the mean of the first tenth."""
    k = max(1, len(updates) // 10)
    return statistics.mean(updates[-k:]) / max(statistics.mean(updates[:k]), 1e-12)


def run_optimizers(ctx: Context) -> Outcome:
    from deeper.analysis.accuracy_plots import optimizer_trajectories

    p = ctx.params
    full, test = data_split(ctx)
    train, val = full.split(p["val_images"], seed=0)
    runs: dict[str, dict[float, list[dict]]] = {}
    for name in OPTIMIZERS:
        runs[name] = {}
        for lr in p["lrs"][name]:
            runs[name][lr] = [opt_run(name, lr, train, val, test, hidden=p["hidden"], epochs=p["epochs"],
                                      batch=p["batch_size"], seed=s) for s in p["seeds"]]  # fmt: skip
        ctx.log(f"  {name}: " + ", ".join(f"lr {lr} val loss {statistics.mean(r['val_loss'] for r in v):.3f}"
                                          for lr, v in runs[name].items()))  # fmt: skip
    best = {n: min(v, key=lambda lr: statistics.mean(r["val_loss"] for r in v[lr])) for n, v in runs.items()}
    chosen = {n: runs[n][best[n]] for n in OPTIMIZERS}
    acc = {n: [r["test_accuracy"] for r in chosen[n]] for n in OPTIMIZERS}
    final = {n: [r["curve"][-1] for r in chosen[n]] for n in OPTIMIZERS}
    top = max((n for n in OPTIMIZERS if n != "adam"), key=lambda n: statistics.mean(acc[n]))
    tests = [
        stats.paired(final["sgd"], final["momentum"], claim="less", labels=("sgd", "momentum"),
                     what="momentum ends with a lower training loss than plain SGD (each at its best learning rate)"),
        stats.paired(acc[top], acc["adam"], claim="noninferior", delta=p["delta"], labels=(top, "adam"),
                     what=f"Adam performs well: its test accuracy is no worse than the best other optimizer's ({top}) by "
                     f"more than {p['delta']:g}"),
        stats.paired([_decay(r["updates"]) for r in chosen["rmsprop"]], [_decay(r["updates"]) for r in chosen["adagrad"]],
                     claim="less", labels=("rmsprop", "adagrad"),
                     what="Adagrad's steps shrink as its sum of squared gradients grows: the size of its updates falls "
                     "more over training than RMSprop's (last tenth / first tenth)"),
    ]  # fmt: skip
    fig, (ax1, ax2, ax3) = F.new(3, width=4.5)
    for i, n in enumerate(OPTIMIZERS):
        F.band(ax1, range(p["epochs"] + 1), [r["curve"] for r in chosen[n]], label=f"{n} ({best[n]:g})",
               color=F.COLORS[i % len(F.COLORS)], style="-")  # fmt: skip
        ups = [r["updates"] for r in chosen[n]]
        if n in ("adagrad", "rmsprop", "adadelta", "sgd"):
            m = min(len(u) for u in ups)
            ax3.plot([10 * k for k in range(m)], [statistics.mean(u[k] for u in ups) for k in range(m)], "-",
                     color=F.COLORS[i % len(F.COLORS)], label=n, lw=1)  # fmt: skip
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.legend(fontsize=7)
    F.bars(ax2, acc, ylabel="test accuracy", annotate="{:.3f}")
    lo = min(min(v) for v in acc.values())
    ax2.set_ylim(max(0, lo - 0.02), 1.0)
    ax3.set_yscale("log")
    ax3.set_xlabel("step")
    ax3.set_ylabel("size of the update |dW|")
    ax3.legend(fontsize=8)
    F.save(fig, ctx.figure("optimizers"), f"the optimizers of the notes on one problem ({p['data']}, MLP {p['hidden']}, "
           "each at its best learning rate)")  # fmt: skip
    paths = optimizer_trajectories(
        ctx.figure("optimizer_paths"), optimizers=list(OPTIMIZERS), steps=p["path_steps"]
    )
    m = {n: statistics.mean(v) for n, v in acc.items()}
    return Outcome(
        stats.combine(tests),
        "Test accuracy at each optimizer's best learning rate: " + ", ".join(f"{n} {v:.4f}" for n, v in m.items())
        + f"; training loss sgd {statistics.mean(final['sgd']):.3f} vs momentum {statistics.mean(final['momentum']):.3f}.",
        tests,
        numbers={**{f"test_accuracy[{n}]": v for n, v in m.items()}, **{f"lr[{n}]": v for n, v in best.items()}},
        figures=[("optimizers.png", "Training loss per epoch, test accuracy, and the size of the updates over "
                  "training, each optimizer at the learning rate of its grid with the lowest validation loss."),
                 ("optimizer_paths.png", "The optimizers' paths on two functions from the same start (`deeper "
                  "optimizers plot`).")],
        data={"best_lr": best, "runs": {n: {str(lr): v for lr, v in r.items()} for n, r in runs.items()}, "paths": paths},
        rule="all parts",
    )  # fmt: skip


register(
    Experiment(
        name="optimizers",
        title="The optimizers of the notes on the same problem",
        claim="Momentum improves on plain gradient descent; Adagrad's learning rate shrinks towards zero as its sum of "
        "squared gradients grows (Adadelta and RMSprop fix that with moving averages); Adam (RMSprop plus momentum) "
        "performs well in general.",
        sources=(
            Source(
                "004",
                "Optimization: optimizer (Gradient Descent, Momentum, NAG, Adagrad, Adadelta, RMSprop, Adam)",
            ),
        ),
        method="The same MLP, data, batches and seeds for SGD, Momentum, Nesterov, Adagrad, Adadelta, RMSprop and Adam "
        "(deeper's optimizer registry), each at the learning rate of a small grid with the lowest validation loss. "
        "Paired t-tests over seeds: momentum's final training loss against SGD's, Adam's test accuracy against the "
        "best other optimizer's (non-inferiority), and how much Adagrad's updates shrink against RMSprop's.",
        profiles={
            "quick": Profile(
                "digits at 14x14, MLP 64, 3 epochs, 2 learning rates each, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "val_images": 200,
                    "hidden": [64],
                    "epochs": 3,
                    "batch_size": 32,
                    "seeds": [0, 1],
                    "delta": 0.02,
                    "path_steps": 30,
                    "lrs": {
                        "sgd": [0.03, 0.1],
                        "momentum": [0.01, 0.03],
                        "nesterov": [0.01, 0.03],
                        "adagrad": [0.01, 0.03],
                        "adadelta": [1.0, 3.0],
                        "rmsprop": [0.001, 0.003],
                        "adam": [0.001, 0.003],
                    },
                },
            ),
            "full": Profile(
                "MNIST, 10,000 training images, MLP 100-100, 10 epochs, 3 learning rates each, 4 seeds",
                {
                    "data": "mnist",
                    "train_images": 15000,
                    "val_images": 5000,
                    "hidden": [100, 100],
                    "epochs": 10,
                    "batch_size": 64,
                    "seeds": [0, 1, 2, 3],
                    "delta": 0.005,
                    "path_steps": None,
                    "lrs": {
                        "sgd": [0.01, 0.03, 0.1],
                        "momentum": [0.003, 0.01, 0.03],
                        "nesterov": [0.003, 0.01, 0.03],
                        "adagrad": [0.003, 0.01, 0.03],
                        "adadelta": [0.3, 1.0, 3.0],
                        "rmsprop": [0.0003, 0.001, 0.003],
                        "adam": [0.0003, 0.001, 0.003],
                    },
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_optimizers,
    )
)
