"""Transfer learning (8.2.4 note): weights learnt on a large dataset help where the data are few.

:func:`transfer_runs` is the protocol of ``benchmarks/transfer.py`` (which calls it): pretrain on
MNIST, then train on a few hundred images of each target three ways (from scratch, fine-tuned,
frozen features) with one recipe, through :func:`deeper.fit`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import (
    classes_subset,
    evaluate_on,
    resize,
    seeded,
    stage_net,
    subset,
    train_classifier,
)
from deeper.experiments.results import benchmark_result

#: how a target is trained: from scratch, or from the pretrained weights (all trained, or the classifier only)
MODES = {"scratch": {}, "finetune": {"freeze": "none"}, "frozen": {"freeze": "features"}}


def transfer_runs(
    weights: str,
    *,
    model: str = "deep-convnet",
    targets: list[str],
    seeds: list[int],
    subset: int = 500,
    epochs: int = 30,
    batch_size: int = 50,
    lr: float = 1e-3,
    data_dir: str | None = None,
    out: str,
    log: Callable[[str], None] = lambda _m: None,
) -> list[dict]:
    """Train ``model`` on the first ``subset`` training images of each target, for each seed, in each of
    :data:`MODES` (Adam, one-cycle to ``lr``, no validation split); the test accuracy of each run."""
    from deeper.train import TrainConfig, fit

    runs = []
    for target in targets:
        for seed in seeds:
            for mode, extra in MODES.items():
                cfg = TrainConfig(
                    model=model, data=target, subset=subset, val_size=0, epochs=epochs, batch_size=batch_size,
                    optimizer="adam", lr=lr, schedule="onecycle", label_smoothing=0.0, seed=seed,
                    out=f"{out}/{target}-{mode}-{seed}", init_from=None if mode == "scratch" else str(weights),
                    device="cpu", data_dir=data_dir, tensorboard=False, progress=False, **extra,
                )  # fmt: skip
                r = fit(cfg, log=lambda _msg: None)
                runs.append(
                    {"target": target, "mode": mode, "seed": seed, "test_accuracy": r["test_accuracy"]}
                )
                log(f"  {target} {mode} seed {seed}: {r['test_accuracy']:.4f}")
    return runs


def summarize_runs(runs: list[dict]) -> list[dict]:
    """Mean and standard deviation of the test accuracy per target and mode."""
    out = []
    for target in dict.fromkeys(r["target"] for r in runs):
        for mode in MODES:
            accs = [r["test_accuracy"] for r in runs if r["target"] == target and r["mode"] == mode]
            if accs:
                m, sd = stats.mean_sd(accs)
                out.append({"target": target, "mode": mode, "mean": m, "std": sd, "seeds": len(accs)})
    return out


# ------------------------------------------------------------------------------- the experiment


def _probe_runs(ctx: Context) -> tuple[list[dict], dict]:
    """The quick version: digits 0-4 as the source, a few images of digits 5-9 as the target (same protocol)."""
    p = ctx.params
    train = resize(ctx.dataset("digits", "train"), p["img_size"])
    test = resize(ctx.dataset("digits", "test"), p["img_size"])
    src, tgt = p["source_classes"], p["target_classes"]
    src_train, tgt_train, tgt_test = (
        classes_subset(train, src),
        classes_subset(train, tgt),
        classes_subset(test, tgt),
    )
    c, h, _ = train.image_shape
    build = lambda: stage_net([[3, 3], [3]], [p["width"], 2 * p["width"]], in_chans=c,  # noqa: E731
                              num_classes=len(src), img_size=h)  # fmt: skip
    pre = seeded(0, build)
    train_classifier(pre, src_train, epochs=p["pretrain_epochs"], batch_size=32, lr=0.003, seed=0)
    pre_acc = evaluate_on(pre, classes_subset(test, src))["accuracy"]
    runs = []
    for seed in p["seeds"]:
        few = subset(tgt_train, p["subset"], seed=seed)
        for mode in MODES:
            model = seeded(seed, build) if mode == "scratch" else copy.deepcopy(pre)
            if mode != "scratch":
                features = model[-1].in_features
                model[-1] = seeded(seed, lambda features=features: nn.Linear(features, len(tgt)))
            if mode == "frozen":
                for m in list(model)[:-1]:
                    for q in m.parameters():
                        q.requires_grad_(False)
            train_classifier(model, few, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], schedule="onecycle",
                             seed=seed)  # fmt: skip
            runs.append({"target": "digits 5-9", "mode": mode, "seed": seed,
                         "test_accuracy": evaluate_on(model, tgt_test)["accuracy"]})  # fmt: skip
        ctx.log(
            "  seed "
            + str(seed)
            + ": "
            + ", ".join(f"{r['mode']} {r['test_accuracy']:.3f}" for r in runs[-3:])
        )
    return runs, {"source": "digits 0-4", "pretrain_test_accuracy": pre_acc}


def run_transfer(ctx: Context) -> Outcome:
    import tempfile

    p = ctx.params
    evidence, notes = [], []
    if ctx.reuse:
        doc, path = benchmark_result("transfer")
        runs, info = doc["runs"], {"source": "MNIST", "pretrain_test_accuracy": doc.get("pretrain_test_accuracy"),
                                   "recipe": doc.get("recipe")}  # fmt: skip
        evidence.append(path)
        notes.append(f"Measured by benchmarks/transfer.py on {doc['machine']} (torch {doc['torch']}).")
    elif p.get("probe"):
        runs, info = _probe_runs(ctx)
    else:
        from deeper.train import fit

        with tempfile.TemporaryDirectory() as tmp:
            ctx.log(f"  pretraining {p['model']} on MNIST ({p['pretrain_epochs']} epochs)")
            pre = fit(model=p["model"], data="mnist", epochs=p["pretrain_epochs"], out=f"{tmp}/pre", device="cpu",
                      data_dir=ctx.data_dir, tensorboard=False, progress=False, log=lambda _m: None)  # fmt: skip
            runs = transfer_runs(pre["weights"], model=p["model"], targets=p["targets"], seeds=p["seeds"], subset=p["subset"],
                                 epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], data_dir=ctx.data_dir,
                                 out=tmp, log=ctx.log)  # fmt: skip
        info = {"source": "MNIST", "pretrain_test_accuracy": pre["test_accuracy"]}
    targets = list(dict.fromkeys(r["target"] for r in runs))

    def accs(target, mode):
        return [
            r["test_accuracy"]
            for r in sorted(runs, key=lambda r: r["seed"])
            if r["target"] == target and r["mode"] == mode
        ]

    tests = [stats.paired(accs(t, "scratch"), accs(t, "finetune"), claim="greater", labels=("from scratch", "fine-tuned"),
                          what=f"{t}: fine-tuning the pretrained weights beats training from scratch on the few images")
             for t in targets]  # fmt: skip
    side = [stats.paired(accs(t, "scratch"), accs(t, "frozen"), claim="greater", labels=("from scratch", "frozen features"),
                         what=f"{t}: training only a new classifier on the frozen features beats training from scratch")
            for t in targets]  # fmt: skip
    fig, axes = F.new(len(targets), width=4.8)
    for ax, t in zip(axes, targets):
        F.paired_lines(ax, {m: accs(t, m) for m in MODES}, ylabel="test accuracy")
        ax.set_title(t)
    F.save(fig, ctx.figure("transfer"), f"transfer from {info['source']} to a few images of each target")
    summary = summarize_runs(runs)
    return Outcome(
        stats.combine(tests),
        "; ".join(f"{t}: scratch {stats.mean_sd(accs(t, 'scratch'))[0]:.4f}, fine-tuned {stats.mean_sd(accs(t, 'finetune'))[0]:.4f}, "
                  f"frozen {stats.mean_sd(accs(t, 'frozen'))[0]:.4f}" for t in targets) + ".",
        tests + side,
        numbers={f"{s['target']}_{s['mode']}": s["mean"] for s in summary},
        figures=[("transfer.png", "Test accuracy on each target from scratch, fine-tuned from the source's weights, "
                  "and with the source's features frozen (grey: one line per seed; blue: the mean).")],
        data={"runs": runs, "summary": summary, **info}, evidence=evidence, notes=notes,
        rule="all targets: fine-tuning beats training from scratch (paired over seeds); the frozen-feature runs are "
        "shown beside, not part of the verdict",
    )  # fmt: skip


register(
    Experiment(
        name="transfer",
        title="Transfer learning helps where the data are few",
        claim="Weights learnt on a large dataset, copied into a network and trained further on a new dataset (transfer "
        "learning), are especially useful when the new dataset is small.",
        sources=(Source("003", "8.2.4 ResNet, note on transfer learning"), Source("002", "8.2.4 ResNet")),
        method="One network pretrained on a source, then trained on a few images of a target with one recipe three "
        "ways: from scratch, fine-tuned from the source's weights (new classifier), and with the source's features "
        "frozen. Paired t-test over seeds of fine-tuned against scratch on each target. The full profile is "
        "benchmarks/transfer.py's protocol (`--reuse` reads its committed results).",
        profiles={
            "quick": Profile(
                "digits 0-4 -> 40 images of digits 5-9 at 14x14, 3 seeds",
                {
                    "probe": True,
                    "img_size": 14,
                    "source_classes": [0, 1, 2, 3, 4],
                    "target_classes": [5, 6, 7, 8, 9],
                    "width": 8,
                    "pretrain_epochs": 4,
                    "subset": 40,
                    "epochs": 15,
                    "batch_size": 20,
                    "lr": 0.003,
                    "seeds": [0, 1, 2],
                },
            ),
            "full": Profile(
                "DeepConvNet pretrained on MNIST (3 epochs) -> 500 images of Fashion-MNIST and digits, "
                "30 epochs, 5 seeds",
                {
                    "model": "deep-convnet",
                    "pretrain_epochs": 3,
                    "targets": ["fashion-mnist", "digits"],
                    "subset": 500,
                    "epochs": 30,
                    "batch_size": 50,
                    "lr": 0.001,
                    "seeds": [0, 1, 2, 3, 4],
                },
                data=("mnist", "fashion-mnist"),
            ),
        },  # fmt: skip
        run=run_transfer,
        benchmark="benchmarks/transfer.py",
        reusable=True,
    )
)
