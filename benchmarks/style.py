"""Style transfer on the CPU: Gatys et al. (L-BFGS and Adam) at 256 px, and a fast feed-forward network.

``gatys-*`` runs are ``deeper stylize``'s task (``style``): the image starts as the content photograph
and is optimised against a random-weight ``vgg-features`` (width 16, seed 0); the **held-out** style
loss is measured by a second network it was not optimised against (random, seed 1; for
``gatys-lbfgs-trained-referee`` the ``vgg-features`` trained on the photographs' patches by
``benchmarks/superres.py``).  The table gives the optimisation time, the held-out style loss
relative to the content photograph's (down = its inverse), and the SSIM of the result to the
content photograph.  Targets: at most 3 minutes per 256 px image, held-out style loss down 10x,
content SSIM >= 0.3.

``gatys-lbfgs-style5`` repeats ``gatys-lbfgs`` with a quarter of the style weight (5 instead of
20): less style, more of the content photograph kept.  ``gatys-lbfgs-50`` stops ``gatys-lbfgs``
after half its L-BFGS steps (50).

``fast`` trains a ``style-net`` (``style-fast``) for one style on random 96 px crops of the training
photographs and stylises the held-out ones; its inference is timed on 512x512 images (batch 1, the
median of 10 after 2 warm-ups).  Target: >= 10 img/s.

    flock /tmp/deeper-cpu.lock python benchmarks/style.py --figures docs/images
    python benchmarks/style.py --quick --out /tmp/st
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, merge_runs, print_table, write_result  # noqa: E402

from deeper.train.callbacks import TimeLimit  # noqa: E402

GATYS_BUDGET_S = 180
FEATURES = "runs/bench-superres/features/model.safetensors"
#: configuration -> (task options, training options), fixed before running
CONFIGS: dict[str, tuple[dict, dict]] = {
    "gatys-lbfgs": ({"content": "chelsea", "style": "immunohistochemistry", "solver": "lbfgs", "steps": 50},
                    {"epochs": 2}),
    "gatys-adam": ({"content": "chelsea", "style": "immunohistochemistry", "solver": "adam", "steps": 50},
                   {"epochs": 4}),
    "gatys-lbfgs-style5": ({"content": "chelsea", "style": "immunohistochemistry", "solver": "lbfgs", "steps": 50,
                            "style_weight": 5.0}, {"epochs": 2}),
    "gatys-lbfgs-astronaut-gravel": ({"content": "astronaut", "style": "gravel", "solver": "lbfgs", "steps": 50},
                                     {"epochs": 2}),
    "gatys-lbfgs-trained-referee": ({"content": "chelsea", "style": "immunohistochemistry", "solver": "lbfgs",
                                     "steps": 50, "referee": "@features"}, {"epochs": 2}),
    "gatys-lbfgs-50": ({"content": "chelsea", "style": "immunohistochemistry", "solver": "lbfgs", "steps": 50},
                       {"epochs": 1}),
    "fast": ({"style": "immunohistochemistry", "patch": 96, "patches": 768, "eval_crop": 256},
             {"epochs": 2, "batch_size": 4, "lr": 0.002, "optimizer": "adam", "schedule": "cosine"}),
}  # fmt: skip


def train(name: str, out: Path, quick: bool, features: str) -> dict | None:
    from deeper.train import TrainConfig, fit

    run_dir = out / name
    if (run_dir / "result.json").is_file():
        return json.loads((run_dir / "result.json").read_text())
    task_args, opts = CONFIGS[name]
    task_args = dict(task_args)
    if task_args.get("referee") == "@features":
        if not Path(features).is_file():
            print(f"{name}: skipped ({features} not found: run benchmarks/superres.py --only features)")
            return None
        task_args["referee"] = features
    if name == "fast":
        cfg = dict(task="style-fast", model="style-net", data="photos", label_smoothing=0.0, **opts)
        if quick:
            cfg["epochs"] = 1
            task_args.update(patches=8, eval_crop=64)
    else:
        cfg = dict(task="style", batch_size=1, **opts)
        task_args["size"] = 256
        if quick:
            cfg["epochs"], task_args["steps"], task_args["size"] = 1, 2, 64
    return fit(TrainConfig(**cfg, task_args=task_args, out=str(run_dir), tensorboard=False, progress=False),
               callbacks=[TimeLimit(GATYS_BUDGET_S if name != "fast" else 15 * 60)])  # fmt: skip


@torch.inference_mode()
def fast_rate(run_dir: Path) -> float:
    from deeper.tasks import create_task

    net, _ = create_task("style-fast").load_model(run_dir / "model.safetensors")
    net.eval()
    x = torch.rand(1, 3, 512, 512)
    for _ in range(2):
        net(x)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t)
    return 1 / statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-style", help="folder of the runs")
    p.add_argument("--features", default=FEATURES, help="the trained vgg-features (a referee)")
    p.add_argument("--only", action="append", help="configurations to run (default: all)")
    p.add_argument("--quick", action="store_true", help="a few steps each (a smoke run; not a result)")
    p.add_argument("--figures", metavar="DIR", help="copy the runs' figures here (i2i_style_*.png)")
    p.add_argument("--output", help="JSON result (default: benchmarks/results/style.json)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the 2 cores are shared)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows, results = [], {}
    for name in args.only or list(CONFIGS):
        r = train(name, out, args.quick, args.features)
        if r is None:
            continue
        results[name] = r
        t = r["test"]
        row = {
            "config": name, "solver": CONFIGS[name][0].get("solver", "adam (network)"),
            "steps": r["steps"], "seconds": f"{r['train_seconds']:.0f}",
            "held-out style loss down": f"{1 / t['heldout_style']:.1f}x", "content SSIM": f"{t['content_ssim']:.3f}",
            "style loss (optimised net)": f"{t['style']:.4f}", "512px img/s": "",
        }  # fmt: skip
        if name == "fast":
            rate = fast_rate(Path(r["run_dir"]))
            r["inference_img_per_s_512"] = rate
            row["512px img/s"] = f"{rate:.1f}"
        rows.append(row)
        if args.figures:
            Path(args.figures).mkdir(parents=True, exist_ok=True)
            fig = Path(r["run_dir"]) / ("style_fast.png" if name == "fast" else "style.png")
            if fig.is_file():
                shutil.copyfile(fig, Path(args.figures) / f"i2i_style_{name}.png")
    print_table(rows)
    if not args.quick:  # a partial run (--only) merges into the results file
        path = Path(args.output or RESULTS / "style.json")
        path = write_result(path, merge_runs(path, {
            "benchmark": "style", "torch": torch.__version__,
            "gatys_budget_s": GATYS_BUDGET_S, "configs": {k: list(v) for k, v in CONFIGS.items()}, "rows": rows,
            "results": {k: {"test": v["test"], "train_seconds": v["train_seconds"], "steps": v["steps"],
                            "stopped": v["stopped"], "inference_img_per_s_512": v.get("inference_img_per_s_512")}
                        for k, v in results.items()},
        }, list(CONFIGS)))  # fmt: skip
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
