"""The channels-last memory layout in the image-to-image and GAN tasks: training steps per second, on and off.

Side by side in one run: each configuration (:data:`CONFIGS`, the networks and patch sizes of the
superres, restore and generation benchmarks) trains ``--steps`` steps through the engine twice per
round, with ``--channels-last`` and with ``--no-channels-last``, in alternating order over
``--rounds`` rounds so that a drifting machine load hits both alike, on as many torch threads as its
benchmark trains with.  The figure is the median time
between two training steps after ``WARMUP`` steps (evaluation excluded), the median over rounds; the
table gives steps per second each way and the ratio.

    python benchmarks/layout_speed.py              # about 3 minutes of a 2-core CPU
    python benchmarks/layout_speed.py --steps 8 --rounds 1 --output /tmp/l.json   # smoke run
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
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

from deeper.train import Callback, TrainConfig, fit  # noqa: E402

WARMUP = 5
#: configuration -> (torch threads, as its benchmark trains it: the image-to-image ones on one, the GANs on both;
#: training options: the benchmarks' networks and patches, few patches, a small evaluation)
CONFIGS: dict[str, tuple[int, dict]] = {
    "srcnn x2 (superres)": (1, dict(
        task="superres", data="photos", model="srcnn", model_kwargs={"residual": True}, batch_size=32,
        task_args={"scale": 2, "patch": 32, "figures": False, "eval_crop": 48},
    )),
    "espcn x3 (superres)": (1, dict(
        task="superres", data="photos", model="espcn", model_kwargs={}, batch_size=32,
        task_args={"scale": 3, "patch": 48, "figures": False, "eval_crop": 48},
    )),
    "restore-unet, denoising (restore)": (1, dict(
        task="restore", data="photos", model="restore-unet", model_kwargs={"width": 16, "depth": 3}, batch_size=16,
        task_args={"damage": "noise", "sigma": 25.0, "patch": 64, "figures": False, "eval_crop": 64},
    )),
    "conditional dcgan (generate)": (2, dict(
        task="generate", data="digits", model="dcgan", model_kwargs={"width": 32, "d_width": 32, "latent": 64},
        batch_size=64, lr=2e-4, task_args={"conditional": True, "figures": False, "val_samples": 64,
                                           "test_samples": 64},
    )),
}  # fmt: skip


class Clock(Callback):
    name = "clock"

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, run, state):
        self.times.append(time.perf_counter())


def step_seconds(name: str, channels_last: bool, steps: int) -> float:
    """The median seconds between two training steps of one run of ``name`` (after the warm-up)."""
    opts = dict(CONFIGS[name][1])
    task_args = dict(opts.pop("task_args"))
    per_epoch = (steps + WARMUP + 1) * opts["batch_size"]
    if opts["task"] == "generate":
        opts["subset"] = per_epoch
    else:
        task_args["patches"] = per_epoch
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(**opts, task_args=task_args, epochs=1, val_size=0, channels_last=channels_last,
                          out=str(Path(out) / "run"), tensorboard=False, progress=False, optimizer="adam")  # fmt: skip
        fit(cfg, callbacks=[clock], log=lambda m: None)
    gaps = [b - a for a, b in zip(clock.times[WARMUP:], clock.times[WARMUP + 1 :])]
    return statistics.median(gaps)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed training steps per run [30]")
    p.add_argument("--rounds", type=int, default=3, help="rounds of both layouts per configuration [3]")
    p.add_argument("--output", default=str(RESULTS / "layout_speed.json"))
    args = p.parse_args(argv)
    rows, results = [], {}
    for name in CONFIGS:
        threads, opts = CONFIGS[name]
        torch.set_num_threads(threads)
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for flag in (True, False) if r % 2 == 0 else (False, True):
                times[flag].append(step_seconds(name, flag, args.steps))
        on, off = statistics.median(times[True]), statistics.median(times[False])
        results[name] = {"threads": threads, "channels_last_steps_per_s": 1 / on, "nchw_steps_per_s": 1 / off, "speedup": off / on,
                         "step_seconds": {"channels_last": times[True], "nchw": times[False]}}  # fmt: skip
        rows.append({"configuration": name, "batch": opts["batch_size"], "threads": threads,
                     "channels-last steps/s": f"{1 / on:.1f}", "NCHW steps/s": f"{1 / off:.1f}",
                     "speed-up": f"{off / on:.2f}x"})  # fmt: skip
        print(f"{name}: {1 / on:.1f} against {1 / off:.1f} steps/s", flush=True)
    print_table(rows)
    print(f"machine: {machine()}")
    path = write_result(args.output, {
        "benchmark": "layout_speed", "machine": machine(), "torch": torch.__version__,
        "steps": args.steps, "rounds": args.rounds, "rows": rows, "results": results,
    })  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
