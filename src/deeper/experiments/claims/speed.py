"""Where the time goes and how to spend less (8.3, 004 CNN): convolutions, 1x1 bottlenecks, GPUs, data parallelism."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from deeper.experiments import figures as F
from deeper.experiments import stats
from deeper.experiments.base import Context, Experiment, Outcome, Profile, Source, register
from deeper.experiments.probe import count_params
from deeper.experiments.results import benchmark_result

NO_GPU = "No GPU on this machine: the figures are CPU figures only; a GPU claim needs a GPU to be decided."


def _time(fn, x, repeats: int, *, backward: bool = False) -> list[float]:
    """Seconds of ``fn(x)`` (and its backward pass when asked), each of ``repeats`` calls."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        if backward:
            fn(x).sum().backward()
        else:
            with torch.inference_mode():
                fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


# ------------------------------------------------------------------------------------ 1x1 convs


def _pairs(c: int) -> dict[str, tuple[nn.Module, nn.Module]]:
    """Each direct convolution and its 1x1-reduced twin (same input and output channels)."""
    r = c // 4
    return {
        f"3x3 {c}->{c} vs bottleneck 1x1 {c}->{r}, 3x3, 1x1 ->{c} (ResNet)": (
            nn.Conv2d(c, c, 3, padding=1),
            nn.Sequential(
                nn.Conv2d(c, r, 1), nn.ReLU(), nn.Conv2d(r, r, 3, padding=1), nn.ReLU(), nn.Conv2d(r, c, 1)
            ),
        ),
        f"5x5 {c}->32 vs 1x1 {c}->16, 5x5 16->32 (Inception)": (
            nn.Conv2d(c, 32, 5, padding=2),
            nn.Sequential(nn.Conv2d(c, 16, 1), nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2)),
        ),
    }


def run_conv1x1(ctx: Context) -> Outcome:
    from deeper.analysis.summary import summarize

    p = ctx.params
    dev = ctx.torch_device()
    x = torch.rand(p["batch_size"], p["channels"], p["size"], p["size"], device=dev)
    tests, rows = [], {}
    for name, (direct, reduced) in _pairs(p["channels"]).items():
        direct, reduced = direct.to(dev).eval(), reduced.to(dev).eval()
        shape = (p["channels"], p["size"], p["size"])
        macs = [summarize(m.cpu(), shape).total_macs for m in (direct, reduced)]
        direct, reduced = direct.to(dev), reduced.to(dev)
        _time(direct, x, 2), _time(reduced, x, 2)  # warm-up
        ta, tb = [], []
        for _ in range(p["repeats"]):  # interleaved, so drifts of a busy machine hit both alike
            ta += _time(direct, x, 1, backward=p["backward"])
            tb += _time(reduced, x, 1, backward=p["backward"])
        pa, pb = count_params(direct), count_params(reduced)
        rows[name] = {"params": [pa, pb], "macs": macs, "seconds": [ta, tb]}
        tests.append(stats.exact(f"{name}: fewer parameters", pb < pa, direct=pa, reduced=pb, ratio=pb / pa))
        tests.append(stats.samples(ta, tb, claim="less", labels=("direct", "1x1-reduced"),
                                   what=f"{name}: {'forward+backward' if p['backward'] else 'forward'} time per batch"))  # fmt: skip
        ctx.log(f"  {name}: params {pa:,} -> {pb:,}, median {statistics.median(ta) * 1e3:.1f} -> "
                f"{statistics.median(tb) * 1e3:.1f} ms")  # fmt: skip
    verdict = stats.combine(tests)
    fig, axes = F.new(2, width=5)
    for ax, (name, r) in zip(axes, rows.items()):
        ms = {"direct": [t * 1e3 for t in r["seconds"][0]], "with 1x1": [t * 1e3 for t in r["seconds"][1]]}
        F.bars(ax, ms, ylabel="ms per batch", annotate="{:.1f}")
        ax.set_title(
            f"{name.split(' vs ')[0]} ...\nparams {r['params'][0]:,} -> {r['params'][1]:,}", fontsize=9
        )
    F.save(fig, ctx.figure("conv1x1"), f"1x1 reductions: time per batch of {p['batch_size']} ({p['channels']} channels, "
           f"{p['size']}x{p['size']}, {dev.type})")  # fmt: skip
    ratios = {
        n: statistics.median(r["seconds"][1]) / statistics.median(r["seconds"][0]) for n, r in rows.items()
    }
    return Outcome(
        verdict,
        "; ".join(f"{n.split(' vs ')[0]}: parameters x{r['params'][1] / r['params'][0]:.2f}, time x{ratios[n]:.2f}"
                  for n, r in rows.items()) + ".",
        tests,
        numbers={**{f"param_ratio[{n.split(' vs ')[0]}]": r["params"][1] / r["params"][0] for n, r in rows.items()},
                 **{f"time_ratio[{n.split(' vs ')[0]}]": v for n, v in ratios.items()}},
        figures=[("conv1x1.png", "Time per batch of each direct convolution and its 1x1-reduced twin (bars: median "
                  "... mean and sd; dots: each measurement), and their parameters.")],
        data=rows, rule="all parts: fewer parameters and significantly less time for each pair",
    )  # fmt: skip


