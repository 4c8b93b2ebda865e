"""The ceiling: how fast could this CPU train the chapter's DeepConvNet, counting only its convolutions?

Each of the network's six 3x3 convolutions is timed alone, forward and backward (the
weight gradient, and the input gradient for every layer but the first, as training
needs), at the training batch size, channels-last, in float32 and under bfloat16
autocast.  The sum is the time a training step cannot go below; its inverse, in
images per second, is the ceiling.  Then the engine's own training throughput (the
default run: ``deeper train`` with no options, a few hundred steps on MNIST) is put
beside it as a fraction, with the MACs per image so the figures read as GFLOP/s.

    python benchmarks/conv_ceiling.py --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.hardware import cpu_choice, cpu_info  # noqa: E402
from deeper.models import create_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def conv_inputs(model: nn.Module, batch: int) -> list[tuple[nn.Conv2d, torch.Size]]:
    """Each convolution of ``model`` with the input shape it sees at ``batch`` images."""
    seen: list[tuple[nn.Conv2d, torch.Size]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0].shape)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(batch, 1, 28, 28))
    for h in hooks:
        h.remove()
    return seen


def time_conv(conv: nn.Conv2d, shape: torch.Size, *, first: bool, amp: bool, repeats: int) -> float:
    """Median seconds of one forward + backward of ``conv`` alone (channels-last)."""
    conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(not first)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else torch.enable_grad

    def step():
        with ctx():
            y = conv(x)
        y.backward(torch.ones_like(y))

    for _ in range(5):  # warm-up: oneDNN picks and builds its kernels
        step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def engine_throughput(data_dir: str | None, steps: int, amp: str) -> float:
    """img/s of the engine's default training (the recipe's batch), ``steps`` steps after 20 of warm-up."""
    from deeper.train import LoopState, TrainConfig, build_run, train_one_epoch

    cfg = TrainConfig(data_dir=data_dir, device="cpu", tensorboard=False, progress=False, amp=amp).resolved()
    run = build_run(cfg)
    state = LoopState()
    common = dict(stepper=run.stepper, state=state, progress=None)  # the engine's steps, --amp included
    train_one_epoch(run.model, run.task, run.train_loader, on_step=lambda s: s.global_step >= 20, **common)
    t0, n0 = state.train_seconds, state.train_samples
    train_one_epoch(
        run.model, run.task, run.train_loader, on_step=lambda s: s.global_step >= 20 + steps, **common
    )
    return (state.train_samples - n0) / (state.train_seconds - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--batch-size", type=int, default=128, help="the training batch [128: the fast recipe's]")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per convolution; the median is kept")
    p.add_argument("--steps", type=int, default=150, help="engine steps timed for its throughput")
    p.add_argument("--output", default=str(HERE / "results" / "conv_ceiling.json"))
    p.add_argument("--json", action="store_true", help="print the result as one JSON line on stdout")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = create_model("deep-convnet")
    convs = conv_inputs(model, args.batch_size)
    layers, totals = [], {"fp32": 0.0, "bf16": 0.0}
    for i, (conv, shape) in enumerate(convs):
        macs = (
            conv.in_channels
            * conv.out_channels
            * conv.kernel_size[0]
            * conv.kernel_size[1]
            * shape[2]
            * shape[3]
        )
        row = {"layer": f"conv{i + 1} {conv.in_channels}->{conv.out_channels} on {shape[2]}x{shape[3]}",
               "macs_per_image": macs}  # fmt: skip
        for name, amp in (("fp32", False), ("bf16", True)):
            s = time_conv(conv, shape, first=i == 0, amp=amp, repeats=args.repeats)
            row[f"{name}_ms"] = s * 1e3
            totals[name] += s
        layers.append(row)
    # a training step's convolution work: forward, weight gradient, input gradient (not for the first)
    macs = sum(r["macs_per_image"] * (2 if i == 0 else 3) for i, r in enumerate(layers))
    choice = cpu_choice(cpu_info())
    ceiling = {k: args.batch_size / v for k, v in totals.items()}
    engine = {
        k: engine_throughput(args.data_dir, args.steps, amp)
        for k, amp in (("fp32", "off"), ("default", "auto"))
    }
    default_kind = "bf16" if choice.amp == "bf16" else "fp32"
    result = {
        "benchmark": "conv_ceiling",
        "machine": machine(),
        "torch": torch.__version__,
        "cpu_family": cpu_info().family,
        "default_amp": choice.amp,
        "batch_size": args.batch_size,
        "layers": layers,
        "conv_training_macs_per_image": macs,
        "ceiling_img_per_s": ceiling,
        "conv_gflops_at_ceiling": {k: 2 * macs * v / 1e9 for k, v in ceiling.items()},
        "engine_img_per_s": engine,
        "engine_fp32_fraction_of_fp32_ceiling": engine["fp32"] / ceiling["fp32"],
        "engine_default_fraction_of_ceiling": engine["default"] / ceiling[default_kind],
    }
    print(f"machine: {result['machine']} (family {result['cpu_family']}, --amp auto -> {choice.amp})")
    print(f"{'layer':28s} {'MACs/img':>10s} {'fp32 ms':>8s} {'bf16 ms':>8s}")
    for r in layers:
        print(f"{r['layer']:28s} {r['macs_per_image']:10,d} {r['fp32_ms']:8.2f} {r['bf16_ms']:8.2f}")
    for k in ("fp32", "bf16"):
        print(
            f"ceiling {k}: {ceiling[k]:,.0f} img/s ({result['conv_gflops_at_ceiling'][k]:.1f} GFLOP/s in the convolutions)"
        )
    print(
        f"engine fp32: {engine['fp32']:,.0f} img/s = {result['engine_fp32_fraction_of_fp32_ceiling']:.0%} of the fp32 ceiling"
    )
    print(f"engine default ({choice.amp}): {engine['default']:,.0f} img/s = "
          f"{result['engine_default_fraction_of_ceiling']:.0%} of the {default_kind} ceiling")  # fmt: skip
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
