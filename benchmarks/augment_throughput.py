"""Training throughput with and without augmentation, side by side (target: at most 25% slower).

Every row trains the same DeepConvNet with the same recipe (``fast`` unless
overridden) on the same batches; only the batch transform differs:

- ``none``: no augmentation (the baseline);
- ``digits``: the MNIST default (rotation, rescale, translation, elastic distortion);
- ``fashion``: the Fashion-MNIST default (flip, crop with padding, random erasing);
- ``all``: every op at once (rotate, scale, translate, elastic, crop, flip,
  brightness, contrast, erase), the most expensive pipeline;
- ``mix``: the digits augmentation plus mixup/cutmix and input noise.

The rows take turns for ``--rounds`` rounds of ``--steps`` steps each, so a
machine whose load changes during the run slows all rows alike; a row's
throughput is the median over its rounds, and ``ratio`` is its throughput over
the baseline's.  The cost of the transform alone (ms per batch, best of 20) is
reported too.

    python benchmarks/augment_throughput.py --data-dir ../shared/datasets
    python benchmarks/augment_throughput.py --data digits --steps 5 --rounds 1   # a smoke run
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

from deeper.train import LoopState, TrainConfig, build_run, train_one_epoch

HERE = Path(__file__).resolve().parent
LIMIT = 0.75  # augmentation may cost at most 25% of the throughput

ROWS = {
    "none": {},
    "digits": {"augment": "digits"},
    "fashion": {"augment": "fashion"},
    "all": {
        "augment": "rotate=10,scale=0.1,translate=0.08,elastic=20,crop=2,flip=0.5,brightness=0.2,contrast=0.2,erase=0.5"
    },
    "mix": {"augment": "digits", "mixup": 0.2, "cutmix": 1.0, "input_noise": 0.02},
}


def transform_ms(run, repeats: int = 20) -> float:
    t = run.train_loader.transform
    if t is None:
        return 0.0
    x, y = next(iter(type(run.train_loader)(run.train_loader.dataset, run.cfg.optim.batch_size)))
    if run.train_loader.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        t(x, y)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist", help="dataset (mnist, or digits for a smoke run)")
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--recipe", default="fast", help="deeper recipe the rows share")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of: {', '.join(ROWS)}")
    p.add_argument("--steps", type=int, default=40, help="training steps per row and round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (rows take turns each round)")
    p.add_argument("--output", default=str(HERE / "results" / "augment_throughput.json"))
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}")
    if "none" not in names:
        names.insert(0, "none")

    runs, states, samples = {}, {}, {n: [] for n in names}
    for name in names:
        cfg = TrainConfig(data=args.data, recipe=args.recipe, data_dir=args.data_dir, device="cpu",
                          tensorboard=False, progress=False, **ROWS[name]).resolved()  # fmt: skip
        runs[name], states[name] = build_run(cfg), LoopState()
        runs[name].train_loader.set_epoch(0)
    for r in range(args.rounds):
        for name in names:
            run, state = runs[name], states[name]
            before_s, before_n = state.train_seconds, state.train_samples
            target = state.global_step + args.steps
            while state.global_step < target:
                run.train_loader.set_epoch(state.epoch, skip_batches=state.step_in_epoch)
                train_one_epoch(run.model, run.task, run.train_loader, stepper=run.stepper, state=state,
                                on_step=lambda s, t=target: s.global_step >= t)  # fmt: skip
                if state.step_in_epoch >= len(run.train_loader):
                    state.epoch, state.step_in_epoch, state.epoch_sums, state.epoch_count = (
                        state.epoch + 1,
                        0,
                        {},
                        0,
                    )
            rate = (state.train_samples - before_n) / (state.train_seconds - before_s)
            samples[name].append(rate)
            print(f"  round {r + 1}/{args.rounds} {name:8s} {rate:7.0f} img/s", file=sys.stderr, flush=True)
    base = statistics.median(samples["none"])
    rows = []
    for name in names:
        rate = statistics.median(samples[name])
        rows.append({
            "name": name,
            "options": ROWS[name],
            "img_per_s": rate,
            "img_per_s_rounds": samples[name],
            "ratio": rate / base,
            "slowdown_percent": 100 * (1 - rate / base),
            "transform_ms_per_batch": transform_ms(runs[name]),
            "within_limit": rate / base >= LIMIT,
        })  # fmt: skip
    cfg = runs["none"].cfg
    result = {
        "benchmark": "augment_throughput",
        "machine": machine(),
        "torch": torch.__version__,
        "data": args.data,
        "model": cfg.model,
        "batch_size": cfg.optim.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "limit_ratio": LIMIT,
        "rows": rows,
    }
    print(f"\n{'row':8s} {'img/s':>8s} {'ratio':>6s} {'slower':>7s} {'aug ms/batch':>13s}")
    for r in rows:
        print(f"{r['name']:8s} {r['img_per_s']:8.0f} {r['ratio']:6.2f} {r['slowdown_percent']:6.1f}% "
              f"{r['transform_ms_per_batch']:13.2f}")  # fmt: skip
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
