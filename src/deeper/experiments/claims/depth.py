"""Why go deeper (8.1.3): small filters stacked, fewer parameters for the same accuracy, less data."""

from __future__ import annotations

import math

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import (
    count_params,
    data_split,
    evaluate_on,
    seeded,
    stage_net,
    subset,
    train_classifier,
)

WHY_DEEPER = (
    Source("003", "8.1.3 깊게 하는 이유 (why go deeper), points 1-2"),
    Source("000", "층을 깊게 할 때의 이점 (the advantages of deeper layers) 1-2"),
    Source("002", "8.1.3 깊게 하는 이유"),
)


def _train_eval(build, train, test, p, seed, ctx, *, curve: bool = True) -> dict:
    """Train ``build()`` with the profile's recipe; its test accuracy (after each epoch too when ``curve``)."""
    model = seeded(seed, build)
    r = train_classifier(model, train, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="adam",
                         lr=p["lr"], seed=seed, device=ctx.torch_device(), track={"test": test} if curve else None)  # fmt: skip
    final = evaluate_on(model, test, device=ctx.torch_device())
    return {"test_accuracy": final["accuracy"], "curve": [row["test_accuracy"] for row in r["history"]] if curve else [],
            "train_seconds": r["train_seconds"], "params": count_params(model)}  # fmt: skip


# --------------------------------------------------------------------------------- 3x3 vs 5x5


def _stacks(width: int, in_chans: int, num_classes: int, size: int) -> dict:
    """Two networks alike but for each 5x5 convolution, which the second replaces with two 3x3 ones."""
    common = {"in_chans": in_chans, "num_classes": num_classes, "img_size": size}
    return {
        "one 5x5": lambda: stage_net([[3, 5], [5]], [width, width], **common),
        "two 3x3": lambda: stage_net([[3, 3, 3], [3, 3]], [width, width], **common),
    }


def run_conv3x3(ctx: Context) -> Outcome:
    from deeper.analysis.summary import summarize

    p = ctx.params
    train, test = data_split(ctx)
    c, h, _ = train.image_shape
    builds = _stacks(p["width"], c, train.num_classes, h)
    shapes = {}
    for name, build in builds.items():
        s = summarize(build(), (c, h, h))
        convs = [r for r in s.rows if r.type == "Conv2d"]
        shapes[name] = {"params": s.total_params, "conv_params": sum(r.params for r in convs),
                        "receptive_field": convs[-1].receptive_field, "macs": s.total_macs}  # fmt: skip
    runs = {name: [] for name in builds}
    for seed in p["seeds"]:
        for name, build in builds.items():
            runs[name].append(_train_eval(build, train, test, p, seed, ctx))
            ctx.log(f"  {name} seed {seed}: {runs[name][-1]['test_accuracy']:.4f}")
    a, b = ([r["test_accuracy"] for r in runs[k]] for k in builds)
    five, three = shapes["one 5x5"], shapes["two 3x3"]
    tests = [
        stats.exact("the last convolution of each network sees the same square of the input",
                    five["receptive_field"] == three["receptive_field"],
                    five_by_five=five["receptive_field"], three_by_three=three["receptive_field"]),
        stats.exact("the 3x3 network has fewer convolution weights", three["conv_params"] < five["conv_params"],
                    five_by_five=five["conv_params"], three_by_three=three["conv_params"],
                    ratio=three["conv_params"] / five["conv_params"]),
        stats.paired(a, b, claim="noninferior", delta=p["delta"], labels=("one 5x5", "two 3x3"),
                     what=f"test accuracy of the 3x3 network is no worse than the 5x5 one's by more than {p['delta']:g}"),
    ]  # fmt: skip
    verdict = stats.combine(tests)
    fig, (ax1, ax2, ax3) = F.new(3, width=4.2)
    F.bars(
        ax1,
        {k: [v["conv_params"]] for k, v in shapes.items()},
        ylabel="convolution weights",
        annotate="{:,.0f}",
    )
    ax1.set_title(f"receptive field {five['receptive_field']} px both")
    F.paired_lines(ax2, {"one 5x5": a, "two 3x3": b}, ylabel="test accuracy")
    ax2.set_title(f"{len(a)} seeds")
    for name in builds:
        F.band(ax3, range(1, p["epochs"] + 1), [r["curve"] for r in runs[name]], label=name)
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("test accuracy")
    ax3.legend()
    F.save(fig, ctx.figure("conv3x3"), f"one 5x5 vs two 3x3 convolutions ({p['data']}, width {p['width']})")
    d = tests[2]
    return Outcome(
        verdict,
        f"Two 3x3 convolutions see the same {five['receptive_field']}-pixel field with "
        f"{three['conv_params']:,} instead of {five['conv_params']:,} convolution weights "
        f"({three['conv_params'] / five['conv_params']:.0%}); test accuracy {d['mean_b']:.4f} vs {d['mean_a']:.4f} "
        f"(difference {d['mean_diff']:+.4f}, one-sided 95% bounds {d['ci'][0]:+.4f} .. {d['ci'][1]:+.4f}, margin {p['delta']:g}).",
        tests,
        numbers={"receptive_field": five["receptive_field"], "conv_params_5x5": five["conv_params"],
                 "conv_params_3x3": three["conv_params"], "test_accuracy_5x5": d["mean_a"],
                 "test_accuracy_3x3": d["mean_b"], "seeds": len(a)},
        figures=[("conv3x3.png", "Weights, per-seed test accuracy and test accuracy per epoch (mean and one sd).")],
        data={"shapes": shapes, "runs": runs},
        rule="all parts: same receptive field, fewer weights, accuracy no worse than the margin",
    )  # fmt: skip


