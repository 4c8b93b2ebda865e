"""Ensembles (8.1.2, 004): bagging and boosting; ensembles, augmentation and learning-rate decay raise accuracy."""

from __future__ import annotations

import torch

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import data_split, mlp, seeded, stage_net, train_classifier
from deeper.experiments.results import benchmark_result


@torch.inference_mode()
def probabilities(model, ds) -> torch.Tensor:
    """Softmax probabilities ``(N, K)`` of ``model`` (eval mode) on ``ds``."""
    from deeper.data import BatchLoader

    model.eval()
    return torch.cat([torch.softmax(model(x).float(), 1) for x, _ in BatchLoader(ds, 1000)])


def _learner(kind: str, ds):
    c, h, _ = ds.image_shape
    k = ds.num_classes
    if kind == "weak":  # a linear softmax classifier: high bias, low variance
        return lambda: mlp([], in_features=c * h * h, num_classes=k)
    return lambda: stage_net([[3], [3]], [8, 16], in_chans=c, num_classes=k, img_size=h)  # a small CNN


# ----------------------------------------------------------------------------- bagging, boosting


def _ensembles(kind: str, train, test, p, seed) -> dict:
    """One bagging and one boosting ensemble of ``p['members']`` learners of ``kind``; their accuracies."""
    from deeper.data.resample import bootstrap_resample, weighted_resample
    from deeper.train.boost import samme_step, weighted_vote

    build = _learner(kind, train)
    recipe = {
        "epochs": p["epochs"][kind],
        "batch_size": p["batch_size"],
        "optimizer": "adam",
        "lr": p["lr"][kind],
    }
    y = test.labels
    # bagging: each member on a bootstrap resample, probabilities averaged
    bag = []
    for m in range(p["members"]):
        s = seed * 1000 + m
        model = seeded(s, build)
        train_classifier(model, bootstrap_resample(train, seed=s), seed=s, **recipe)
        bag.append(probabilities(model, test))
    # boosting (SAMME by resampling): member 0 on the training set itself, then on weighted resamples
    weights = torch.full((len(train),), 1.0 / len(train), dtype=torch.float64)
    boost, alphas, single = [], [], None
    for m in range(p["members"]):
        s = seed * 1000 + m
        model = seeded(s, build)
        train_classifier(
            model, train if m == 0 else weighted_resample(train, weights, seed=s), seed=s, **recipe
        )
        wrong = probabilities(model, train).argmax(1) != train.labels
        step = samme_step(weights, wrong, train.num_classes)
        boost.append(probabilities(model, test))
        alphas.append(step.alpha)
        if m == 0:
            single = float((boost[0].argmax(1) == y).float().mean())
        weights = step.weights
        if step.stop:
            break
    acc = lambda pr: float((pr.argmax(1) == y).float().mean())  # noqa: E731
    return {
        "single": single,
        "bagging_members": [acc(pr) for pr in bag],
        "bagging": acc(torch.stack(bag).mean(0)),
        "boosting_members": [acc(pr) for pr in boost],
        "boosting": float((weighted_vote(torch.stack(boost), torch.tensor(alphas)) == y).float().mean()),
        "alphas": alphas,
    }


