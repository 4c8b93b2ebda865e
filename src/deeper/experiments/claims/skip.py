"""Skip connections (8.2.4, ResNet): without them a deeper plain network trains worse, with them it does not."""

from __future__ import annotations

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import count_params, data_split, evaluate_on, seeded, subset, train_classifier


def cifar_net(depth: int, residual: bool, *, widths, in_chans: int, num_classes: int, img_size: int):
    """The CIFAR ResNet of ``depth`` = 6n + 2 layers (``resnet20``, ``plain56``, ...) at ``widths``."""
    from deeper.models.resnet import ResNet

    n = (depth - 2) // 6
    return ResNet(block="basic", layers=(n, n, n), widths=tuple(widths), stem="cifar",
                  shortcut="A" if residual else "none", num_classes=num_classes, in_chans=in_chans,
                  img_size=img_size)  # fmt: skip


def run_skip(ctx: Context) -> Outcome:
    p = ctx.params
    train, test = data_split(ctx)
    probe = subset(train, p["train_probe"], seed=1)  # training images scored after each epoch
    c, h, _ = train.image_shape
    shallow, deep = p["depths"]
    nets = {f"{'resnet' if r else 'plain'}{d}": (d, r) for r in (False, True) for d in (shallow, deep)}
    params, runs = {}, {k: [] for k in nets}
    for seed in p["seeds"]:
        for name, (d, r) in nets.items():
            model = seeded(seed, lambda d=d, r=r: cifar_net(d, r, widths=p["widths"], in_chans=c,
                                                            num_classes=train.num_classes, img_size=h))  # fmt: skip
            params[name] = count_params(model)
            res = train_classifier(model, train, epochs=p["epochs"], batch_size=p["batch_size"], optimizer="momentum",
                                   lr=p["lr"], schedule="cosine", weight_decay=p["weight_decay"], seed=seed,
                                   device=ctx.torch_device(), track={"train": probe})  # fmt: skip
            final = evaluate_on(model, test, device=ctx.torch_device())
            runs[name].append({
                "train_loss": res["history"][-1]["train_loss"], "train_error": 1 - res["history"][-1]["train_accuracy"],
                "test_error": 1 - final["accuracy"], "curve": [1 - row["train_accuracy"] for row in res["history"]],
                "seconds": res["train_seconds"],
            })  # fmt: skip
            ctx.log(f"  {name} seed {seed}: train loss {runs[name][-1]['train_loss']:.4f}, "
                    f"test error {runs[name][-1]['test_error']:.4f} ({res['train_seconds']:.0f} s)")  # fmt: skip
    loss = {k: [r["train_loss"] for r in v] for k, v in runs.items()}
    P, R = f"plain{shallow}", f"resnet{shallow}"
    PD, RD = f"plain{deep}", f"resnet{deep}"
    degrade = stats.paired(
        loss[P],
        loss[PD],
        claim="greater",
        labels=(P, PD),
        what=f"degradation: the {deep}-layer plain net ends with a higher training loss than the {shallow}-layer one",
    )
    fixed = stats.paired(
        loss[PD],
        loss[RD],
        claim="less",
        labels=(PD, RD),
        what=f"skip connections: the {deep}-layer ResNet ends with a lower training loss than the plain one",
    )
    # "no worse" for a loss (lower is better): the negated losses, no lower by more than delta
    deeper_ok = stats.paired([-v for v in loss[R]], [-v for v in loss[RD]], claim="noninferior", delta=p["delta"],
                             labels=(R, RD), what=f"with skip connections depth does not hurt: the {deep}-layer ResNet's "
                             f"training loss is no higher than the {shallow}-layer one's by more than {p['delta']:g} "
                             "(negated losses)")  # fmt: skip
    tests = [degrade, fixed, deeper_ok]
    if degrade["verdict"] == stats.SUPPORTED:
        verdict = stats.combine([fixed, deeper_ok])
        rule = "degradation shown, then all of: the deep ResNet beats the deep plain net, and is no worse than the shallow ResNet"
    else:
        verdict = stats.INCONCLUSIVE
        rule = ("the claim needs the degradation first (the deep plain net training worse than the shallow one); "
                "without it there is nothing for the skip connections to fix, whatever the other tests say")  # fmt: skip
    fig, (ax1, ax2) = F.new(2, width=5.2)
    epochs = range(1, p["epochs"] + 1)
    for name, (d, r) in nets.items():
        F.band(ax1, epochs, [x["curve"] for x in runs[name]], label=name, color=F.COLORS[0 if r else 3],
               style="-" if d == deep else "--")  # fmt: skip
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training error (eval mode)")
    ax1.legend()
    F.bars(
        ax2,
        {k: [x["test_error"] for x in v] for k, v in runs.items()},
        ylabel="test error",
        annotate="{:.4f}",
    )
    F.save(
        fig,
        ctx.figure("skip"),
        f"plain vs residual networks ({p['data']}, {p['epochs']} epochs, {len(p['seeds'])} seeds)",
    )
    m = {k: stats.mean_sd(v)[0] for k, v in loss.items()}
    because = (f"Final training loss: {P} {m[P]:.4f}, {PD} {m[PD]:.4f}, {R} {m[R]:.4f}, {RD} {m[RD]:.4f} "
               f"(degradation {degrade['verdict']}, p = {degrade['p_greater'] if degrade['p_greater'] is not None else float('nan'):.3g}; "
               f"{RD} below {PD}: {fixed['verdict']}).")  # fmt: skip
    return Outcome(
        verdict, because, tests,
        numbers={**{f"train_loss_{k}": v for k, v in m.items()},
                 **{f"test_error_{k}": stats.mean_sd([x["test_error"] for x in v])[0] for k, v in runs.items()},
                 **{f"params_{k}": v for k, v in params.items()}},
        figures=[("skip.png", "Training error after each epoch (eval mode, on training images; solid: deep, dashed: "
                  "shallow; blue: ResNet, red: plain) and the final test error.")],
        data={"runs": runs, "params": params}, rule=rule,
    )  # fmt: skip


