"""Mixed-precision training throughput: float32 vs bf16 autocast (vs fp16 on a GPU), side by side.

Both rows build the same run (model, data, recipe, channels-last as deeper picks)
and train in alternating chunks of ``--chunk`` steps, so load on a shared machine
hits them alike; throughput is images per second of training steps.  ``--full``
then trains each row through the whole recipe and reports test accuracy.

    python benchmarks/amp_training.py --data-dir ../shared/datasets              # throughput
    python benchmarks/amp_training.py --data-dir ../shared/datasets --full       # + accuracy after the recipe
    python benchmarks/amp_training.py --device cuda --rows off,bf16,fp16         # on a GPU
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import save  # noqa: E402

from deeper.train import LoopState, TrainConfig, build_run, fit  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rows", default="off,bf16", help="comma-separated --amp values")
    p.add_argument("--chunk", type=int, default=10, help="steps per turn")
    p.add_argument("--rounds", type=int, default=8, help="turns per row")
    p.add_argument("--full", action="store_true", help="also train each row through the recipe (accuracy)")
    p.add_argument("--output")
    args = p.parse_args(argv)

    rows = args.rows.split(",")
    runs = {}
    for amp in rows:
        cfg = TrainConfig(
            data=args.data,
            data_dir=args.data_dir,
            device=args.device,
            amp=amp,
            tensorboard=False,
            progress=False,
        )
        runs[amp] = build_run(cfg.resolved())
    its = {a: itertools.cycle(r.train_loader) for a, r in runs.items()}
    stats = {a: [0.0, 0] for a in rows}
    for rnd in range(args.rounds + 1):  # round 0 warms up
        for a in rows:
            run, state = runs[a], LoopState()
            t = time.perf_counter()
            for _ in range(args.chunk):
                out = run.stepper.step(run.task, {"net": run.model}, next(its[a]), state)
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            if rnd:
                stats[a][0] += time.perf_counter() - t
                stats[a][1] += args.chunk * out.count
    base = stats[rows[0]][1] / stats[rows[0]][0]
    result_rows = []
    for a in rows:
        ips = stats[a][1] / stats[a][0]
        result_rows.append({"amp": a, "img_per_s": ips, "vs_float32": ips / base})
    if args.full:
        for r in result_rows:
            res = fit(TrainConfig(data=args.data, data_dir=args.data_dir, device=args.device, amp=r["amp"],
                                  tensorboard=False, progress=False, out=f"runs/bench-amp-{r['amp']}-{int(time.time())}"))  # fmt: skip
            r.update(
                test_accuracy=res["test_accuracy"],
                recipe_img_per_s=res["img_per_s"],
                train_seconds=res["train_seconds"],
            )
    print(f"\n{'amp':6s} {'img/s':>8s} {'vs f32':>7s} {'test acc':>9s}")
    for r in result_rows:
        acc = f"{r['test_accuracy']:.4f}" if "test_accuracy" in r else "-"
        print(f"{r['amp']:6s} {r['img_per_s']:8.0f} {r['vs_float32']:6.2f}x {acc:>9s}")
    dev = str(next(iter(runs.values())).device)
    print(
        save(
            "amp_training",
            {"device": dev, "chunk": args.chunk, "rounds": args.rounds, "rows": result_rows},
            args.output,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