register(
    Experiment(
        name="conv3x3-vs-5x5",
        title="Two 3x3 convolutions instead of one 5x5",
        claim="Two stacked 3x3 convolutions see what one 5x5 convolution sees with fewer weights "
        "(18 instead of 25 per channel pair), and train as well or better.",
        sources=WHY_DEEPER,
        method="Two CNNs alike but for each 5x5 convolution (width to width), which the second replaces by two "
        "3x3 convolutions with a ReLU between. `deeper summary`'s arithmetic gives the receptive field and the "
        "weights; both train with the same recipe on the same seeds; the accuracy claim is a non-inferiority "
        "test (paired t-test over seeds, margin `delta`).",
        profiles={
            "quick": Profile(
                "digits at 14x14, width 8, 3 epochs, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "width": 8,
                    "epochs": 3,
                    "batch_size": 32,
                    "lr": 0.003,
                    "seeds": [0, 1],
                    "delta": 0.01,
                },
            ),
            "full": Profile(
                "MNIST at 14x14, 6,000 training images, width 16, 4 epochs, 5 seeds",
                {
                    "data": "mnist",
                    "img_size": 14,
                    "train_images": 6000,
                    "width": 16,
                    "epochs": 4,
                    "batch_size": 64,
                    "lr": 0.002,
                    "seeds": [0, 1, 2, 3, 4],
                    "delta": 0.005,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_conv3x3,
    )
)


# ------------------------------------------------------------------- fewer parameters when deeper

#: conv layers per stage (two stages, each ending in a 2x2 max pool) of each depth
DEPTHS = {1: [[3], []], 2: [[3], [3]], 4: [[3, 3], [3, 3]], 6: [[3, 3, 3], [3, 3, 3]]}


def depth_net(depth: int, width: int, *, in_chans: int = 1, num_classes: int = 10, img_size: int = 28):
    """``depth`` 3x3 convolutions of ``width`` channels in two pooled stages, then a linear classifier."""
    return stage_net(
        DEPTHS[depth], [width, width], in_chans=in_chans, num_classes=num_classes, img_size=img_size
    )


def run_depth_params(ctx: Context) -> Outcome:
    p = ctx.params
    train, test = data_split(ctx)
    c, h, _ = train.image_shape
    k = train.num_classes
    grid = [(d, w) for d in p["depths"] for w in p["widths"]]
    params = {(d, w): count_params(depth_net(d, w, in_chans=c, num_classes=k, img_size=h)) for d, w in grid}
    shallow = min(p["depths"])
    ref = (shallow, max(p["widths"]))  # the widest shallow network
    # declared before any training: the deeper network with the most parameters below the reference's (the
    # deepest on a tie), else the deepest narrowest one
    fewer = [(d, w) for d, w in grid if d > shallow and params[(d, w)] < params[ref]]
    pick = max(fewer, key=lambda dw: (params[dw], dw[0])) if fewer else (max(p["depths"]), min(p["widths"]))
    deep = pick[0]
    runs: dict[str, list[dict]] = {}
    for seed in p["seeds"]:
        for d, w in grid:
            r = _train_eval(lambda d=d, w=w: depth_net(d, w, in_chans=c, num_classes=k, img_size=h),
                            train, test, p, seed, ctx, curve=False)  # fmt: skip
            runs.setdefault(f"{d}x{w}", []).append(r)
        ctx.log(
            f"  seed {seed}: " + ", ".join(f"{key} {v[-1]['test_accuracy']:.3f}" for key, v in runs.items())
        )
    acc = {key: [r["test_accuracy"] for r in v] for key, v in runs.items()}
    a, b = acc[f"{ref[0]}x{ref[1]}"], acc[f"{pick[0]}x{pick[1]}"]
    tests = [
        stats.exact(f"the {deep}-layer network has fewer parameters than the widest {shallow}-layer one",
                    params[pick] < params[ref], shallow=params[ref], deep=params[pick]),
        stats.paired(a, b, claim="noninferior", delta=p["delta"],
                     labels=(f"{shallow} layer(s), width {ref[1]}", f"{deep} layers, width {pick[1]}"),
                     what=f"the deep network's test accuracy is no worse than the shallow one's by more than {p['delta']:g}"),
    ]  # fmt: skip
    verdict = stats.combine(tests)
    fig, (ax,) = F.new(1, width=6.5, height=4.2)
    for i, d in enumerate(p["depths"]):
        xs = [params[(d, w)] for w in p["widths"]]
        F.band(ax, xs, list(zip(*[acc[f"{d}x{w}"] for w in p["widths"]])), label=f"{d} conv layer{'s' if d > 1 else ''}",
               color=F.COLORS[i])  # fmt: skip
    ax.set_xscale("log")
    ax.axvline(params[ref], color="0.6", ls=":")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.legend()
    F.save(
        fig,
        ctx.figure("depth_params"),
        f"accuracy against parameters, by depth ({p['data']}, widths {p['widths']})",
    )
    t = tests[1]
    return Outcome(
        verdict,
        f"The {deep}-layer network of width {pick[1]} ({params[pick]:,} parameters) reaches {t['mean_b']:.4f} "
        f"against {t['mean_a']:.4f} for the {shallow}-layer network of width {ref[1]} ({params[ref]:,} parameters): "
        f"difference {t['mean_diff']:+.4f}, one-sided 95% bounds {t['ci'][0]:+.4f} .. {t['ci'][1]:+.4f} (margin {p['delta']:g}).",
        tests,
        numbers={"shallow_params": params[ref], "deep_params": params[pick], "shallow_accuracy": t["mean_a"],
                 "deep_accuracy": t["mean_b"], "seeds": len(a)},
        figures=[("depth_params.png", "Test accuracy against parameter count for each depth (mean and one sd over "
                  "seeds); the dotted line marks the widest shallow network.")],
        data={"params": {f"{d}x{w}": v for (d, w), v in params.items()}, "runs": runs,
              "compared": [f"{ref[0]}x{ref[1]}", f"{pick[0]}x{pick[1]}"]},
        rule="all parts: fewer parameters (by construction) and accuracy no worse than the margin",
    )  # fmt: skip


register(
    Experiment(
        name="depth-fewer-params",
        title="Deeper networks: the same accuracy with fewer parameters",
        claim="A deeper network reaches the same (or better) accuracy as a shallower one with fewer parameters.",
        sources=WHY_DEEPER,
        method="CNNs of 1 to 6 3x3 convolutions (two pooled stages, a linear classifier) at several widths, each "
        "trained with the same recipe. The widest shallow network is compared with the deeper network that has the "
        "most parameters below its count (the pair is fixed from the parameter counts before training): paired "
        "non-inferiority t-test over seeds.",
        profiles={
            "quick": Profile(
                "digits at 14x14, depths 1 and 4, widths 4 and 12, 3 epochs, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "depths": [1, 4],
                    "widths": [4, 12],
                    "epochs": 3,
                    "batch_size": 32,
                    "lr": 0.003,
                    "seeds": [0, 1],
                    "delta": 0.01,
                },
            ),
            "full": Profile(
                "MNIST at 14x14, 6,000 training images, depths 1/2/4, widths 4-32, 3 epochs, 3 seeds",
                {
                    "data": "mnist",
                    "img_size": 14,
                    "train_images": 6000,
                    "depths": [1, 2, 4],
                    "widths": [4, 8, 16, 32],
                    "epochs": 3,
                    "batch_size": 64,
                    "lr": 0.002,
                    "seeds": [0, 1, 2],
                    "delta": 0.005,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_depth_params,
    )
)


# --------------------------------------------------------------------------------- less data


def run_depth_data(ctx: Context) -> Outcome:
    p = ctx.params
    full_train, test = data_split(ctx)
    c, h, _ = full_train.image_shape
    k = full_train.num_classes
    models = {
        "shallow": lambda: depth_net(p["shallow"][0], p["shallow"][1], in_chans=c, num_classes=k, img_size=h),
        "deep": lambda: depth_net(p["deep"][0], p["deep"][1], in_chans=c, num_classes=k, img_size=h),
    }
    params = {name: count_params(b()) for name, b in models.items()}
    sizes = [n for n in p["sizes"] if n <= len(full_train)]
    runs: dict[str, dict[int, list[float]]] = {name: {n: [] for n in sizes} for name in models}
    for seed in p["seeds"]:
        for n in sizes:
            train = subset(full_train, n, seed=seed)
            epochs = max(
                1, math.ceil(p["steps"] * p["batch_size"] / n)
            )  # the same number of steps for every size
            for name, build in models.items():
                q = {**p, "epochs": epochs}
                runs[name][n].append(
                    _train_eval(build, train, test, q, seed, ctx, curve=False)["test_accuracy"]
                )
        ctx.log(
            f"  seed {seed}: "
            + ", ".join(f"n={n} {runs['shallow'][n][-1]:.3f}/{runs['deep'][n][-1]:.3f}" for n in sizes)
        )
    a = [v for n in sizes for v in runs["shallow"][n]]
    b = [v for n in sizes for v in runs["deep"][n]]
    small = [n for n in sizes if n <= p["small"]]
    a_small = [v for n in small for v in runs["shallow"][n]]
    b_small = [v for n in small for v in runs["deep"][n]]
    tests = [
        stats.paired(a_small, b_small, claim="greater", labels=("shallow", "deep"),
                     what=f"test accuracy of the deep network minus the shallow one, training sets of <= {p['small']} images "
                          "(pairs: size x seed)"),
        stats.paired(a, b, claim="greater", labels=("shallow", "deep"),
                     what="the same over every training-set size"),
    ]  # fmt: skip
    verdict = tests[0]["verdict"]
    fig, (ax,) = F.new(1, width=6, height=4.2)
    for i, name in enumerate(models):
        F.band(ax, sizes, list(zip(*[runs[name][n] for n in sizes])),
               label=f"{name}: {p[name][0]} conv, width {p[name][1]} ({params[name]:,} params)", color=F.COLORS[i])  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    F.save(fig, ctx.figure("depth_data"), f"learning curves ({p['data']}, {p['steps']} steps per run)")
    t = tests[0]
    return Outcome(
        verdict,
        f"On training sets of at most {p['small']} images the deep network ({params['deep']:,} parameters) scores "
        f"{t['mean_b']:.4f} against {t['mean_a']:.4f} for the shallow one ({params['shallow']:,}): difference "
        f"{t['mean_diff']:+.4f}, one-sided 95% bounds {t['ci'][0]:+.4f} .. {t['ci'][1]:+.4f}.",
        tests,
        numbers={"shallow_params": params["shallow"], "deep_params": params["deep"],
                 **{f"{name}_n{n}": stats.mean_sd(runs[name][n])[0] for name in models for n in sizes}},
        figures=[("depth_data.png", "Test accuracy against the number of training images (log scale), mean and one "
                  "sd over seeds; every run takes the same number of steps.")],
        data={"sizes": sizes, "params": params, "runs": {m: {str(n): v for n, v in r.items()} for m, r in runs.items()}},
        rule="the test on the small training sets decides; the one over all sizes is shown beside it",
    )  # fmt: skip


register(
    Experiment(
        name="depth-less-data",
        title="Deeper networks learn from less data",
        claim="Deeper networks learn more efficiently: each layer learns a simpler part of the problem, so they "
        "need less training data.",
        sources=WHY_DEEPER,
        method="A shallow CNN (one wide convolution) and a deep one (four narrow convolutions) of similar parameter "
        "counts, trained on random training subsets of growing size with the same number of steps. Paired t-test "
        "(pairs: subset size x seed) of the deep network's test accuracy over the shallow one's on the small sets.",
        profiles={
            "quick": Profile(
                "digits at 14x14, 100 to 1,000 images, 100 steps, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "shallow": [1, 16],
                    "deep": [4, 6],
                    "sizes": [100, 300, 1000],
                    "small": 300,
                    "steps": 100,
                    "batch_size": 32,
                    "lr": 0.003,
                    "seeds": [0, 1],
                },
            ),
            "full": Profile(
                "MNIST at 14x14, 100 to 3,000 images, 300 steps, 4 seeds",
                {
                    "data": "mnist",
                    "img_size": 14,
                    "shallow": [1, 32],
                    "deep": [4, 16],
                    "sizes": [100, 300, 1000, 3000],
                    "small": 1000,
                    "steps": 300,
                    "batch_size": 64,
                    "lr": 0.002,
                    "seeds": [0, 1, 2, 3],
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_depth_data,
    )
)