register(
    Experiment(
        name="conv1x1",
        title="1x1 convolutions cut parameters and time",
        claim="A 1x1 convolution that first reduces the channels (the bottleneck of ResNet, the reductions of "
        "Inception) cuts the parameters, and the computation with them, while the layers get deeper.",
        sources=(
            Source("004", "1x1 convolution를 활용한 최적화 (optimization with 1x1 convolutions)"),
            Source("004", "Modern CNN, 3. GoogleNet and 4. ResNet (bottleneck architecture)"),
        ),  # fmt: skip
        method="A direct 3x3 (and 5x5) convolution and its twin with a 1x1 reduction in front (same input and output "
        "channels), on the same batch: parameters counted, time per batch measured interleaved many times; "
        "Mann-Whitney U test on the times.",
        profiles={
            "quick": Profile(
                "64 channels, 14x14, batch 8, forward, 15 repeats",
                {"channels": 64, "size": 14, "batch_size": 8, "repeats": 15, "backward": False},
            ),
            "full": Profile(
                "256 channels, 28x28, batch 16, forward and backward, 30 repeats",
                {"channels": 256, "size": 28, "batch_size": 16, "repeats": 30, "backward": True},
            ),
        },  # fmt: skip
        run=run_conv1x1,
    )
)


# ----------------------------------------------------------------------------- conv time share


def run_conv_share(ctx: Context) -> Outcome:
    from deeper.accel.profile import CATEGORIES, profile_forward
    from deeper.models import create_model, get_model_entry

    p = ctx.params
    dev = ctx.torch_device()
    shares, evidence, notes = {}, [], []
    for spec in p["models"]:
        name, kwargs = spec["model"], spec.get("kwargs", {})
        label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
        c, h, w = get_model_entry(name).default_input
        torch.manual_seed(0)
        model = create_model(name, num_classes=1000 if h >= 224 else 10, in_chans=c, **kwargs).to(dev)
        x = torch.rand(p["batch_size"], c, h, w, device=dev)
        runs = [profile_forward(model, x, repeats=1, warmup=1 if i else 2) for i in range(p["samples"])]
        shares[label] = {k: [r["share"][k] for r in runs] for k in CATEGORIES}
        shares[label]["ms_per_forward"] = [r["seconds_per_forward"] * 1e3 for r in runs]
        ctx.log(f"  {label}: conv {statistics.mean(shares[label]['conv']):.1%}")
    tests = [stats.one_sample(s["conv"], 0.5, claim="greater", what=f"{label}: share of forward time in convolutions above half")
             for label, s in shares.items()]  # fmt: skip
    verdict = stats.combine(tests, "majority")
    if p.get("gpu_evidence"):
        try:
            gpu, path = benchmark_result("layer_profile_alexnet_h100")
            g = gpu["profiles"]["cuda"]["share"]
            notes.append(f"GPU figure from {path} ({gpu['machine']}, torch {gpu['torch']}, AlexNet with LRN, batch "
                         f"{gpu['batch_size']}): conv {g['conv']:.1%}, fc {g['fc']:.1%}, LRN {g['norm']:.1%}, pool "
                         f"{g['pool']:.1%} of kernel time (not part of the verdict: not measured here).")  # fmt: skip
            evidence.append(path)
        except Exception:  # noqa: BLE001 - the GPU note is optional
            pass
    if dev.type == "cpu":
        notes.append("Measured on the CPU (the notes' figure 8-14: convolutions 89% on a CPU, 95% on a GPU).")
    fig, (ax,) = F.new(1, width=7, height=4)
    labels = list(shares)
    bottom = [0.0] * len(labels)
    for i, cat in enumerate(CATEGORIES):
        vals = [statistics.mean(shares[k][cat]) * 100 for k in labels]
        ax.bar(range(len(labels)), vals, bottom=bottom, label=cat, color=F.COLORS[i % len(F.COLORS)])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.axhline(50, color="k", ls=":", lw=1)
    ax.set_xticks(range(len(labels)), labels, rotation=15, ha="right")
    ax.set_ylabel("% of forward time")
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.22, 1))
    F.save(
        fig, ctx.figure("conv_share"), f"forward time per layer type ({dev.type}, batch {p['batch_size']})"
    )
    return Outcome(
        verdict,
        "Share of forward time in convolutions: " + ", ".join(
            f"{k} {statistics.mean(s['conv']):.1%}" for k, s in shares.items()) + " (majority of the networks decides).",
        tests,
        numbers={f"conv_share[{k}]": statistics.mean(s["conv"]) for k, s in shares.items()},
        figures=[("conv_share.png", "Mean share of forward time per layer type (torch profiler, operator self time); "
                  "the dotted line is half.")],
        data=shares, notes=notes, evidence=evidence,
        rule="the majority of the profiled networks: convolutions take significantly more than half of the forward time",
    )  # fmt: skip


