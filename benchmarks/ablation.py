"""Ablation of the accuracy toolkit on MNIST: augmentation, schedule and ensemble, alone and together.

Four training configurations of DeepConvNet, each trained ``--members`` times
(seeds 0, 1, ...) for the same budget of ``--epochs`` epochs, batch 128:

- ``baseline``: the book's optimizer (Adam, lr 0.001, constant), nothing else;
- ``+augmentation``: the baseline with the MNIST default augmentation
  (rotation, rescale, translation, elastic distortion; ``--augment default``);
- ``+schedule``: the baseline with a one-cycle schedule peaking at lr 0.004;
- ``+augmentation +schedule``: both.

Each configuration gives two rows: the single model (mean and spread of the
members' test accuracies) and the ensemble of its members (mean of their
probabilities).  An ensemble costs ``--members`` times the training of a single
model; the other rows cost the same.  Runs are kept in ``--out`` and finished
members are reused, so an interrupted ablation continues where it stopped.

    python benchmarks/ablation.py --data-dir ../shared/datasets                 # 4 x 3 runs of 6 epochs
    python benchmarks/ablation.py --data digits --epochs 2 --members 2 --out /tmp/abl   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.train import TrainConfig
from deeper.train.ensemble import train_ensemble

HERE = Path(__file__).resolve().parent

BASE = {"optimizer": "adam", "lr": 0.001, "schedule": "constant", "batch_size": 128, "label_smoothing": 0.0}
CONFIGS = {
    "baseline": {},
    "+augmentation": {"augment": "default"},
    "+schedule": {"schedule": "onecycle", "lr": 0.004},
    "+augmentation +schedule": {"augment": "default", "schedule": "onecycle", "lr": 0.004},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist", help="dataset (mnist; digits for a smoke run)")
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--model", default="deep-convnet")
    p.add_argument("--epochs", type=int, default=6, help="the budget of every single model")
    p.add_argument("--members", type=int, default=3, help="models per configuration (the ensemble's size)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    p.add_argument("--out", default="runs/ablation", help="folder of the runs (finished members are reused)")
    p.add_argument("--output", default=str(HERE / "results" / "ablation.json"))
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s): {', '.join(unknown)}")

    started = time.perf_counter()
    configs = []
    for name in names:
        slug = name.strip("+").replace(" +", "+").replace("+", "-") or "baseline"
        cfg = TrainConfig(
            model=args.model, data=args.data, data_dir=args.data_dir, epochs=args.epochs, ensemble=args.members,
            out=str(Path(args.out) / f"{args.data}-{slug}"), tensorboard=False, progress=False,
            **{**BASE, **CONFIGS[name]},
        )  # fmt: skip
        print(f"{name}: {args.members} x {args.epochs} epochs -> {cfg.run.out}", file=sys.stderr, flush=True)
        result = train_ensemble(cfg, resume=True)
        members = [m["test_accuracy"] for m in result["members"]]
        configs.append({
            "name": name,
            "options": {**BASE, **CONFIGS[name]},
            "member_test_accuracy": members,
            "single_mean": statistics.fmean(members),
            "single_std": statistics.stdev(members) if len(members) > 1 else 0.0,
            "ensemble_test_accuracy": result["test_accuracy"],
            "ensemble_vote_test_accuracy": result["vote_test_accuracy"],
            "train_seconds_per_member": statistics.fmean(m["train_seconds"] for m in result["members"]),
            "run_dir": result["run_dir"],
        })  # fmt: skip
    table = []
    for c in configs:
        table.append(
            {"row": c["name"], "kind": "single", "test_accuracy": c["single_mean"], "std": c["single_std"]}
        )
    for c in configs:
        label = "+ensemble" if c["name"] == "baseline" else f"{c['name']} +ensemble"
        table.append(
            {"row": label, "kind": "ensemble", "test_accuracy": c["ensemble_test_accuracy"], "std": None}
        )
    result = {
        "benchmark": "ablation",
        "machine": machine(),
        "torch": torch.__version__,
        "data": args.data,
        "model": args.model,
        "epochs": args.epochs,
        "members": args.members,
        "configs": configs,
        "table": table,
        "seconds": time.perf_counter() - started,
    }
    print(f"\n{args.model} on {args.data}, {args.epochs} epochs per model, ensembles of {args.members}")
    print(f"{'row':38s} {'test accuracy':>13s}  {'error':>6s}")
    for r in table:
        spread = f" +- {r['std']:.4f}" if r["std"] is not None else ""
        print(f"{r['row']:38s} {r['test_accuracy']:13.4f}  {100 * (1 - r['test_accuracy']):5.2f}%{spread}")
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
