"""Scene generation speed: the target is 10,000 ``scenes-det`` scenes in at most 10 s on a 2-core CPU.

Each row generates one preset's training scenes from MNIST in memory (no cache: the
digits are loaded once, outside the timing) with one torch thread, ``--repeats`` times;
``seconds`` is the median, ``best_s`` the fastest.  A generated split is everything the
dataset holds: images, both masks, boxes, labels and the six captions of every scene.
Then ``load_scenes`` writes the split into a temporary cache (``write_s``: content hash,
generation, safetensors + JSON written atomically) and reads it back (``read_s``: key,
SHA-256 check and load); ``--no-cache`` skips that.

    python benchmarks/scenes.py --data-dir ../shared/datasets
    python benchmarks/scenes.py --presets scenes-det --scenes 2000 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_result  # noqa: E402

from deeper.data import load_dataset  # noqa: E402
from deeper.data.registry import DataSources  # noqa: E402
from deeper.data.scenes import PRESETS, generate_scenes, load_scenes  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET = ("scenes-det", 10_000, 10.0)  # preset, scenes, at most this many seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    p.add_argument("--scenes", type=int, help="scenes per preset (default: the preset's training count)")
    p.add_argument("--repeats", type=int, default=3, help="generations per preset (the median is reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--no-cache", action="store_true", help="skip the cache write/read timing")
    p.add_argument("--output", default=str(HERE / "results" / "scenes.json"))
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)
    names = args.presets.split(",")
    if unknown := [n for n in names if n not in PRESETS]:
        p.error(f"unknown preset(s) {', '.join(unknown)} (known: {', '.join(PRESETS)})")
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    digits = load_dataset("mnist", "train", data_dir=args.data_dir)
    load_s = time.perf_counter() - start
    rows = []
    for name in names:
        n = args.scenes or PRESETS[name].train
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ds = generate_scenes(name, digits, "train", n=n, seed=0)
            times.append(time.perf_counter() - start)
            objects = int(ds.counts.sum())
            del ds
        seconds = statistics.median(times)
        row = {"preset": name, "scenes": n, "seconds": round(seconds, 3), "scenes/s": round(n / seconds),
               "best_s": round(min(times), 3), "digits": objects}  # fmt: skip
        if not args.no_cache:
            with tempfile.TemporaryDirectory(prefix="scenes-bench-") as tmp:
                sources = DataSources(cache_dir=Path(tmp), download=False)
                for key in ("write_s", "read_s"):
                    start = time.perf_counter()
                    load_scenes(name, "train", n=n, seed=0, sources=sources, digits=digits)
                    row[key] = round(time.perf_counter() - start, 3)
                row["cache_mb"] = round(sum(f.stat().st_size for f in Path(tmp, "scenes").iterdir()) / 2**20)
        rows.append(row)
    print_table(rows)
    result = {
        "benchmark": "scenes",
        "machine": machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "mnist_load_s": round(load_s, 3),
        "rows": rows,
    }
    preset, n, limit = TARGET
    row = next((r for r in rows if r["preset"] == preset and r["scenes"] == n), None)
    if row is not None:
        result["target"] = {
            "preset": preset,
            "scenes": n,
            "max_seconds": limit,
            "met": row["seconds"] <= limit,
        }
        print(f"target: {n} {preset} scenes in <= {limit:g} s: {row['seconds']:.2f} s", file=sys.stderr)
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