register(
    Experiment(
        name="conv-time-share",
        title="Most of the time is spent in convolutions",
        claim="Most of a CNN's forward time is spent in its convolution layers (AlexNet: 95% on a GPU, 89% on a "
        "CPU), so making convolutions fast is what speeds deep learning up.",
        sources=(
            Source("003", "8.3.1 풀어야 할 숙제 (the problem to solve), figure 8-14"),
            Source("002", "8.3.1 풀어야 할 숙제"),
            Source("000", "8.3 딥러닝 고속화"),
        ),  # fmt: skip
        method="`deeper profile`'s profiler (deeper.accel.profile) on the zoo's AlexNet (with the paper's LRN and "
        "without it, as torchvision has it), VGG and ResNet: the share of forward time per layer type, several "
        "profiled passes each; one-sample t-test of the convolutions' share against one half, per network; the "
        "majority of the networks decides.",
        profiles={
            "quick": Profile(
                "AlexNet without LRN and DeepConvNet, batch 2, 3 passes",
                {
                    "models": [{"model": "alexnet", "kwargs": {"lrn": False}}, {"model": "deep-convnet"}],
                    "batch_size": 2,
                    "samples": 3,
                    "gpu_evidence": False,
                },
            ),
            "full": Profile(
                "AlexNet with and without LRN, VGG-16, ResNet-18, batch 16, 5 passes",
                {
                    "models": [
                        {"model": "alexnet"},
                        {"model": "alexnet", "kwargs": {"lrn": False}},
                        {"model": "vgg16"},
                        {"model": "resnet18"},
                    ],
                    "batch_size": 16,
                    "samples": 5,
                    "gpu_evidence": True,
                },
            ),
        },  # fmt: skip
        run=run_conv_share,
        benchmark="benchmarks/layer_profile.py",
    )
)


# --------------------------------------------------------------------------------- GPU vs CPU


def _step_times(model_name: str, device: torch.device, batch_size: int, steps: int) -> list[float]:
    from deeper.models import create_model, get_model_entry

    c, h, w = get_model_entry(model_name).default_input
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=1000 if h >= 224 else 10, in_chans=c).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(batch_size, c, h, w, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step(_x):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(_x), y)
        return loss

    out = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = step(x)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            out.append(time.perf_counter() - start)
    return out


