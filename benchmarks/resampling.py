"""Seeds, bagging and boosting on MNIST: three ways to make an ensemble's members differ.

The notes (004) name bootstrapping, bagging and boosting.  Each configuration
trains ``--members`` DeepConvNets with deeper's default recipe (``fast``: 6 epochs,
one-cycle Adam, label smoothing), seeds 0, 1, ...:

- ``seeds``: every member on the whole training split (they differ only by seed);
- ``bagging``: each on its own bootstrap resample (``--bootstrap``);
- ``boosting``, ``boosting-0.3``: each after the first on a resample weighted towards
  the training images the member before got wrong (``--boost``, SAMME), at the full
  rate and at a shrinkage of 0.3 (``--boost-rate 0.3``).

Rows: each member, their mean, the ensemble (mean of probabilities and vote) and,
for boosting, its weighted vote and the members' training errors and vote weights.
Runs are kept in ``--out`` and finished members are reused.

    python benchmarks/resampling.py --data-dir ../shared/datasets        # 4 x 4 runs of 6 epochs, ~45 min on 2 cores
    python benchmarks/resampling.py --data digits --epochs 2 --members 2 --out /tmp/rs   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

from deeper.train import TrainConfig  # noqa: E402
from deeper.train.ensemble import train_ensemble  # noqa: E402

#: configuration -> options of `deeper train --ensemble K`, fixed before any was run
CONFIGS: dict[str, dict] = {
    "seeds": {},
    "bagging": {"bootstrap": True},
    "boosting": {"boost": True},
    "boosting-0.3": {"boost": True, "boost_rate": 0.3},
}


def row(name: str, result: dict) -> dict:
    """The benchmark's record of one trained ensemble (``train_ensemble``'s result)."""
    accs = [m["test_accuracy"] for m in result["members"]]
    return {
        "config": name, "options": CONFIGS[name], "members": accs,
        "single_mean": statistics.fmean(accs), "ensemble_mean": result["test_accuracy"],
        "ensemble_vote": result["vote_test_accuracy"],
        "boost_vote": result.get("boost_test_accuracy"), "boost_errors": result.get("boost_errors"),
        "boost_alphas": result.get("boost_alphas"),
        "train_seconds_per_member": statistics.fmean(m["train_seconds"] for m in result["members"]),
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist", help="dataset [mnist] (digits for a smoke run)")
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per member [6, the fast recipe's]")
    p.add_argument("--members", type=int, default=4, help="members per ensemble [4]")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    p.add_argument("--out", default="runs/resampling", help="folder of the runs [runs/resampling]")
    p.add_argument("--output", default=str(RESULTS / "resampling.json"))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    if unknown := [n for n in names if n not in CONFIGS]:
        p.error(f"unknown configuration(s): {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    if args.members < 2:
        p.error("--members must be at least 2 (an ensemble)")

    started = time.perf_counter()
    records, table = [], []
    for name in names:
        cfg = TrainConfig(
            data=args.data, data_dir=args.data_dir, epochs=args.epochs, ensemble=args.members,
            out=str(Path(args.out) / f"{args.data}-{name}"), tensorboard=False, progress=False, **CONFIGS[name],
        )  # fmt: skip
        print(f"{name}: {args.members} x {args.epochs} epochs -> {cfg.run.out}", file=sys.stderr, flush=True)
        r = row(name, train_ensemble(cfg, resume=True))
        records.append(r)
        table.append({
            "configuration": name, "members": " ".join(f"{a:.4f}" for a in r["members"]),
            "member mean": f"{r['single_mean']:.4f}", "ensemble mean / vote": f"{r['ensemble_mean']:.4f} / "
            f"{r['ensemble_vote']:.4f}",
            "boosted (weighted vote)": f"{r['boost_vote']:.4f}" if r["boost_vote"] is not None else "",
            "training errors / vote weights": (
                ", ".join(f"{e:.4f}/{a:.2f}" for e, a in zip(r["boost_errors"], r["boost_alphas"]))
                if r["boost_alphas"] else ""
            ),
        })  # fmt: skip
    print_table(table)
    write_result(args.output, {
        "benchmark": "resampling", "machine": machine(), "data": args.data, "epochs": args.epochs, "members": args.members,
        "results": records, "seconds": time.perf_counter() - started,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
