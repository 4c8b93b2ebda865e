"""Figure 8-16: training throughput against the number of processes (DDP), with scaling efficiency.

Each row runs ``deeper train --nproc N`` (torchrun, gloo on CPUs) with one thread
per process and the same *global* batch, for ``--max-steps`` steps of the fast
recipe; throughput is the run's training images per second (all ranks).  The
1-process row runs with one thread too, so the comparison is 1 core vs N cores.
Scaling efficiency = throughput(N) / (N x throughput(1)).

    python benchmarks/ddp_scaling.py --data-dir ../shared/datasets --nprocs 1,2
    python benchmarks/ddp_scaling.py --device cuda --nprocs 1,2,4,8            # GPUs: one per process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="cpu")
    p.add_argument("--nprocs", default="1,2")
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=2, help="runs per row, alternating rows (best kept)")
    p.add_argument("--plot", default=str(RESULTS / "ddp_scaling.png"))
    p.add_argument("--output")
    args = p.parse_args(argv)

    nprocs = [int(n) for n in args.nprocs.split(",")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    best: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for n in nprocs:
                cmd = [sys.executable, "-m", "deeper", "train", "--data", args.data, "--device", args.device,
                       "--batch-size", str(args.batch_size), "--max-steps", str(args.max_steps), "--no-tensorboard",
                       "--no-progress", "--out", f"{tmp}/n{n}-{rep}", "--json"]  # fmt: skip
                cmd += ["--data-dir", args.data_dir] if args.data_dir else []
                cmd += ["--nproc", str(n)] if n > 1 else []
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"nproc {n} run {rep + 1}: {r['img_per_s']:.0f} img/s", file=sys.stderr, flush=True)
                if n not in best or r["img_per_s"] > best[n]["img_per_s"]:
                    best[n] = {
                        "nproc": n,
                        "img_per_s": r["img_per_s"],
                        "train_seconds": r["train_seconds"],
                        "steps": r["steps"],
                    }
    one = best[nprocs[0]]["img_per_s"] / nprocs[0]
    rows = []
    for n in nprocs:
        r = best[n]
        r["speedup"] = r["img_per_s"] / best[nprocs[0]]["img_per_s"]
        r["efficiency"] = r["img_per_s"] / (n * one)
        rows.append(r)
    print(f"\n{'nproc':>5s} {'img/s':>8s} {'speedup':>8s} {'efficiency':>10s}")
    for r in rows:
        print(f"{r['nproc']:5d} {r['img_per_s']:8.0f} {r['speedup']:7.2f}x {r['efficiency']:9.0%}")
    from deeper.analysis.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["nproc"] for r in rows], [r["img_per_s"] for r in rows], "-o", label="measured")
    ax.plot(nprocs, [n * one for n in nprocs], ":", color="gray", label="linear")
    ax.set_xlabel("processes")
    ax.set_ylabel("training images / s")
    ax.set_title(f"DDP scaling ({args.device}, global batch {args.batch_size})")
    ax.legend()
    save_figure(fig, args.plot)
    print(save("ddp_scaling", {"device": args.device, "batch_size": args.batch_size, "max_steps": args.max_steps,
                               "threads_per_process": 1, "rows": rows, "plot": Path(args.plot).name}, args.output))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