def run_gpu(ctx: Context) -> Outcome:
    p = ctx.params
    if ctx.reuse:
        return _gpu_from_benchmarks(ctx)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    times = {}
    for spec in p["models"]:
        for dev in devices:
            key = f"{spec['model']} {dev.type}"
            times[key] = _step_times(spec["model"], dev, spec["batch_size"], spec["steps"])
            ctx.log(f"  {spec['model']} on {dev.type}: {statistics.median(times[key]) * 1e3:.1f} ms/step")
    tests, notes = [], []
    if len(devices) > 1:
        for spec in p["models"]:
            a, b = times[f"{spec['model']} cpu"], times[f"{spec['model']} cuda"]
            tests.append(
                stats.samples(
                    a, b, claim="less", labels=("CPU", "GPU"), what=f"{spec['model']}: time per training step"
                )
            )
            ratio = statistics.median(a) / statistics.median(b)
            tests.append(stats.exact(f"{spec['model']}: the GPU at least {p['min_speedup']}x faster", ratio >= p["min_speedup"],
                                     speedup=ratio))  # fmt: skip
        verdict = stats.combine(tests)
        because = "; ".join(f"{s['model']}: {statistics.median(times[s['model'] + ' cpu']) / statistics.median(times[s['model'] + ' cuda']):.1f}x"
                            for s in p["models"]) + " faster on the GPU."  # fmt: skip
    else:
        verdict = stats.INCONCLUSIVE
        notes.append(NO_GPU)
        because = ("No GPU on this machine: CPU step times only (" + ", ".join(
            f"{s['model']} {statistics.median(times[s['model'] + ' cpu']) * 1e3:.0f} ms" for s in p["models"])
            + "); `--reuse` reads the GPU runs of benchmarks/gpu_speedrun.py.")  # fmt: skip
    fig, (ax,) = F.new(1, width=6, height=4)
    F.bars(
        ax,
        {k: [t * 1e3 for t in v] for k, v in times.items()},
        ylabel="ms per training step",
        annotate="{:.1f}",
    )
    ax.set_yscale("log")
    F.save(
        fig,
        ctx.figure("gpu_cpu"),
        "training step time by device" + ("" if len(devices) > 1 else " (CPU only: no GPU on this machine)"),
    )
    return Outcome(
        verdict, because, tests,
        numbers={f"ms_per_step[{k}]": statistics.median(v) * 1e3 for k, v in times.items()},
        figures=[("gpu_cpu.png", "Median time per training step (log scale) on each device present.")],
        data={"seconds_per_step": times}, notes=notes,
        rule=f"all parts: the GPU significantly faster per step, by at least {p['min_speedup']}x" if len(devices) > 1 else "no GPU: inconclusive",
    )  # fmt: skip


def _gpu_from_benchmarks(ctx: Context) -> Outcome:
    p = ctx.params
    cpu, cpu_path = benchmark_result("gpu_speedrun_cpu")
    gpu, gpu_path = benchmark_result("gpu_speedrun_h100_fp32")

    def epoch_seconds(doc, recipe):
        out = []
        for r in doc["runs"]:
            if r["recipe"] == recipe and r.get("mode", "eager") == "eager":
                t = [c["seconds"] for c in r["curve"]]
                out += [b - a for a, b in zip([0.0] + t[:-1], t)]
        return out

    recipe = p["recipe"]
    a, b = epoch_seconds(cpu, recipe), epoch_seconds(gpu, recipe)
    ratio = statistics.median(a) / statistics.median(b)
    tests = [
        stats.samples(a, b, claim="less", labels=("CPU", "GPU"), what=f"DeepConvNet, recipe {recipe} (fp32, eager): seconds per epoch"),
        stats.exact(f"the GPU at least {p['min_speedup']}x faster", ratio >= p["min_speedup"], speedup=ratio),
    ]  # fmt: skip
    fig, (ax,) = F.new(1, width=5.5, height=4)
    F.bars(ax, {f"CPU\n({cpu['machine'].split(',')[0]})": a, f"GPU\n({gpu['machine'].split('GPU ')[-1]})": b},
           ylabel="seconds per epoch (60,000 images)", annotate="{:.1f}")  # fmt: skip
    F.save(fig, ctx.figure("gpu_cpu"), f"DeepConvNet training, recipe {recipe}, float32")
    return Outcome(
        stats.combine(tests),
        f"One epoch of DeepConvNet (batch 128, float32, the same engine): {statistics.median(a):.1f} s on the CPU "
        f"against {statistics.median(b):.2f} s on the GPU, {ratio:.1f}x faster.",
        tests,
        numbers={"cpu_seconds_per_epoch": statistics.median(a), "gpu_seconds_per_epoch": statistics.median(b), "speedup": ratio},
        figures=[("gpu_cpu.png", "Seconds per training epoch on each machine (bars: mean and sd; dots: each epoch).")],
        data={"cpu_epochs": a, "gpu_epochs": b},
        notes=[f"Measured by benchmarks/gpu_speedrun.py: CPU on {cpu['machine']} (torch {cpu['torch']}); GPU on "
               f"{gpu['machine']} (torch {gpu['torch']})."],
        evidence=[cpu_path, gpu_path],
        rule=f"all parts: significantly less time per epoch on the GPU, by at least {p['min_speedup']}x",
    )  # fmt: skip


