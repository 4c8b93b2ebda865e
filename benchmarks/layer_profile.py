"""Figures 8-14 and 8-15: where AlexNet's forward time goes, and CPU vs GPU training time.

Figure 8-14: share of forward time per layer type (conv, pool, fc, norm, relu,
other) of ``--model`` (default AlexNet with the paper's LRN, 224x224 inputs), on
the CPU and, when CUDA is present, on the GPU; PNG per device and JSON.
Figure 8-15 (``--train-steps``): seconds for the same training steps of the same
model on each device.

    python benchmarks/layer_profile.py                       # CPU (and GPU when present)
    python benchmarks/layer_profile.py --model deep-convnet --batch-size 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from _common import RESULTS, save  # noqa: E402

from deeper.accel.profile import CATEGORIES, plot_profile, profile_forward  # noqa: E402
from deeper.models import create_model, get_model_entry  # noqa: E402


def train_seconds(model, x, y, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for i in range(steps + 1):
        if i == 1:  # the first step warms up (cuDNN autotuning, allocations)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="alexnet")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--train-steps", type=int, default=3, help="figure 8-15: timed training steps per device (0: skip)"
    )
    p.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. lrn=false"
    )
    p.add_argument("--output")
    args = p.parse_args(argv)
    kwargs = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.model_arg)}

    c, h, w = get_model_entry(args.model).default_input
    torch.backends.cudnn.benchmark = True
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {
        "model": args.model,
        "model_kwargs": kwargs,
        "batch_size": args.batch_size,
        "input": [c, h, w],
        "profiles": {},
        "train": {},
    }
    for dev in devices:
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=1000 if h >= 224 else 10, in_chans=c, **kwargs).to(dev)
        x = torch.rand(args.batch_size, c, h, w, device=dev)
        r = profile_forward(model, x, repeats=args.repeats)
        png = (
            RESULTS / f"layer_profile_{args.model}{''.join(f'_{k}-{v}' for k, v in kwargs.items())}_{dev}.png"
        )
        plot_profile(
            r, png, title=f"{args.model}: forward time per layer type, {dev}, batch {args.batch_size}"
        )
        r["plot"] = png.name
        result["profiles"][dev] = r
        print(
            f"{dev}: " + ", ".join(f"{k} {r['share'][k] * 100:.1f}%" for k in CATEGORIES),
            file=sys.stderr,
            flush=True,
        )
        if args.train_steps:
            y = torch.randint(0, model(x[:1]).shape[1], (args.batch_size,), device=dev)
            result["train"][dev] = {
                "steps": args.train_steps,
                "seconds": train_seconds(model, x, y, args.train_steps),
            }
    if "cuda" in result["train"]:
        result["train"]["cpu_over_gpu"] = (
            result["train"]["cpu"]["seconds"] / result["train"]["cuda"]["seconds"]
        )
    print(f"\n{'device':6s} " + " ".join(f"{k:>6s}" for k in CATEGORIES) + f" {'ms/fwd':>8s} {'train s':>8s}")
    for dev, r in result["profiles"].items():
        tr = result["train"].get(dev, {}).get("seconds")
        print(f"{dev:6s} " + " ".join(f"{r['share'][k] * 100:5.1f}%" for k in CATEGORIES)
              + f" {r['seconds_per_forward'] * 1000:8.1f} {tr if tr is None else f'{tr:8.2f}'}")  # fmt: skip
    if len(devices) == 1:
        result["gpu"] = "no CUDA device on this machine: run the same command on one for the GPU rows"
    print(save(f"layer_profile_{args.model}", result, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
