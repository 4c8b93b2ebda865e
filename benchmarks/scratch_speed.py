"""Training throughput of the from-scratch NumPy engine vs the book's algorithms and the torch engine.

Every row trains the chapter's DeepConvNet (batch 100, Adam lr 0.001) for full
training steps: forward, loss, backward and the optimizer update, on the same
batches of real digit images (scikit-learn's ``digits``, resized to 28x28 like
MNIST; the speed does not depend on which images they are).

- ``book-float64``: the book's algorithms (``benchmarks/book_style.py``): float64,
  NCHW im2col/col2im, pooling by im2col + argmax;
- ``numpy-float64`` / ``numpy-float32`` (/ ``numpy-float16``): deeper's scratch engine
  (``deeper train --engine numpy --dtype ...``);
- ``torch``: deeper's torch engine on the CPU (float32, channels-last), as ``deeper train``.

The rows take turns: each round runs ``--steps`` steps of every row, and a row's
figure is its median over the rounds, so a machine shared with other work slows
every row alike and the ratios hold.  The ratio to the book is given both
against the book row measured here and against the 160 img/s the book's own code
reaches on a quiet 2-core machine (the figure of issue 5).

    python benchmarks/scratch_speed.py                       # about a minute on 2 cores
    python benchmarks/scratch_speed.py --rounds 9 --json
    python benchmarks/scratch_speed.py --rows numpy-float32,torch --threads 1

Writes ``benchmarks/results/scratch_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_result  # noqa: E402
from book_style import BookDeepConvNet  # noqa: E402

from deeper.data import load_dataset  # noqa: E402

HERE = Path(__file__).resolve().parent
BOOK_IMG_S = 160.0  # the book's NumPy DeepConvNet, float64, batch 100, Adam, quiet 2-core CPU (issue 5)
ROWS = ("book-float64", "numpy-float64", "numpy-float32", "numpy-float16", "torch")
DEFAULT_ROWS = ("book-float64", "numpy-float64", "numpy-float32", "torch")


def batches(batch_size: int, n_batches: int):
    ds = load_dataset("digits", "train")
    x = ds.images.numpy().astype(np.float64) / 255.0
    y = ds.labels.numpy()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_batches):
        idx = rng.choice(len(x), batch_size, replace=False)
        out.append((x[idx], y[idx]))
    return out


def make_row(name: str, data):
    """A function running one training step on batch ``i``."""
    if name == "book-float64":
        net = BookDeepConvNet(seed=0)
        return lambda i: net.train_step(*data[i % len(data)])
    if name.startswith("numpy-"):
        from deeper.scratch import create_net, create_optimizer
        from deeper.scratch.trainer import train_step

        dtype = name.split("-", 1)[1]
        net = create_net("deep-convnet", dtype=dtype, seed=0)
        opt = create_optimizer("adam", lr=0.001)
        cast = [(np.ascontiguousarray(x, dtype=dtype), t) for x, t in data]
        return lambda i: train_step(net, opt, *cast[i % len(cast)])
    if name == "torch":
        from deeper.models import create_model
        from deeper.tasks.classify import ClassificationTask
        from deeper.train import LoopState, Stepper

        torch.manual_seed(0)
        model = create_model("deep-convnet").to(memory_format=torch.channels_last).train()
        updater = Stepper.single(torch.optim.Adam(model.parameters(), lr=0.001))
        task, state = ClassificationTask(), LoopState()
        cast = [
            (torch.from_numpy(x).float().contiguous(memory_format=torch.channels_last), torch.from_numpy(t))
            for x, t in data
        ]
        return lambda i: updater.step(task, {"net": model}, cast[i % len(cast)], state)
    raise SystemExit(f"unknown row {name!r} (choose from {', '.join(ROWS)})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma-separated rows ({', '.join(ROWS)})")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5, help="rounds of turns (the median is reported)")
    p.add_argument("--steps", type=int, default=4, help="training steps per row and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per row first")
    p.add_argument("--threads", type=int, help="threads for torch and for NumPy's BLAS [all cores]")
    p.add_argument("--output", default=str(HERE / "results" / "scratch_speed.json"), help="JSON results file")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    data = batches(args.batch_size, 8)  # loads every library first, so the limit below reaches them all
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    steps = {name: make_row(name, data) for name in names}
    for step in steps.values():
        for i in range(args.warmup):
            step(i)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for i in range(args.steps):
                step(i)
            per_round[name].append(args.steps * args.batch_size / (time.perf_counter() - t0))
        print(
            f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in per_round.items()),
            file=sys.stderr,
            flush=True,
        )
    img_s = {name: statistics.median(v) for name, v in per_round.items()}
    book = img_s.get("book-float64")
    blas = [  # NumPy's own BLAS (scipy may bring another one, which these rows do not use)
        f"{i.get('internal_api')} {i.get('num_threads')} threads"
        for i in threadpool_info()
        if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")
    ]
    result = {
        "benchmark": "scratch_speed",
        "machine": f"{machine()}, NumPy's BLAS: {'; '.join(blas) or 'unknown'}",
        "numpy": np.__version__,
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "book_reference_img_s": BOOK_IMG_S,
        "rows": [
            {
                "name": name,
                "img_per_s": img_s[name],
                "img_per_s_rounds": per_round[name],
                "vs_book_160": img_s[name] / BOOK_IMG_S,
                "vs_book_measured": img_s[name] / book if book else None,
            }
            for name in names
        ],
    }
    for name in names:
        key = name.replace("-", "_").replace("book_float64", "book_style_float64")
        result[f"{key}_img_s"] = img_s[name]
    print(f"\n{'row':14s} {'img/s':>8s} {'x book 160':>10s} {'x book here':>11s}")
    for row in result["rows"]:
        here = f"{row['vs_book_measured']:.2f}x" if row["vs_book_measured"] else "-"
        print(f"{row['name']:14s} {row['img_per_s']:8.0f} {row['vs_book_160']:9.2f}x {here:>11s}")
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