register(
    Experiment(
        name="gpu-vs-cpu",
        title="GPUs train far faster than CPUs",
        claim="Deep learning's large multiply-accumulate workloads run far faster on a GPU than on a CPU "
        "(figure 8-15: AlexNet from 40 days on a CPU to 6 on a GPU).",
        sources=(
            Source("003", "8.3.2 GPU를 활용한 고속화 (speeding up with GPUs), figure 8-15"),
            Source("002", "8.3.2 GPU를 활용한 고속화"),
            Source("000", "8.3 딥러닝 고속화, GPU"),
        ),  # fmt: skip
        method="Training steps of the same model and batch timed on each device present (the first step excluded); "
        "Mann-Whitney U test on the step times and the ratio of the medians against a declared minimum. With "
        "`--reuse`, the epochs of the `fast` recipe timed by benchmarks/gpu_speedrun.py on a CPU and on a GPU.",
        profiles={
            "quick": Profile(
                "DeepConvNet batch 64, 8 steps per device",
                {
                    "models": [{"model": "deep-convnet", "batch_size": 64, "steps": 8}],
                    "min_speedup": 5.0,
                    "recipe": "6x128",
                },
            ),
            "full": Profile(
                "DeepConvNet batch 128 (30 steps) and AlexNet batch 16 (5 steps) per device",
                {
                    "models": [
                        {"model": "deep-convnet", "batch_size": 128, "steps": 30},
                        {"model": "alexnet", "batch_size": 16, "steps": 5},
                    ],
                    "min_speedup": 5.0,
                    "recipe": "6x128",
                },
            ),
        },  # fmt: skip
        run=run_gpu,
        benchmark="benchmarks/gpu_speedrun.py",
        reusable=True,
        gpu=True,
    )
)


# ---------------------------------------------------------------------------- data parallelism


def run_ddp(ctx: Context) -> Outcome:
    import tempfile

    p = ctx.params
    if ctx.reuse:
        return _ddp_from_benchmark(ctx)
    from deeper.train import fit

    rates: dict[int, list[float]] = {n: [] for n in p["nprocs"]}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(p["repeats"]):
            for n in p["nprocs"]:  # interleaved
                r = fit(model=p["model"], data=p["data"], device="cpu", batch_size=p["batch_size"],
                        max_steps=p["steps"], nproc=n, out=f"{tmp}/n{n}-{rep}", tensorboard=False, progress=False,
                        data_dir=ctx.data_dir, val_size=0, seed=rep)  # fmt: skip
                rates[n].append(r["img_per_s"])
                ctx.log(f"  {n} process(es), run {rep + 1}: {r['img_per_s']:.0f} img/s")
    one, many = p["nprocs"][0], p["nprocs"][-1]
    tests = [stats.samples(rates[one], rates[many], claim="greater", labels=(f"{one} process", f"{many} processes"),
                           what="training images per second")]  # fmt: skip
    speedup = statistics.median(rates[many]) / statistics.median(rates[one])
    fig, (ax,) = F.new(1, width=5, height=4)
    F.bars(ax, {f"{n} process{'es' if n > 1 else ''}": v for n, v in rates.items()}, ylabel="training images / s",
           annotate="{:,.0f}")  # fmt: skip
    F.save(
        fig, ctx.figure("ddp"), f"data-parallel training ({p['model']}, global batch {p['batch_size']}, CPU)"
    )
    return Outcome(
        tests[0]["verdict"],
        f"{many} processes train at {statistics.median(rates[many]):,.0f} img/s against {statistics.median(rates[one]):,.0f} "
        f"for {one}: {speedup:.2f}x (global batch {p['batch_size']}, {p['steps']} steps, on {ctx.torch_device().type}).",
        tests,
        numbers={"speedup": speedup, **{f"img_per_s[{n}]": statistics.median(v) for n, v in rates.items()}},
        figures=[("ddp.png", "Training images per second by number of data-parallel processes (DDP, one thread each "
                  "under torchrun; dots: each run).")],
        data={"img_per_s": {str(k): v for k, v in rates.items()}},
        notes=["CPU processes (gloo): the notes' claim is about GPUs and machines; here the workers are the CPU's cores."],
        rule="Mann-Whitney U test on the throughput of the runs",
    )  # fmt: skip