def run_bagging(ctx: Context) -> Outcome:
    p = ctx.params
    if ctx.reuse:
        return _bagging_from_benchmark(ctx)
    train, test = data_split(ctx)
    runs = {"weak": [], "strong": []}
    for seed in p["seeds"]:
        for kind in runs:
            runs[kind].append(_ensembles(kind, train, test, p, seed))
            r = runs[kind][-1]
            ctx.log(
                f"  {kind} seed {seed}: single {r['single']:.4f}, bagging {r['bagging']:.4f}, boosting {r['boosting']:.4f}"
            )
    col = lambda kind, key: [r[key] for r in runs[kind]]  # noqa: E731
    gain = lambda kind, key: [r[key] - r["single"] for r in runs[kind]]  # noqa: E731
    tests = [
        stats.paired(col("weak", "single"), col("weak", "bagging"), claim="greater", labels=("single", "bagging"),
                     what="weak learner (linear): the bagging ensemble beats a single model"),
        stats.paired(col("weak", "single"), col("weak", "boosting"), claim="greater", labels=("single", "boosting"),
                     what="weak learner (linear): the boosting ensemble beats a single model"),
        stats.paired(gain("weak", "bagging"), gain("weak", "boosting"), claim="greater", labels=("bagging", "boosting"),
                     what="weak learner: boosting gains more than bagging (it lowers the bias)"),
        stats.paired(col("strong", "single"), col("strong", "bagging"), claim="greater", labels=("single", "bagging"),
                     what="strong learner (CNN): the bagging ensemble beats a single model (it lowers the variance)"),
    ]  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=5)
    for ax, kind in ((ax1, "weak"), (ax2, "strong")):
        F.bars(ax, {"single": col(kind, "single"), "bagging\nmembers": [sum(r["bagging_members"]) / len(r["bagging_members"]) for r in runs[kind]],
                    "bagging": col(kind, "bagging"), "boosting": col(kind, "boosting")}, ylabel="test accuracy", annotate="{:.3f}")  # fmt: skip
        lo = min(min(r["bagging_members"] + [r["single"], r["boosting"]]) for r in runs[kind])
        ax.set_ylim(max(0, lo - 0.03), 1.0)
        ax.set_title(
            f"{kind} learner ({'linear softmax' if kind == 'weak' else 'small CNN'}), {p['members']} members"
        )
    F.save(fig, ctx.figure("bagging_boosting"), f"bagging vs boosting ({p['data']}, {len(p['seeds'])} seeds)")
    m = {(k, key): stats.mean_sd(col(k, key))[0] for k in runs for key in ("single", "bagging", "boosting")}
    return Outcome(
        stats.combine(tests),
        f"Linear learner: single {m['weak', 'single']:.4f}, bagging {m['weak', 'bagging']:.4f}, boosting "
        f"{m['weak', 'boosting']:.4f}; CNN: single {m['strong', 'single']:.4f}, bagging {m['strong', 'bagging']:.4f}, "
        f"boosting {m['strong', 'boosting']:.4f}.",
        tests,
        numbers={f"{k}_{key}": v for (k, key), v in m.items()},
        figures=[("bagging_boosting.png", "Test accuracy of a single model, the mean bagging member, the bagging "
                  "ensemble (mean of probabilities) and the boosting ensemble (SAMME weighted vote), for a weak and a "
                  "strong learner.")],
        data=runs, rule="all parts",
    )  # fmt: skip


def _bagging_from_benchmark(ctx: Context) -> Outcome:
    doc, path = benchmark_result("resampling")
    tests, rows = [], {}
    for r in doc["results"]:
        members = [float(m) for m in r["members"]]
        rows[r["config"]] = {"members": members, "ensemble": r["ensemble_mean"], "vote": r.get("boost_vote")}
        tests.append(stats.one_sample(members, r["ensemble_mean"], claim="less",
                                      what=f"{r['config']}: the members score below their ensemble (mean of probabilities)"))  # fmt: skip
    fig, (ax,) = F.new(1, width=6, height=4)
    for i, r in enumerate(rows.values()):
        ax.plot([i] * len(r["members"]), r["members"], "k.", markersize=6)
        ax.plot(
            [i], [r["ensemble"]], "s", color=F.COLORS[0], markersize=9, label="ensemble" if i == 0 else None
        )
        if r["vote"]:
            ax.plot(
                [i],
                [r["vote"]],
                "^",
                color=F.COLORS[3],
                markersize=9,
                label="boosted vote" if i == 0 else None,
            )
    ax.set_xticks(range(len(rows)), list(rows), rotation=15)
    ax.set_ylabel("test accuracy")
    ax.legend()
    F.save(
        fig,
        ctx.figure("bagging_boosting"),
        f"DeepConvNet ensembles on {doc['data']} (benchmarks/resampling.py)",
    )
    return Outcome(
        stats.combine(tests, "majority"),
        "; ".join(f"{k}: members {stats.mean_sd(r['members'])[0]:.4f}, ensemble {r['ensemble']:.4f}" for k, r in rows.items()) + ".",
        tests, numbers={f"{k}_ensemble": r["ensemble"] for k, r in rows.items()},
        figures=[("bagging_boosting.png", "Members (dots) and their ensembles, DeepConvNet on MNIST, 4 members each.")],
        data=rows, evidence=[path],
        notes=[f"Measured by benchmarks/resampling.py on {doc['machine']} (torch {doc.get('torch', '?')}); strong learners "
               "only, so the weak-learner parts of the claim are not tested by these results."],
        rule="the majority of the configurations: the ensemble beats its members",
    )  # fmt: skip


