"""The recipe acceptance figures: test accuracy of DeepConvNet on MNIST per recipe and seed.

Runs ``deeper train`` (through :func:`deeper.train.fit`, the same code path) for:

- the ``fast`` recipe (the default) with seeds 0, 1, 2, and their mean;
- the ``fast`` recipe with ``--epochs 1`` (its schedule fitted to one epoch);
- the ``book`` recipe (Adam 0.001, batch 100, 20 epochs).

    python benchmarks/recipes.py --data-dir ../shared/datasets           # about 15 minutes on 2 cores
    python benchmarks/recipes.py --only fast-1epoch --json

Writes ``benchmarks/results/recipes.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent

RUNS = {
    "fast-seed0": dict(recipe="fast", seed=0),
    "fast-seed1": dict(recipe="fast", seed=1),
    "fast-seed2": dict(recipe="fast", seed=2),
    "fast-1epoch": dict(recipe="fast", epochs=1, seed=0),
    "book": dict(recipe="book", seed=0),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(RUNS)}")
    p.add_argument("--output", default=str(HERE / "results" / "recipes.json"))
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    p.add_argument("--keep", metavar="DIR", help="keep the runs (weights, logs) in DIR/NAME [discarded]")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        p.error(f"unknown run(s): {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        for name in names:
            cfg = TrainConfig(
                data="mnist",
                data_dir=args.data_dir,
                device="cpu",
                tensorboard=False,
                out=str(Path(tmp) / name),
                **RUNS[name],
            )
            print(f"== {name}", file=sys.stderr, flush=True)
            r = fit(cfg)
            resolved = cfg.resolved()
            rows.append(
                {
                    "name": name,
                    "test_accuracy": r["test_accuracy"],
                    "val_accuracy": r["val_accuracy"],
                    "epochs": r["epochs"],
                    "train_seconds": r["train_seconds"],
                    "img_per_s": r["img_per_s"],
                    "config": {
                        k: getattr(resolved, k)
                        for k in (
                            "recipe",
                            "optimizer",
                            "lr",
                            "batch_size",
                            "epochs",
                            "schedule",
                            "label_smoothing",
                            "seed",
                        )
                    },
                }
            )
    fast = [r["test_accuracy"] for r in rows if r["name"].startswith("fast-seed")]
    summary = {"fast_mean_test_accuracy": statistics.mean(fast) if fast else None, "fast_seeds": len(fast)}
    result = {
        "benchmark": "recipes",
        "machine": machine(),
        "torch": torch.__version__,
        "rows": rows,
        **summary,
    }
    print(f"\n{'run':12s} {'test acc':>9s} {'val acc':>8s} {'epochs':>6s} {'train s':>8s} {'img/s':>7s}")
    for r in rows:
        print(
            f"{r['name']:12s} {r['test_accuracy']:9.4f} {r['val_accuracy'] or 0:8.4f} {r['epochs']:6d} "
            f"{r['train_seconds']:8.1f} {r['img_per_s']:7.0f}"
        )
    if fast:
        print(f"fast recipe, mean of {len(fast)} seeds: {summary['fast_mean_test_accuracy']:.4f}")
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
