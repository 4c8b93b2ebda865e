"""Fewer bits (8.3.4): 16-bit inference, int8 / 4-bit / 1-bit networks, and robustness to degraded inputs."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

import torch

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import evaluate_on, subset
from deeper.experiments.reference import reference_weights
from deeper.experiments.results import benchmark_result

FEWER_BITS = (
    Source("003", "8.3.4 연산 정밀도와 비트 줄이기 (numeric precision and fewer bits)"),
    Source("001", "연산 정밀도와 비트줄이기"),
    Source("002", "8.3.4 연산 정밀도와 비트 줄이기"),
)
QUICK_REFERENCE = {"model": "deep-convnet", "data": "digits", "epochs": 4, "seed": 0}
FULL_REFERENCE = {"model": "deep-convnet", "data": "mnist", "seed": 0}  # the fast recipe: 6 epochs


def _reference(ctx: Context):
    from deeper.models import model_from_weights

    weights, trained = reference_weights(ctx, ctx.params["reference"])
    model, meta = model_from_weights(weights)
    return weights, trained, model.eval()


# ------------------------------------------------------------------------------ 16-bit inference


def run_fp16(ctx: Context) -> Outcome:
    p = ctx.params
    weights, trained, model = _reference(ctx)
    test = subset(ctx.dataset(p["reference"]["data"], "test"), p.get("test_images"))
    dtypes = {
        "float64": torch.float64,
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    results = {}
    for name, dt in dtypes.items():
        m = copy.deepcopy(model).to(dtype=dt)  # each precision cast from the float32 weights
        results[name] = evaluate_on(m, test, device="cpu", dtype=dt)
        ctx.log(f"  {name}: {results[name]['accuracy']:.4f}")
    ref = results["float32"]["correct"].tolist()
    tests = [stats.paired_predictions(ref, results[k]["correct"].tolist(), claim="noninferior", delta=p["delta"],
                                      labels=("float32", k), what=f"{k} inference loses no more than {p['delta']:g} of "
                                      "accuracy against float32 (same weights, same test images)")
             for k in ("float16", "bfloat16")]  # fmt: skip
    agree = {
        k: float((results[k]["correct"] == results["float32"]["correct"]).float().mean()) for k in dtypes
    }
    fig, (ax1, ax2) = F.new(2, width=4.8)
    accs = {k: [r["accuracy"]] for k, r in results.items()}
    F.bars(ax1, accs, ylabel="test accuracy", annotate="{:.4f}")
    lo = min(r["accuracy"] for r in results.values())
    ax1.set_ylim(max(0.0, lo - 0.02), min(1.0, lo + 0.02))
    bits = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}
    F.bars(ax2, {k: [bits[k] * sum(t.numel() for t in model.parameters()) / 8 / 1024] for k in dtypes},
           ylabel="weights, KiB", annotate="{:.0f}")  # fmt: skip
    F.save(
        fig,
        ctx.figure("fp16"),
        f"the same weights in four precisions ({trained.get('model')} on {p['reference']['data']})",
    )
    t16, tb = tests
    return Outcome(
        stats.combine(tests),
        f"float16 scores {t16['accuracy_b']:.4f} and bfloat16 {tb['accuracy_b']:.4f} against {t16['accuracy_a']:.4f} in "
        f"float32 ({t16['only_a_right']}/{t16['only_b_right']} and {tb['only_a_right']}/{tb['only_b_right']} images "
        f"right in only one of the two; margin {p['delta']:g}).",
        tests,
        numbers={**{f"accuracy[{k}]": r["accuracy"] for k, r in results.items()},
                 **{f"same_correctness_as_float32[{k}]": v for k, v in agree.items()}},
        figures=[("fp16.png", "Test accuracy of one trained network evaluated in each precision (weights and inputs "
                  "cast), and the size of its weights.")],
        data={"reference": trained, "accuracy": {k: r["accuracy"] for k, r in results.items()}, "agreement": agree},
        notes=["CPU inference: float16 is emulated by the CPU kernels (storage in 16 bits, sums in float32 or wider)."],
        rule="all parts: float16 and bfloat16 both within the margin of float32",
    )  # fmt: skip


register(
    Experiment(
        name="fp16-inference",
        title="16-bit inference loses no accuracy",
        claim="Deep learning needs no high numeric precision: a network trained in 32 bits infers in 16-bit half "
        "precision without losing accuracy.",
        sources=FEWER_BITS,
        method="One trained DeepConvNet evaluated on the test set with weights and inputs in float64, float32, "
        "float16 and bfloat16. McNemar's exact test on the paired answers, and a non-inferiority bound on the "
        "accuracy difference against float32 (margin `delta`).",
        profiles={
            "quick": Profile(
                "DeepConvNet trained 4 epochs on digits, 360 test images",
                {"reference": QUICK_REFERENCE, "delta": 0.01},
            ),
            "full": Profile(
                "DeepConvNet after the fast recipe on MNIST, 10,000 test images",
                {"reference": FULL_REFERENCE, "delta": 0.001},
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_fp16,
        benchmark="benchmarks/fewer_bits.py",
    )
)


# ---------------------------------------------------------------------------------- fewer bits

BITS = {"float32": 32, "int8": 8, "qat": 8, "int4": 4, "binary": 1}


def run_fewer_bits(ctx: Context) -> Outcome:
    p = ctx.params
    if ctx.reuse:
        doc, path = benchmark_result("fewer_bits")
        rows, evidence = doc["quantized"], [path]
        n = 10_000 if doc.get("data", "mnist") in ("mnist", "fashion-mnist") else None
        notes = [f"Measured by benchmarks/fewer_bits.py on {doc['machine']} (torch {doc['torch']}), weights "
                 f"{doc['weights']}."]  # fmt: skip
    else:
        from deeper.accel.quantize import quantize_weights

        weights, trained, _ = _reference(ctx)
        data = p["reference"]["data"]
        rows, evidence, notes = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for m in p["methods"]:
                r = quantize_weights(weights, data, m, Path(tmp) / f"{m}.safetensors", data_dir=ctx.data_dir,
                                     qat_steps=p["qat_steps"], binary_epochs=p["binary_epochs"], repeats=p["repeats"],
                                     batch_size=p["latency_batch"], progress=False)  # fmt: skip
                r.pop("output", None)
                rows.append(r)
                ctx.log(
                    f"  {m}: accuracy {r['test_accuracy']:.4f}, {r['size_bytes']:,} bytes, {r['speedup']:.2f}x"
                )
        n = len(ctx.dataset(data, "test"))
    fl = rows[0]
    tests = []
    for r in rows:
        m = r["method"]
        tests.append(stats.exact(f"{m}: smaller than float32", r["size_bytes"] < r["float_size_bytes"],
                                 bytes=r["size_bytes"], float_bytes=r["float_size_bytes"]))  # fmt: skip
        tests.append(stats.threshold(f"{m}: faster than float32 (median latency, batch {r['batch_size']})", r["speedup"], 1.0,
                                     latency_ms=r["latency_ms"], float_latency_ms=r["float_latency_ms"]))  # fmt: skip
    fewest = min(rows, key=lambda r: BITS[r["method"]])
    tests.append(stats.accuracies(fewest["float_accuracy"], fewest["test_accuracy"], n, claim="less",
                                  labels=("float32", fewest["method"]),
                                  what=f"the fewest bits ({fewest['method']}) cost accuracy against float32"))  # fmt: skip
    fig, (ax1, ax2, ax3) = F.new(3, width=4.2)
    names = ["float32"] + [r["method"] for r in rows]
    sizes = [fl["float_size_bytes"] / 1024] + [r["size_bytes"] / 1024 for r in rows]
    accs = [fl["float_accuracy"]] + [r["test_accuracy"] for r in rows]
    speed = [1.0] + [r["speedup"] for r in rows]
    for ax, vals, label, fmt in ((ax1, sizes, "size on disk, KiB", "{:.0f}"), (ax2, accs, "test accuracy", "{:.4f}"),
                                 (ax3, speed, "speed vs float32 (x)", "{:.2f}")):  # fmt: skip
        F.bars(ax, {k: [v] for k, v in zip(names, vals)}, ylabel=label, annotate=fmt)
    ax2.set_ylim(max(0.0, min(accs) - 0.02), min(1.0, max(accs) + 0.01))
    ax3.axhline(1.0, color="k", ls=":", lw=1)
    F.save(fig, ctx.figure("fewer_bits"), "fewer bits: size, accuracy and CPU speed of the same network")
    slow = [r["method"] for r in rows if r["speedup"] < 1.0]
    because = (", ".join(f"{r['method']} {r['size_bytes'] / r['float_size_bytes']:.0%} of the size, "
                         f"{r['test_accuracy'] - r['float_accuracy']:+.4f} accuracy, {r['speedup']:.2f}x speed" for r in rows) + ". "
               + (f"Slower than float32 here: {', '.join(slow)} (no kernels for those formats on this CPU: they are "
                  "unpacked to float for compute)." if slow else ""))  # fmt: skip
    return Outcome(
        stats.combine(tests), because, tests,
        numbers={**{f"size_ratio[{r['method']}]": r["size_bytes"] / r["float_size_bytes"] for r in rows},
                 **{f"accuracy[{r['method']}]": r["test_accuracy"] for r in rows}, "accuracy[float32]": fl["float_accuracy"],
                 **{f"speedup[{r['method']}]": r["speedup"] for r in rows}},
        figures=[("fewer_bits.png", "Size on disk, test accuracy and CPU speed (batch latency against deeper's fastest "
                  "float32 path) of each format.")],
        data={"rows": rows}, notes=notes, evidence=evidence,
        rule="all parts: every format smaller and faster than float32, and the fewest bits cost accuracy",
    )  # fmt: skip


register(
    Experiment(
        name="fewer-bits",
        title="Fewer bits trade accuracy for size and speed",
        claim="Fewer bits per number (8-bit integers, 4 bits, down to 1-bit weights and activations) make a network "
        "smaller and faster, at some cost in accuracy.",
        sources=FEWER_BITS,
        method="`deeper quantize`'s methods (deeper.accel.quantize: int8 static, int8 QAT, 4-bit weight-only, a binary "
        "network trained with a straight-through estimator) on one trained DeepConvNet: size on disk, test accuracy "
        "and CPU latency against deeper's fastest float32 path. Sizes are exact; the latencies are medians; the "
        "accuracy cost of the fewest bits is a two-proportion interval. With `--reuse`, benchmarks/fewer_bits.py's "
        "committed rows.",
        profiles={
            "quick": Profile(
                "DeepConvNet on digits; int8, int4, binary (2 epochs); latency batch 200",
                {
                    "reference": QUICK_REFERENCE,
                    "methods": ["int8", "int4", "binary"],
                    "qat_steps": 20,
                    "binary_epochs": 2,
                    "repeats": 3,
                    "latency_batch": 200,
                },
            ),
            "full": Profile(
                "DeepConvNet after the fast recipe on MNIST; int8, QAT (300 steps), int4, binary (6 epochs); "
                "latency batch 1,000",
                {
                    "reference": FULL_REFERENCE,
                    "methods": ["int8", "qat", "int4", "binary"],
                    "qat_steps": 300,
                    "binary_epochs": 6,
                    "repeats": 7,
                    "latency_batch": 1000,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_fewer_bits,
        benchmark="benchmarks/fewer_bits.py",
        reusable=True,
    )
)


# ---------------------------------------------------------------------------------- robustness


def _noise(std: float, seed: int = 0):
    def f(x):
        g = torch.Generator(device=x.device).manual_seed(seed)
        return (x + std * torch.randn(x.shape, generator=g, device=x.device)).clamp(0, 1)

    return f


def _salt(p: float, seed: int = 0):
    def f(x):
        g = torch.Generator(device=x.device).manual_seed(seed)
        u = torch.rand(x.shape, generator=g, device=x.device)
        x = x.clone()
        x[u < p / 2] = 0.0
        x[u > 1 - p / 2] = 1.0
        return x

    return f


def _blur(sigma: float):
    def f(x):
        r = max(1, math.ceil(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-(t**2) / (2 * sigma**2))
        k = k / k.sum()
        c = x.shape[1]
        x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
        return torch.nn.functional.conv2d(
            x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c
        )

    return f


def _bits(b: int):
    levels = 2**b - 1
    return lambda x: torch.round(x * levels) / levels


def _occlude(size: int, seed: int = 0):
    def f(x):
        g = torch.Generator().manual_seed(seed)
        n, _, h, w = x.shape
        x = x.clone()
        ys = torch.randint(0, h - size + 1, (n,), generator=g)
        xs = torch.randint(0, w - size + 1, (n,), generator=g)
        for i in range(n):
            x[i, :, ys[i] : ys[i] + size, xs[i] : xs[i] + size] = 0.0
        return x

    return f


DEGRADATIONS = {  # name -> (levels, the level called small, make(level), unit)
    "Gaussian noise": ([0.05, 0.1, 0.2, 0.3, 0.5], 0.1, _noise, "std"),
    "salt and pepper": ([0.01, 0.02, 0.05, 0.1, 0.2], 0.02, _salt, "fraction of pixels"),
    "blur": ([0.5, 1.0, 1.5, 2.0], 0.5, _blur, "sigma, pixels"),
    "input bits": ([4, 2, 1], 4, _bits, "bits per pixel"),
    "occlusion": ([4, 8, 12], 4, _occlude, "square side, pixels"),
}


def run_robust(ctx: Context) -> Outcome:
    p = ctx.params
    _, trained, model = _reference(ctx)
    test = subset(ctx.dataset(p["reference"]["data"], "test"), p.get("test_images"))
    clean = evaluate_on(model, test)
    curves, tests, examples = {}, [], {}
    x0 = test.images[:1].float() / 255
    for name, (levels, small, make, unit) in DEGRADATIONS.items():
        curves[name] = {"levels": levels, "unit": unit, "accuracy": []}
        for lv in levels:
            r = evaluate_on(model, test, transform=make(lv))
            curves[name]["accuracy"].append(r["accuracy"])
            if lv == small:
                tests.append(stats.paired_predictions(clean["correct"].tolist(), r["correct"].tolist(),
                                                      claim="noninferior", delta=p["delta"], labels=("clean", f"{name} {lv}"),
                                                      what=f"{name} at {lv} ({unit}): accuracy no lower than on clean "
                                                      f"images by more than {p['delta']:g}"))  # fmt: skip
                examples[name] = make(lv)(x0)[0, 0]
        ctx.log(
            f"  {name}: " + ", ".join(f"{lv}: {a:.3f}" for lv, a in zip(levels, curves[name]["accuracy"]))
        )
    fig, axes = F.new(len(DEGRADATIONS) + 1, width=2.8, height=3.0)
    axes[0].imshow(x0[0, 0], cmap="gray")
    axes[0].set_title(f"clean: {clean['accuracy']:.3f}", fontsize=9)
    for ax, (name, c) in zip(axes[1:], curves.items()):
        ax.plot([str(v) for v in c["levels"]], c["accuracy"], "-o")
        ax.axhline(clean["accuracy"], color="k", ls=":", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(c["unit"], fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        inset = ax.inset_axes([0.55, 0.08, 0.4, 0.4])
        inset.imshow(examples[name], cmap="gray", vmin=0, vmax=1)
        inset.set_xticks([])
        inset.set_yticks([])
    axes[1].set_ylabel("test accuracy")
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    F.save(
        fig,
        ctx.figure("robustness"),
        f"accuracy on degraded test images ({trained.get('model')} on {p['reference']['data']})",
    )
    return Outcome(
        stats.combine(tests),
        f"Clean accuracy {clean['accuracy']:.4f}; at the small level of each degradation: "
        + ", ".join(f"{t['labels'][1]} {t['accuracy_b']:.4f}" for t in tests) + f" (margin {p['delta']:g}).",
        tests,
        numbers={"clean_accuracy": clean["accuracy"], **{f"accuracy[{t['labels'][1]}]": t["accuracy_b"] for t in tests}},
        figures=[("robustness.png", "Test accuracy against the strength of each degradation (dotted: clean); the inset "
                  "shows the first test image at the small level.")],
        data={"reference": trained, "curves": curves},
        rule="all parts: at the small level of every degradation the accuracy stays within the margin",
    )  # fmt: skip


register(
    Experiment(
        name="robustness",
        title="Trained networks stay robust to noisy or degraded inputs",
        claim="A neural network is robust: a little noise or degradation of its input hardly changes its output "
        "(which is also why it tolerates fewer bits).",
        sources=(
            Source("003", "8.3.4 연산 정밀도와 비트 줄이기 (robustness of neural networks)"),
            Source("004", "Noise Robustness"),
        ),  # fmt: skip
        method="One trained DeepConvNet scored on the test set with its inputs degraded at growing strength: "
        "Gaussian noise, salt and pepper, blur, fewer bits per pixel, occlusion. At each degradation's small level "
        "(declared beforehand) McNemar's test and a non-inferiority bound against the clean images decide.",
        profiles={
            "quick": Profile(
                "DeepConvNet trained 4 epochs on digits, 360 test images",
                {"reference": QUICK_REFERENCE, "delta": 0.03},
            ),
            "full": Profile(
                "DeepConvNet after the fast recipe on MNIST, 10,000 test images",
                {"reference": FULL_REFERENCE, "delta": 0.01},
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_robust,
    )
)
