"""What a moving average of the weights (``deeper train --ema DECAY``) buys on MNIST.

A run with ``--ema`` trains exactly as one without it (the average is only read for
evaluation), and its ``result.json`` holds both test accuracies: of the average
(``test_accuracy``) and of the raw last weights (``test_accuracy_raw``).  So each run
is a paired comparison with no noise from the seed, and the table gives both for
every run and the mean gain per configuration:

- ``digits-member``: the MNIST ensemble member of ``benchmarks/accuracy.py``
  (DeepConvNet + batch norm, dropout 0.25, the digits augmentation, 20 epochs of the
  fast recipe: one-cycle Adam, whose rate ends near zero);
- ``book``: the chapter's own recipe (the book network, Adam 0.001 at a constant
  rate, batch 100, 20 epochs), where the last weights carry the most noise.

Members run as ``deeper train`` processes, ``--jobs`` at a time, in ``--out``;
finished runs are reused.

    python benchmarks/ema.py --data-dir ../shared/datasets --jobs 2             # 4 runs, ~35 min on 2 cores
    python benchmarks/ema.py --data digits --epochs 2 --out /tmp/ema --jobs 2   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402
from accuracy import DIGITS, add_member_options, train_argv, train_members  # noqa: E402

#: configuration -> (train options, seeds), fixed before any was run
CONFIGS: dict[str, tuple[dict, list[int]]] = {
    "digits-member": ({**DIGITS, "ema": 0.999}, [0, 1]),
    "book": ({"recipe": "book", "ema": 0.999}, [0, 1]),
}


def summarize(name: str, results: list[dict]) -> dict:
    raw = [r["test_accuracy_raw"] for r in results]
    ema = [r["test_accuracy"] for r in results]
    return {
        "config": name, "runs": len(results), "raw": raw, "ema": ema,
        "raw_mean": statistics.fmean(raw), "ema_mean": statistics.fmean(ema),
        "gain_mean": statistics.fmean(e - r for e, r in zip(ema, raw)),
        "train_seconds": [r["train_seconds"] for r in results],
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist", help="dataset [mnist] (digits for a smoke run)")
    p.add_argument("--epochs", type=int, help="override every configuration's epochs (smoke runs)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    add_member_options(p)
    p.add_argument("--out", default="runs/ema", help="folder of the runs [runs/ema]")
    p.add_argument("--output", default=str(RESULTS / "ema.json"))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    if unknown := [n for n in names if n not in CONFIGS]:
        p.error(f"unknown configuration(s): {', '.join(unknown)} (known: {', '.join(CONFIGS)})")

    started = time.perf_counter()
    plan = [(n, s, Path(args.out) / f"{n}-s{s}") for n in names for s in CONFIGS[n][1]]
    todo = [
        (train_argv(args.data, CONFIGS[n][0], s, out, args), out)
        for n, s, out in plan
        if not (out / "result.json").is_file()
    ]
    failed = train_members(todo, args.jobs, None)
    summaries, rows = [], []
    for name in names:
        done = [out for n, _, out in plan if n == name and (out / "result.json").is_file()]
        if not done:
            continue
        s = summarize(name, [json.loads((out / "result.json").read_text()) for out in done])
        summaries.append(s)
        rows.append({
            "configuration": name, "runs": s["runs"],
            "raw last weights": " ".join(f"{a:.4f}" for a in s["raw"]) + f" (mean {s['raw_mean']:.4f})",
            "EMA 0.999": " ".join(f"{a:.4f}" for a in s["ema"]) + f" (mean {s['ema_mean']:.4f})",
            "gain (points)": f"{100 * s['gain_mean']:+.3f}",
            "minutes per run": f"{statistics.fmean(s['train_seconds']) / 60:.1f}",
        })  # fmt: skip
    print_table(rows)
    write_result(args.output, {
        "benchmark": "ema", "machine": machine(), "data": args.data,
        "configs": {n: {"options": o, "seeds": s} for n, (o, s) in CONFIGS.items() if n in names},
        "results": summaries, "failed": failed, "seconds": time.perf_counter() - started,
    })  # fmt: skip
    for f in failed:
        print(f"ema: run failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