def _ddp_from_benchmark(ctx: Context) -> Outcome:
    p = ctx.params
    docs = [benchmark_result(name) for name in ("ddp_scaling", "ddp_scaling_b256")]
    tests, rows = [], {}
    for doc, _ in docs:
        r1, r2 = doc["rows"][0], doc["rows"][-1]
        label = f"global batch {doc['batch_size']}"
        rows[label] = [r1["img_per_s"], r2["img_per_s"]]
        tests.append(stats.threshold(f"{label}: {r2['nproc']} processes reach at least {p['min_speedup']}x the throughput "
                                     "of 1 (the best of the benchmark's repeats)", r2["speedup"], p["min_speedup"],
                                     efficiency=r2["efficiency"]))  # fmt: skip
    fig, (ax,) = F.new(1, width=5.5, height=4)
    for i, (label, (a, b)) in enumerate(rows.items()):
        ax.plot([1, 2], [a, b], "-o", label=label, color=F.COLORS[i])
    ax.plot(
        [1, 2], [list(rows.values())[0][0], 2 * list(rows.values())[0][0]], ":", color="0.5", label="linear"
    )
    ax.set_xticks([1, 2])
    ax.set_xlabel("processes")
    ax.set_ylabel("training images / s")
    ax.legend()
    F.save(fig, ctx.figure("ddp"), "DDP scaling, DeepConvNet on the CPU (benchmarks/ddp_scaling.py)")
    return Outcome(
        stats.combine(tests),
        "; ".join(f"{k}: {b / a:.2f}x with 2 processes" for k, (a, b) in rows.items()) + ".",
        tests,
        numbers={f"speedup[{k}]": b / a for k, (a, b) in rows.items()},
        figures=[("ddp.png", "Throughput with 1 and 2 DDP processes (one thread each) against linear scaling.")],
        data=rows, evidence=[path for _, path in docs],
        notes=[f"Measured by benchmarks/ddp_scaling.py on {docs[0][0]['machine']} (torch {docs[0][0]['torch']})."],
        rule=f"all parts: the measured speedup at least {p['min_speedup']}x",
    )  # fmt: skip


register(
    Experiment(
        name="data-parallel",
        title="More data-parallel workers train faster",
        claim="Distributing training over more GPUs (or machines) makes it faster: the more workers, the shorter the "
        "training (figure 8-16).",
        sources=(
            Source("003", "8.3.3 분산 학습 (distributed training), figure 8-16"),
            Source("001", "분산학습"),
            Source("002", "8.3.3 분산 학습"),
        ),  # fmt: skip
        method="`deeper train --nproc N` (DDP under torchrun, one thread per process) for the same global batch and "
        "steps, runs interleaved; Mann-Whitney U test on the throughput of 1 against N processes. With `--reuse`, "
        "the rows of benchmarks/ddp_scaling.py against a declared minimum speedup.",
        profiles={
            "quick": Profile(
                "digits, DeepConvNet, 1 vs 2 processes, 10 steps of 64, one run each",
                {
                    "model": "deep-convnet",
                    "data": "digits",
                    "nprocs": [1, 2],
                    "batch_size": 64,
                    "steps": 10,
                    "repeats": 1,
                    "min_speedup": 1.3,
                },
            ),
            "full": Profile(
                "MNIST, DeepConvNet, 1 vs 2 processes, 150 steps of 256, 4 runs each",
                {
                    "model": "deep-convnet",
                    "data": "mnist",
                    "nprocs": [1, 2],
                    "batch_size": 256,
                    "steps": 150,
                    "repeats": 4,
                    "min_speedup": 1.3,
                },
                data=("mnist",),
            ),
        },  # fmt: skip
        run=run_ddp,
        benchmark="benchmarks/ddp_scaling.py",
        reusable=True,
        gpu=True,
    )
)
