"""What the task-agnostic engine costs: default MNIST training, this code against an earlier commit.

Side by side in one run: a git worktree of ``--baseline`` (default: the last commit
before the engine took tasks, named parts and torchmetrics) and the working tree
each train the default configuration (DeepConvNet, ``fast`` recipe, MNIST) for
``--steps`` steps in a fresh process, rounds alternating A, B, A, B so that a
drifting machine load hits both alike.  Two figures per round: the engine's own
throughput (training images per second of training time, as ``result.json``
reports it) and the batch divided by the median time between two steps (less
sensitive to a neighbour's bursts on a shared machine); the medians over rounds
are compared.

    DEEPER_DATA=../shared/datasets .venv/bin/python benchmarks/engine_overhead.py    # ~8 min

On a shared VM the spread between rounds (and processes) is large; fixing glibc's
allocator thresholds (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) removes
one source of it, the process-to-process difference in which big tensors are
mapped afresh (with page faults) on every step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASELINE = "a37184d"  # README: clean-clone CI time of the final code (before this engine)

CHILD = """
import hashlib, json, statistics, sys, tempfile, time
from safetensors.torch import load_file
from deeper.train import Callback, TrainConfig, fit

class Clock(Callback):
    name = "clock"
    def __init__(self):
        self.times = []
    def on_step_end(self, run, state):
        self.times.append(time.perf_counter())

clock = Clock()
out = tempfile.mkdtemp()
r = fit(TrainConfig(max_steps={steps}, tensorboard=False, progress=False, out=out + "/run", seed={seed}),
        callbacks=[clock], log=lambda m: None)
steps = [b - a for a, b in zip(clock.times[10:], clock.times[11:])]  # after 10 warm-up steps
w = load_file(r["weights"])
digest = hashlib.sha256(b"".join(w[k].numpy().tobytes() for k in sorted(w))).hexdigest()[:16]
print(json.dumps({{"img_per_s": r["img_per_s"], "median_step_img_per_s": 128 / statistics.median(steps),
                  "steps": r["steps"], "train_seconds": r["train_seconds"],
                  "test_accuracy": r["test_accuracy"], "weights_sha256": digest}}))
"""


def one_round(src: Path, steps: int, seed: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run(
        [sys.executable, "-c", CHILD.format(steps=steps, seed=seed)],
        capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=1800,
    )  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(f"a round in {src} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    ap.add_argument("--steps", type=int, default=300, help="training steps per round (430 make an epoch)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each side")
    ap.add_argument("-o", "--output", default=str(RESULTS / "engine_overhead.json"))
    args = ap.parse_args(argv)
    if "DEEPER_DATA" not in os.environ:
        raise SystemExit("set DEEPER_DATA to the offline datasets folder (MNIST)")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip
        try:
            sides = {f"baseline {args.baseline}": tree / "src", "this tree": REPO / "src"}
            runs: dict[str, list[dict]] = {k: [] for k in sides}
            for r in range(args.rounds):
                for name, src in sides.items():
                    runs[name].append(one_round(src, args.steps, seed=0))
                    x = runs[name][-1]
                    print(
                        f"round {r + 1}/{args.rounds} {name}: {x['img_per_s']:,.0f} img/s, "
                        f"median step {x['median_step_img_per_s']:,.0f} img/s",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    base_name = next(iter(sides))
    base = statistics.median(x["img_per_s"] for x in runs[base_name])
    base_step = statistics.median(x["median_step_img_per_s"] for x in runs[base_name])
    rows = []
    for name, rs in runs.items():
        med = statistics.median(x["img_per_s"] for x in rs)
        med_step = statistics.median(x["median_step_img_per_s"] for x in rs)
        rows.append(
            {
                "code": name,
                "median img/s": f"{med:,.0f}",
                "rounds img/s": ", ".join(f"{x['img_per_s']:,.0f}" for x in rs),
                "vs baseline": f"{med / base:.3f}x",
                "median-step img/s": f"{med_step:,.0f}",
                "vs baseline (steps)": f"{med_step / base_step:.3f}x",
                "weights": ", ".join(sorted({x["weights_sha256"] for x in rs})),
                "test acc": ", ".join(sorted({f"{x['test_accuracy']:.4f}" for x in rs})),
            }
        )
    print_table(rows)
    write_result(
        args.output,
        {
            "benchmark": "engine_overhead",
            "machine": machine(),
            "baseline": args.baseline,
            # glibc's allocator settings, when set: they change how often big tensors are mmap'ed afresh
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            "steps": args.steps,
            "rounds": runs,
            "median_img_per_s": {k: statistics.median(x["img_per_s"] for x in v) for k, v in runs.items()},
            "ratio": statistics.median(x["img_per_s"] for x in runs["this tree"]) / base,
            "ratio_median_step": statistics.median(x["median_step_img_per_s"] for x in runs["this tree"])
            / base_step,
            "same_weights": len({x["weights_sha256"] for v in runs.values() for x in v}) == 1,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