register(
    Experiment(
        name="bagging-vs-boosting",
        title="Bagging and boosting",
        claim="Bagging (models trained on bootstrap resamples, averaged) and boosting (each new model trained with more "
        "weight on what the previous ones got wrong, combined by weighted vote) both make an ensemble better than a "
        "single model; boosting lowers the bias of a weak learner more, bagging the variance of an unstable one.",
        sources=(Source("004", "Optimization: bagging vs boosting, bootstrapping"),),
        method="A weak learner (a linear softmax classifier) and a strong one (a small CNN); for each seed one "
        "bagging ensemble (bootstrap resamples, mean of probabilities: deeper.data.resample) and one boosting "
        "ensemble (SAMME by resampling, weighted vote: deeper.train.boost) of the same size. Paired t-tests over "
        "seeds against a single model trained on the whole training set.",
        profiles={
            "quick": Profile(
                "digits at 14x14, 3 members, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "members": 3,
                    "seeds": [0, 1],
                    "batch_size": 32,
                    "epochs": {"weak": 3, "strong": 2},
                    "lr": {"weak": 0.01, "strong": 0.005},
                },
            ),
            "full": Profile(
                "MNIST, 5,000 training images, 8 members, 4 seeds",
                {
                    "data": "mnist",
                    "train_images": 5000,
                    "members": 8,
                    "seeds": [0, 1, 2, 3],
                    "batch_size": 64,
                    "epochs": {"weak": 5, "strong": 5},
                    "lr": {"weak": 0.01, "strong": 0.003},
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_bagging,
        benchmark="benchmarks/resampling.py",
        reusable=True,
    )
)


# -------------------------------------------------------------- ensembles, augmentation, decay


def run_tricks(ctx: Context) -> Outcome:
    from deeper.data.augment import Augment, parse_augment
    from deeper.train.regularize import TrainTransform

    p = ctx.params
    if ctx.reuse:
        return _tricks_from_benchmark(ctx)
    train, test = data_split(ctx)
    c, h, _ = train.image_shape
    build = lambda: stage_net([[3, 3], [3, 3]], [p["width"], 2 * p["width"]], in_chans=c,  # noqa: E731
                              num_classes=train.num_classes, img_size=h)  # fmt: skip
    configs = {
        "baseline": {},
        "augmentation": {"augment": p["augment"]},
        "lr decay": {"schedule": p["schedule"]},
    }
    acc, probs = {k: [] for k in configs}, []
    for seed in p["seeds"]:
        for name, cfg in configs.items():
            model = seeded(seed, build)
            t = (
                TrainTransform(Augment(parse_augment(cfg["augment"])), seed=seed)
                if "augment" in cfg
                else None
            )
            train_classifier(model, train, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="adam", lr=p["lr"],
                             schedule=cfg.get("schedule", "constant"), transform=t, seed=seed)  # fmt: skip
            pr = probabilities(model, test)
            acc[name].append(float((pr.argmax(1) == test.labels).float().mean()))
            if name == "baseline":
                probs.append(pr)
        ctx.log(f"  seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in acc.items()))
    ens = float((torch.stack(probs).mean(0).argmax(1) == test.labels).float().mean())
    tests = [
        stats.one_sample(acc["baseline"], ens, claim="less",
                         what=f"ensemble: the {len(probs)} baseline models score below their ensemble (mean of probabilities)"),
        stats.paired(acc["baseline"], acc["augmentation"], claim="greater", labels=("baseline", "augmentation"),
                     what=f"data augmentation ({p['augment']}) raises test accuracy"),
        stats.paired(acc["baseline"], acc["lr decay"], claim="greater", labels=("baseline", "lr decay"),
                     what=f"learning-rate decay ({p['schedule']} instead of constant) raises test accuracy"),
    ]  # fmt: skip
    fig, (ax,) = F.new(1, width=6, height=4)
    F.bars(ax, {**acc, "ensemble of\nthe baselines": [ens]}, ylabel="test accuracy", annotate="{:.4f}")
    lo = min(min(v) for v in acc.values())
    ax.set_ylim(max(0, lo - 0.02), min(1.0, max(ens, max(max(v) for v in acc.values())) + 0.01))
    F.save(
        fig,
        ctx.figure("tricks"),
        f"ensembles, augmentation and learning-rate decay ({p['data']}, {p['epochs']} epochs)",
    )
    return Outcome(
        stats.combine(tests),
        f"Baseline {stats.mean_sd(acc['baseline'])[0]:.4f}; ensemble of its {len(probs)} seeds {ens:.4f}; augmentation "
        f"{stats.mean_sd(acc['augmentation'])[0]:.4f}; lr decay {stats.mean_sd(acc['lr decay'])[0]:.4f}.",
        tests,
        numbers={"ensemble": ens, **{k: stats.mean_sd(v)[0] for k, v in acc.items()}},
        figures=[("tricks.png", "Test accuracy of each trick alone against the baseline (dots: seeds), and of the "
                  "ensemble of the baseline seeds.")],
        data={"accuracy": acc, "ensemble": ens}, rule="all parts: each trick raises accuracy",
    )  # fmt: skip


def _tricks_from_benchmark(ctx: Context) -> Outcome:
    doc, path = benchmark_result("ablation")
    cfg = {c["name"]: c for c in doc["configs"]}
    base = cfg["baseline"]["member_test_accuracy"]
    ens_tests = [stats.one_sample(c["member_test_accuracy"], c["ensemble_test_accuracy"], claim="less",
                                  what=f"ensemble ({name}): the members score below their ensemble")
                 for name, c in cfg.items()]  # fmt: skip
    tests = ens_tests + [
        stats.paired(base, cfg["+augmentation"]["member_test_accuracy"], claim="greater", labels=("baseline", "augmentation"),
                     what="augmentation raises test accuracy (the same member seeds)"),
        stats.paired(base, cfg["+schedule"]["member_test_accuracy"], claim="greater", labels=("baseline", "lr decay"),
                     what="learning-rate decay (one-cycle) raises test accuracy (the same member seeds)"),
    ]  # fmt: skip
    verdict = stats.combine([{"verdict": stats.combine(ens_tests)}, *tests[len(ens_tests) :]])
    fig, (ax,) = F.new(1, width=6.5, height=4)
    F.bars(
        ax, {n: c["member_test_accuracy"] for n, c in cfg.items()}, ylabel="test accuracy", annotate="{:.4f}"
    )
    for i, c in enumerate(cfg.values()):
        ax.plot(
            [i],
            [c["ensemble_test_accuracy"]],
            "s",
            color="k",
            markersize=7,
            label="ensemble" if i == 0 else None,
        )
    ax.set_ylim(min(min(c["member_test_accuracy"]) for c in cfg.values()) - 0.003, 1.0)
    ax.legend()
    F.save(
        fig,
        ctx.figure("tricks"),
        f"DeepConvNet, {doc['epochs']} epochs on {doc['data']} (benchmarks/ablation.py)",
    )
    return Outcome(
        verdict,
        "; ".join(f"{n}: members {c['single_mean']:.4f}, ensemble {c['ensemble_test_accuracy']:.4f}" for n, c in cfg.items()) + ".",
        tests,
        numbers={**{f"{n}_members": c["single_mean"] for n, c in cfg.items()},
                 **{f"{n}_ensemble": c["ensemble_test_accuracy"] for n, c in cfg.items()}},
        figures=[("tricks.png", "Members (bars: mean and sd; dots) and ensembles (squares) of each configuration.")],
        data={n: {k: c[k] for k in ("options", "member_test_accuracy", "ensemble_test_accuracy")} for n, c in cfg.items()},
        evidence=[path],
        notes=[f"Measured by benchmarks/ablation.py: {doc['machine']}.",
               "The schedule configuration also raises the peak learning rate (Adam 0.001 constant -> one-cycle to 0.004)."],
        rule="all parts: ensembles beat their members (every configuration), and each trick raises the members' accuracy",
    )  # fmt: skip


register(
    Experiment(
        name="accuracy-tricks",
        title="Ensembles, augmentation and learning-rate decay each raise accuracy",
        claim="The top MNIST methods show how to push accuracy further: ensemble learning, learning-rate decay and "
        "data augmentation each raise it.",
        sources=(
            Source("003", "8.1.2 정확도를 높이려면? (to raise accuracy), figures 8-3 and 8-4"),
            Source("002", "8.1.2 정확도를 더 높이려면"),
            Source("004", "Regularization: Data Augmentation"),
        ),  # fmt: skip
        method="One CNN trained with the same seeds as a baseline (Adam, constant learning rate), with data "
        "augmentation alone (deeper's batched augmentation), and with learning-rate decay alone; the ensemble of the "
        "baseline seeds (mean of probabilities). Paired t-tests over seeds for the two tricks; for the ensemble a "
        "one-sample t-test of its members against its accuracy. With `--reuse`, benchmarks/ablation.py's members.",
        profiles={
            "quick": Profile(
                "digits at 14x14, small CNN, 3 epochs, 3 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "width": 6,
                    "epochs": 3,
                    "batch_size": 32,
                    "lr": 0.004,
                    "augment": "rotate=10,translate=0.08",
                    "schedule": "cosine",
                    "seeds": [0, 1, 2],
                },
            ),
            "full": Profile(
                "MNIST, 8,000 training images, CNN 16-32, 6 epochs, 5 seeds",
                {
                    "data": "mnist",
                    "train_images": 8000,
                    "width": 16,
                    "epochs": 6,
                    "batch_size": 64,
                    "lr": 0.002,
                    "augment": "rotate=10,scale=0.1,translate=0.08",
                    "schedule": "cosine",
                    "seeds": [0, 1, 2, 3, 4],
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_tricks,
        benchmark="benchmarks/ablation.py",
        reusable=True,
    )
)
