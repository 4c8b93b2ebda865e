"""Object detection from R-CNN to YOLO and SSD on ``scenes-det``: mAP, latency and training time per model.

Each model trains through ``deeper train --task detect`` with the configuration below
(fixed before running), at most ``--minutes`` (15) of training on this machine: a run
still training at that point stops there and is scored as it is (``stopped`` says so).
Every model is scored on the same test scenes (the 2,000 of the ``scenes-det`` test split;
``test_scenes`` in a configuration would change that), and timed at batch size 1 on the
first 50 of them, all its work included (selective search for R-CNN, SPPNet and Fast
R-CNN).  The R-CNN family trains on the first 4,000 training scenes (their selective
search is computed once, cached, and not counted as training time: ``proposal_s`` says
what it cost); the others on all 10,000.

The speed story is one table on those test images: per-image latency and mAP of R-CNN,
SPPNet, Fast R-CNN, Faster R-CNN, YOLO and SSD, with each row's speed-up over the row
before.  ``--det300`` trains the configuration ``scenes-det-300`` (300x300, up to 20
digits) for the same budget.  Results merge into ``benchmarks/results/detection.json``
(one entry per configuration, so models can be run one at a time), and the figures of
``docs/detection.md`` are drawn from it (``--figures``).

    python benchmarks/detection.py --data-dir ../shared/datasets                 # every model
    python benchmarks/detection.py --data-dir ../shared/datasets --only yolo-v1,ssd
    python benchmarks/detection.py --data-dir ../shared/datasets --only ssd-300
    python benchmarks/detection.py --figures                                     # docs figures from the JSON
    python benchmarks/detection.py --smoke                                       # a tiny run of every model
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

from deeper.train import TrainConfig, fit  # noqa: E402
from deeper.train.callbacks import TimeLimit  # noqa: E402

HERE = Path(__file__).resolve().parent
DOCS_IMAGES = HERE.parent / "docs" / "images"
STORY = ("rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo-v1", "ssd")
TARGETS = {"yolo-v1": {"map50": 0.90, "map": 0.55}, "faster-rcnn": {"map50": 0.90}, "ssd": {"map50": 0.90}}

_COMMON = {"optimizer": "adamw", "schedule": "onecycle", "eval_batch_size": 50}
_PROPOSALS = {"subset": 4000, "batch_size": 16}  # the R-CNN family: 4,000 scenes, their proposals cached
#: one configuration per entry: the model, its options, the engine's options (fixed before running)
CONFIGS: dict[str, dict] = {
    "rcnn": {"model": "rcnn", "epochs": 3, "lr": 0.002, **_PROPOSALS},
    "sppnet": {"model": "sppnet", "epochs": 8, "lr": 0.002, **_PROPOSALS},
    "fast-rcnn": {"model": "fast-rcnn", "epochs": 8, "lr": 0.002, **_PROPOSALS},
    "faster-rcnn": {"model": "faster-rcnn", "epochs": 3, "lr": 0.002, "batch_size": 16,
                    "model_kwargs": {"box_batch": 32}},  # fmt: skip
    "yolo-v1": {"model": "yolo-v1", "epochs": 10, "lr": 0.002, "batch_size": 32},
    "ssd": {"model": "ssd", "epochs": 10, "lr": 0.002, "batch_size": 32},
    "ssd-300": {"model": "ssd", "data": "scenes-det-300", "epochs": 4, "lr": 0.002, "batch_size": 16,
                "model_kwargs": {"sizes": [16, 32, 64, 100], "strides": [8, 16, 32, 64]}},  # fmt: skip
}




def run_config(name: str, cfg: dict, *, data_dir, out: Path, minutes: float, smoke: bool) -> dict:
    options = {**_COMMON, **cfg, "task": "detect", "data": cfg.get("data", "scenes-det")}
    task_args = {"latency_images": 50, **options.pop("task_args", {})}
    if smoke:  # a few steps of every model on scikit-learn's digits: the script works
        task_args.update(source="digits", val_scenes=8, test_scenes=16, svm_scenes=16, latency_images=4)
        options.update(subset=32, epochs=1, model_kwargs={**options.get("model_kwargs", {}), "width": 8})
    run_dir = out / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    if (
        options["model"] in ("rcnn", "sppnet", "fast-rcnn") and not smoke
    ):  # proposals first, outside the clock
        from deeper.detect.data import cache_dir_of, load_split, scene_proposals

        start = time.perf_counter()
        for split, n in (("train", options["subset"]), ("val", 500), ("test", None)):
            ds = load_split(options["data"], split, n=n, source="mnist", data_dir=data_dir)
            scene_proposals(ds, cache_dir=cache_dir_of(data_dir))
        proposal_s = time.perf_counter() - start
    else:
        proposal_s = None
    config = TrainConfig(**options, task_args=task_args, data_dir=data_dir, out=str(run_dir),
                         tensorboard=False, progress=False)  # fmt: skip
    r = fit(config, callbacks=[TimeLimit(minutes * 60)])
    keep = ("model", "data", "test_map50", "test_map", "test_map75", "latency_ms", "latency_threads", "epochs",
            "steps", "stopped", "train_seconds", "img_per_s", "params", "svm")  # fmt: skip
    entry = {k: r.get(k) for k in keep if r.get(k) is not None}
    entry["ap50_per_class"] = r["test"].get("ap50_per_class")
    entry["proposal_s"] = proposal_s
    entry["config"] = {**options, "task_args": task_args}
    entry["run_dir"] = str(run_dir)
    entry["command"] = command_line(options, task_args)
    return entry


def command_line(options: dict, task_args: dict) -> str:
    words = ["deeper train --task detect"]
    for k, v in options.items():
        if k in ("task",):
            continue
        if k == "model_kwargs":
            words += [f"--model-arg {a}={json.dumps(b).replace(' ', '')}" for a, b in v.items()]
            continue
        words.append(f"--{k.replace('_', '-')} {v}")
    words += [f"--task-arg {a}={b}" for a, b in task_args.items()]
    return " ".join(words)


def story(runs: dict) -> list[dict]:
    rows, previous = [], None
    for name in STORY:
        r = runs.get(name)
        if r is None:
            continue
        row = {
            "model": name,
            "latency_ms": round(r["latency_ms"], 2),
            "speed-up": round(previous / r["latency_ms"], 2) if previous else None,
            "map50": round(r["test_map50"], 4),
            "map": round(r["test_map"], 4),
            "train_min": round(r["train_seconds"] / 60, 1),
            "epochs": r["epochs"],
        }
        previous = r["latency_ms"]
        rows.append(row)
    return rows


def targets(runs: dict) -> list[dict]:
    out = []
    for name, want in TARGETS.items():
        if name in runs:
            for metric, goal in want.items():
                got = runs[name][f"test_{metric}"]
                out.append(
                    {
                        "model": name,
                        "metric": metric,
                        "target": goal,
                        "measured": round(got, 4),
                        "met": got >= goal,
                    }
                )
    return out


def figures(result: dict) -> None:
    from deeper.analysis.detection import plot_speed_story

    rows = story(result.get("runs", {}))
    if rows:
        plot_speed_story(
            rows, DOCS_IMAGES / "detect_speed.png",
            title=f"scenes-det test: mAP@0.5 against latency (batch 1, {result.get('machine', '')})",
        )  # fmt: skip
    for name, r in result.get("runs", {}).items():  # the runs' own figures, where the runs are still there
        run = Path(r.get("run_dir", ""))
        for src, dst in (("detections.png", f"detect_{name}.png"), ("pr_curves.png", f"detect_pr_{name}.png"),
                         ("anchors.png", "detect_anchors.png")):  # fmt: skip
            if (run / src).is_file() and (
                name in ("yolo-v1", "faster-rcnn", "ssd-300") or src == "detections.png"
            ):
                shutil.copyfile(run / src, DOCS_IMAGES / dst)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder with MNIST (default: $DEEPER_DATA)")
    p.add_argument(
        "--only", help=f"comma-separated configurations (default: the six of the story): {', '.join(CONFIGS)}"
    )
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per model [15]")
    p.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    p.add_argument("--out", default="runs/detection", help="folder of the runs [runs/detection]")
    p.add_argument("--output", default=str(RESULTS / "detection.json"))
    p.add_argument("--smoke", action="store_true", help="a few steps of each model on scikit-learn's digits")
    p.add_argument("--figures", action="store_true", help="only draw the docs figures from the results JSON")
    args = p.parse_args(argv)
    output = Path(args.output)
    result = json.loads(output.read_text()) if output.is_file() else {"runs": {}}
    if args.figures:
        figures(result)
        return 0
    names = args.only.split(",") if args.only else list(STORY)
    if unknown := [n for n in names if n not in CONFIGS]:
        p.error(f"unknown configuration(s) {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    torch.set_num_threads(args.threads)
    for name in names:
        entry = run_config(name, CONFIGS[name], data_dir=args.data_dir, out=Path(args.out), minutes=args.minutes,
                           smoke=args.smoke)  # fmt: skip
        if args.smoke:
            print(f"{name}: map50 {entry['test_map50']:.3f} (smoke run, not recorded)", flush=True)
            continue
        result.setdefault("runs", {})[name] = {**entry, "machine": machine(), "torch": torch.__version__}
        print(f"{name}: map50 {entry['test_map50']:.4f} map {entry['test_map']:.4f} latency {entry['latency_ms']:.1f} ms, "
              f"{entry['train_seconds'] / 60:.1f} min training ({entry['stopped']})", flush=True)  # fmt: skip
        if args.smoke:
            continue
        result.update(benchmark="detection", machine=machine(), torch=torch.__version__,
                      story=story(result["runs"]), targets=targets(result["runs"]))  # fmt: skip
        write_result(output, result)
    if not args.smoke:
        print_table(story(result["runs"]))
        if t := targets(result["runs"]):
            print_table(t)
        others = [
            {"run": k, "data": r["data"], "map50": round(r["test_map50"], 4), "map": round(r["test_map"], 4),
             "train_min": round(r["train_seconds"] / 60, 1)}
            for k, r in result["runs"].items() if k not in STORY
        ]  # fmt: skip
        if others:
            print_table(others)
    return 0


if __name__ == "__main__":
    sys.exit(main())
