"""MNIST speed-run on a GPU: seconds of training to 99% and to 99.4% test accuracy.

The chapter's DeepConvNet (with batch norm in the ``bn-`` recipes), deeper's
own engine (``build_run`` + ``train_one_epoch``), the data resident on the GPU
(one uint8 tensor, batches are index lookups), bf16 autocast and channels-last.
Each recipe runs in each ``--modes`` entry: ``eager`` (the default engine) and
``graphs`` (``--cuda-graphs``: forward+backward replayed as a CUDA graph), side
by side in one run.  The clock covers only the training steps
(``torch.cuda.synchronize`` around each epoch) and includes the graph capture
(also reported on its own); evaluation on the 10,000 test images after each
epoch and one warm-up run (cuDNN autotuning, allocator, CUDA init) are excluded,
as in the public MNIST speed-runs.  Each recipe is repeated over seeds; the
table gives the median and the worst run.

    python benchmarks/gpu_speedrun.py --data-dir ../shared/datasets            # needs CUDA
    python benchmarks/gpu_speedrun.py --device cpu --modes eager --recipes 6x128 --seeds 0   # CPU (Fig. 8-15)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import print_table, save  # noqa: E402

from deeper.train import LoopState, TrainConfig, build_run  # noqa: E402
from deeper.train.loop import evaluate, train_one_epoch  # noqa: E402

#: name -> (epochs, batch size, peak learning rate, norm, dropout): one-cycle Adam, label smoothing 0.1
RECIPES = {
    "bn-1x128": (1, 128, 0.01, "batch", 0.1),
    "bn-1x256": (1, 256, 0.01, "batch", 0.1),
    "bn-2x256": (2, 256, 0.01, "batch", 0.1),
    "bn-2x512": (2, 512, 0.015, "batch", 0.1),
    "1x512": (1, 512, 0.01, None, None),
    "2x512": (2, 512, 0.008, None, None),
    "3x256": (3, 256, 0.006, None, None),
    "6x128": (6, 128, 0.004, None, None),  # deeper's default recipe ("fast"): the book's network
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_run(recipe: str, mode: str, seed: int, args, max_epochs: int | None = None) -> dict:
    epochs, batch, lr, norm, dropout = RECIPES[recipe]
    cfg = TrainConfig(
        data=args.data, data_dir=args.data_dir, device=args.device, amp=args.amp, seed=seed,
        epochs=epochs, batch_size=batch, lr=lr, norm=norm, dropout=dropout, val_size=0,
        channels_last=args.channels_last, compile=args.compile, cuda_graphs=mode == "graphs",
        tensorboard=False, progress=False,
    ).resolved()  # fmt: skip
    run = build_run(cfg)
    state = LoopState()
    seconds, curve = 0.0, []
    for epoch in range(min(epochs, max_epochs or epochs)):
        run.train_loader.set_epoch(epoch)
        state.epoch, state.step_in_epoch = epoch, 0
        sync(run.device)
        t0 = time.perf_counter()
        train_one_epoch(run.parts, run.task, run.train_loader, stepper=run.stepper, state=state)
        sync(run.device)
        seconds += time.perf_counter() - t0
        acc = evaluate(run.model, run.task, run.test_loader)["accuracy"]
        curve.append({"epoch": epoch + 1, "seconds": seconds, "test_accuracy": acc})
    first = lambda goal: next((c["seconds"] for c in curve if c["test_accuracy"] >= goal), None)  # noqa: E731
    return {
        "recipe": recipe, "mode": mode, "seed": seed,
        "capture_seconds": getattr(run.stepper, "capture_seconds", 0.0), "seconds": seconds, "test_accuracy": curve[-1]["test_accuracy"],
        "to_99": first(0.99), "to_99.4": first(0.994), "curve": curve,
        "images_per_second": len(curve) * len(run.train_loader.dataset) / seconds,
    }  # fmt: skip


def seconds_to(times: list[float | None]) -> str:
    """Median and worst seconds to a goal over seeds, or how many seeds never reached it."""
    if None in times:
        return f"missed in {times.count(None)}/{len(times)}"
    return f"{statistics.median(times):.3f} (max {max(times):.3f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="cuda")
    p.add_argument("--amp", default="bf16", help="off, bf16 or fp16 [bf16]")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--modes", default="eager,graphs", help="eager, graphs (--cuda-graphs) or both [both]")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--output")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_speedrun: no CUDA device here (use --device cpu for the CPU figure)", file=sys.stderr)
        return 1
    torch.backends.cudnn.benchmark = True
    recipes = args.recipes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    modes = args.modes.split(",")
    for m in modes:  # warm-up: cuDNN autotuning, allocator, lazy CUDA init
        one_run(recipes[0], m, 1000, args, max_epochs=1)
    runs = [one_run(r, m, s, args) for r in recipes for m in modes for s in seeds]
    rows = []
    for r, m in [(r, m) for r in recipes for m in modes]:
        mine = [x for x in runs if x["recipe"] == r and x["mode"] == m]
        accs = [x["test_accuracy"] for x in mine]
        t99 = [x["to_99"] for x in mine]
        t994 = [x["to_99.4"] for x in mine]
        rows.append({
            "recipe": f"{r} ({RECIPES[r][0]} ep, batch {RECIPES[r][1]})",
            "mode": m,
            "train s (median)": f"{statistics.median(x['seconds'] for x in mine):.3f}",
            "img/s": f"{statistics.median(x['images_per_second'] for x in mine):,.0f}",
            "test acc (min-max)": f"{min(accs):.4f}-{max(accs):.4f}",
            "s to 99%": seconds_to(t99),
            "s to 99.4%": seconds_to(t994),
            "capture s": f"{statistics.median(x['capture_seconds'] for x in mine):.3f}",
        })  # fmt: skip
    print_table(rows)
    save("gpu_speedrun", {"args": vars(args), "runs": runs, "rows": rows}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