register(
    Experiment(
        name="skip-connections",
        title="Skip connections fix the degradation of deep plain networks",
        claim="Past some depth a plain network trains worse, not better (degradation); ResNet's skip connections "
        "let the gradient through unchanged, and the deeper residual network trains as well or better.",
        sources=(
            Source("003", "8.2.4 ResNet"),
            Source("004", "Modern CNN, 4. ResNet"),
            Source("001", "ResNet"),
        ),
        method="The CIFAR ResNets of the paper (3 stages of n basic blocks, batch norm) and the same networks without "
        "their skip connections (`plainN`), shallow and deep, trained properly (momentum SGD, cosine schedule, "
        "several epochs, not 80 steps) with the same seeds. Paired t-tests over seeds on the final training loss: "
        "the deep plain net worse than the shallow one (degradation), the deep ResNet better than the deep plain net, "
        "and no worse than the shallow ResNet.",
        profiles={
            "quick": Profile(
                "digits at 14x14, depth 8 vs 20, narrow (8-16-32), 3 epochs, 2 seeds",
                {
                    "data": "digits",
                    "img_size": 14,
                    "depths": [8, 20],
                    "widths": [8, 16, 32],
                    "epochs": 3,
                    "batch_size": 64,
                    "lr": 0.05,
                    "weight_decay": 1e-4,
                    "train_probe": 500,
                    "seeds": [0, 1],
                    "delta": 0.02,
                },
            ),
            "full": Profile(
                "MNIST at 14x14, 4,000 training images, plain/ResNet 20 vs 56 (16-32-64), 5 epochs of batch 64 "
                "(315 steps), 3 seeds",
                {
                    "data": "mnist",
                    "img_size": 14,
                    "train_images": 4000,
                    "depths": [20, 56],
                    "widths": [16, 32, 64],
                    "epochs": 5,
                    "batch_size": 64,
                    "lr": 0.05,
                    "weight_decay": 1e-4,
                    "train_probe": 1000,
                    "seeds": [0, 1, 2],
                    "delta": 0.01,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_skip,
    )
)
