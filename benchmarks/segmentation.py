"""Semantic segmentation of ``scenes-seg`` (64x84 scenes of 1-3 MNIST digits): every model of the
``segment`` task trained on the CPU within 15 minutes, scored on the 2,000 test scenes.

Each configuration (:data:`CONFIGS`, fixed before running) is one ``deeper train --task segment``
run on the first 5,000 training scenes, validated on the 1,000 validation scenes (their own
digits) and tested on the 2,000 test scenes (digits of MNIST's t10k split).  The table gives
the parameters, the multiply-accumulates per 64x84 scene (``deeper summary``'s count:
convolutions and transposed convolutions), the training time twice: as the run measured it
(the engine's ``train_seconds``, training steps only, which grows when other work shares the
CPU) and on an idle CPU (the epochs' scenes divided by the best of five timings of five
training steps at the run's batch size), the inference throughput (test scenes per second,
batches of 200 in inference mode, the best of three passes) and the test mIoU with and
without the background.
``fcn8s-random-init`` is FCN-8s with its transposed convolutions randomly initialised
(PyTorch's default) instead of bilinear, trained with the same budget; ``segnet-balanced`` is SegNet
trained as its paper trains it, the loss weighted by median-frequency class balancing, and
``fcn8s-balanced`` FCN-8s trained with the same weighting and its own budget; ``segnet-basic`` is the
paper's smaller SegNet-Basic (four 7x7 stages) with the same weighting (``segnet-basic-unweighted``: without
it); ``fcn8s-fine`` is FCN-8s with its
strides sized for the digits (``pool1=False``: the first stage at full resolution, pool3 at stride 4) and half
the width, so it costs about what FCN-8s costs; ``segnet-4`` is SegNet with VGG-16's first four stages
(``stages=4``: ten convolutions down and ten up, cells 16 pixels apart at the bottom where five stages leave a
2x3 map of 32-pixel cells through which every class must pass), ``segnet-4-slow`` the same at a quarter of
the peak learning rate; ``segnet-basic-prior`` is ``segnet-basic-unweighted`` with its classifier started at the
class prior (``--task-arg prior_bias=true``: RetinaNet's initialisation), ``segnet-prior`` the five-stage SegNet
with the same start.

Runs go to ``--out`` (one folder per configuration); a configuration whose run has finished
is not trained again, so the configurations can be trained one at a time (``--only``) and the
table made at the end.  ``--figures DIR`` draws the comparison figures of docs/segmentation.md
from the runs.

    python benchmarks/segmentation.py --data-dir ../shared/datasets --only unet      # one run
    python benchmarks/segmentation.py --data-dir ../shared/datasets --figures docs/images
    python benchmarks/segmentation.py --source digits --subset 64 --epochs 1 --out /tmp/s   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

#: training options every configuration shares
COMMON: dict = {
    "data": "scenes-seg",
    "subset": 5000,
    "batch_size": 32,
    "optimizer": "adam",
    "schedule": "onecycle",
    "label_smoothing": 0.0,
}
#: configuration -> (model, model options, training options), fixed before any was run
CONFIGS: dict[str, tuple[str, dict, dict]] = {
    "fcn32s": ("fcn32s", {}, {"epochs": 20, "lr": 0.002}),
    "fcn16s": ("fcn16s", {}, {"epochs": 20, "lr": 0.002}),
    "fcn8s": ("fcn8s", {}, {"epochs": 20, "lr": 0.002}),
    "fcn8s-random-init": ("fcn8s", {"init": "random"}, {"epochs": 20, "lr": 0.002}),
    "unet": ("unet", {}, {"epochs": 10, "lr": 0.002}),
    "segnet": ("segnet", {}, {"epochs": 12, "lr": 0.002}),
    "deeplabv3": ("deeplabv3", {}, {"epochs": 8, "lr": 0.002}),
    "deeplabv3plus": ("deeplabv3plus", {}, {"epochs": 10, "lr": 0.002}),
    # SegNet's own recipe: the training loss weighted by median-frequency class balancing
    "segnet-balanced": ("segnet", {}, {"epochs": 12, "lr": 0.002, "task_args": {"class_weights": "median-frequency"}}),
    "fcn8s-balanced": ("fcn8s", {}, {"epochs": 20, "lr": 0.002, "task_args": {"class_weights": "median-frequency"}}),
    # the paper's SegNet-Basic (four 7x7 stages, 32 wide here) with its recipe, the class balancing
    "segnet-basic": ("segnet-basic", {}, {"epochs": 9, "lr": 0.002, "task_args": {"class_weights": "median-frequency"}}),
    # SegNet-Basic with the plain loss: the class balancing cost FCN-8s 0.13 mIoU (it widens every digit's mask)
    "segnet-basic-unweighted": ("segnet-basic", {}, {"epochs": 9, "lr": 0.002}),
    # FCN-8s with strides sized for digits: the first stage at full resolution (pool3 at stride 4), half as wide
    "fcn8s-fine": ("fcn8s", {"pool1": False, "width": 8}, {"epochs": 20, "lr": 0.002}),
    # SegNet with its bottom sized for the digits: VGG-16's first four stages (stride 16, as SegNet-Basic)
    "segnet-4": ("segnet", {"stages": 4}, {"epochs": 12, "lr": 0.002}),
    # the same at a quarter of the peak learning rate: segnet-4's validation mIoU stayed at the all-background
    # level until the one-cycle schedule had brought its rate down to about a third of the peak
    "segnet-4-slow": ("segnet", {"stages": 4}, {"epochs": 12, "lr": 0.0005}),
    # the best SegNet (segnet-basic-unweighted) with its classifier started at the class prior (RetinaNet's
    # initialisation): SegNet's validation mIoU stays at the all-background level for the first epochs
    "segnet-basic-prior": ("segnet-basic", {}, {"epochs": 9, "lr": 0.002, "task_args": {"prior_bias": True}}),
    # the same start for the five-stage VGG-16 SegNet (the plain loss, its 12 epochs)
    "segnet-prior": ("segnet", {}, {"epochs": 12, "lr": 0.002, "task_args": {"prior_bias": True}}),
}
#: the targets of the issue: test mIoU with the background
TARGETS = {"unet": 0.90, "fcn8s": 0.85, "segnet": 0.85, "segnet-balanced": 0.85, "deeplabv3": 0.88,
           "deeplabv3plus": 0.88, "fcn8s-balanced": 0.85, "segnet-basic": 0.85, "fcn8s-fine": 0.85,
           "segnet-basic-unweighted": 0.85, "segnet-4": 0.85,
           "segnet-4-slow": 0.85, "segnet-basic-prior": 0.85, "segnet-prior": 0.85}
TIME_LIMIT = 15 * 60  # seconds of training per model


def train_config(name: str, args) -> dict:
    """The flat TrainConfig options of configuration ``name`` (with the smoke-run overrides)."""
    model, model_kwargs, options = CONFIGS[name]
    cfg = {**COMMON, **options, "task": "segment", "model": model, "model_kwargs": dict(model_kwargs)}
    if args.subset:
        cfg["subset"] = args.subset
    if args.epochs:
        cfg["epochs"] = args.epochs
    task_args = dict(options.get("task_args", {}))
    if args.source:
        task_args["source"] = args.source
    if args.eval_scenes:
        task_args.update(val_scenes=args.eval_scenes, test_scenes=args.eval_scenes)
    cfg["task_args"] = task_args
    return {
        **cfg, "device": args.device, "amp": args.amp, "data_dir": args.data_dir,
        "tensorboard": False, "progress": False,
    }  # fmt: skip


def train(name: str, out: Path, args) -> dict:
    from deeper.train import TrainConfig, fit
    from deeper.train.callbacks import TimeLimit

    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    resume = (out / "checkpoints" / "latest").exists()
    cfg = TrainConfig(**train_config(name, args), out=str(out))
    print(f"train {name} -> {out}{' (resuming)' if resume else ''}", file=sys.stderr, flush=True)
    return fit(cfg, resume=resume, callbacks=[TimeLimit(TIME_LIMIT)])


@torch.inference_mode()
def inference_speed(run_dir: Path, args, *, batch: int = 200, repeats: int = 3) -> float:
    """Test scenes per second through the trained model: batches of ``batch`` in inference mode, the
    class map's argmax included; the best of ``repeats`` passes over the test split, after a warm-up."""
    from deeper.tasks.segment import SegmentationTask, load_split

    net, meta = SegmentationTask().load_model(run_dir / "model.safetensors")
    net = net.to(args.device if args.device != "auto" else "cpu").eval()
    p = next(net.parameters())
    if p.device.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    ds = load_split(
        meta["dataset"], "test", args.eval_scenes or None, source=args.source, data_dir=args.data_dir
    )
    x = ds.float_images().to(p.device)
    net(x[:batch])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            net(x[i : i + batch]).argmax(1)
        if p.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def training_speed(name: str, args, *, steps: int = 5, repeats: int = 5) -> float:
    """Training scenes per second of configuration ``name`` on 64x84 scenes, at its batch size: the best
    of ``repeats`` timings of ``steps`` steps (Adam, channels-last, as the engine trains on the CPU).

    The best of several short timings is what the machine does when nothing else runs on it, so
    this figure does not depend on other work sharing the CPU during the run; ``train_seconds``
    does."""
    import torch.nn.functional as F

    from deeper.models import create_model

    model, kwargs, _ = CONFIGS[name]
    torch.manual_seed(0)
    net = create_model(model, num_classes=11, in_chans=1, **kwargs).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    bs = COMMON["batch_size"]
    x = torch.rand(bs, 1, 64, 84).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 11, (bs, 64, 84))

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    return steps * bs / best


def epoch_seconds(run_dir: Path) -> list[float]:
    """Each epoch's training seconds, from the run's metrics.csv."""
    import csv

    with open(run_dir / "metrics.csv") as f:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(f)]


def macs_per_scene(name: str) -> int:
    from deeper.analysis.summary import summarize
    from deeper.models import create_model

    model, kwargs, _ = CONFIGS[name]
    return summarize(create_model(model, num_classes=11, in_chans=1, **kwargs), (1, 64, 84)).total_macs


def figures(folder: Path, runs: dict[str, Path], args) -> list[str]:
    """The figures of docs/segmentation.md: FCN-32s/16s/8s on the same scenes, every model, per-class IoU."""
    from deeper.cli import main

    made = []

    def preview(names: list[str], output: str, iou: str | None, start: int, n: int) -> None:
        weights = [a for nm in names if nm in runs for a in ("--weights", str(runs[nm]))]
        if not weights:
            return
        argv = ["segment-preview", *weights, "-o", str(folder / output), "--n", str(n), "--start", str(start)]
        argv += ["--iou", str(folder / iou)] if iou else []
        argv += ["--data-dir", args.data_dir] if args.data_dir else []
        if args.eval_scenes:
            argv += ["--eval", str(args.eval_scenes)]
        if main(argv) == 0:
            made.extend(str(folder / f) for f in (output, iou) if f)

    folder.mkdir(parents=True, exist_ok=True)
    preview(["fcn32s", "fcn16s", "fcn8s", "fcn8s-fine"], "segment_fcn.png", "segment_fcn_iou.png", 0, 6)
    preview(
        ["fcn8s", "unet", "segnet", "deeplabv3", "deeplabv3plus"],
        "segment_models.png",
        "segment_iou.png",
        6,
        6,
    )
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(CONFIGS)}")
    p.add_argument("--out", default="runs/segmentation", help="folder of the runs [runs/segmentation]")
    p.add_argument("--output", default=str(RESULTS / "segmentation.json"))
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--device", default="cpu", help="cpu (the targets' machine), cuda, ... [cpu]")
    p.add_argument("--amp", default="off", help="off, bf16 or fp16 [off]")
    p.add_argument("--figures", metavar="DIR", help="also draw the comparison figures into DIR")
    p.add_argument("--source", default="", help="'digits': scenes of scikit-learn's digits (smoke runs)")
    p.add_argument("--subset", type=int, help="override the training scenes (smoke runs)")
    p.add_argument("--epochs", type=int, help="override every configuration's epochs (smoke runs)")
    p.add_argument("--eval-scenes", type=int, help="shorter validation and test splits (smoke runs)")
    p.add_argument("--train-only", action="store_true", help="train, but make no table (one run at a time)")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    if unknown := [n for n in names if n not in CONFIGS]:
        p.error(f"unknown configuration(s): {', '.join(unknown)} (known: {', '.join(CONFIGS)})")

    started = time.perf_counter()
    results, runs = {}, {}
    for name in names:
        out = Path(args.out) / name
        results[name] = train(name, out, args)
        runs[name] = out
    if args.train_only:
        return 0
    rows, entries = [], []
    for name in names:
        r = results[name]
        speed = inference_speed(runs[name], args)
        macs = macs_per_scene(name)
        per_epoch = epoch_seconds(runs[name])
        train_speed = training_speed(name, args) if args.device in ("cpu", "auto") else None
        scenes = r["epochs"] * train_config(name, args)["subset"]
        quiet = scenes / train_speed if train_speed else None  # the training time on an otherwise idle CPU
        entry = {
            "config": name, "model": CONFIGS[name][0], "model_kwargs": CONFIGS[name][1],
            "options": train_config(name, args) | {"data_dir": None}, "params": r["params"], "macs": macs,
            "epochs": r["epochs"], "epochs_configured": CONFIGS[name][2]["epochs"], "stopped": r.get("stopped"),
            "train_seconds": r["train_seconds"], "train_img_per_s": r["img_per_s"],
            "epoch_seconds": per_epoch, "train_img_per_s_idle": train_speed, "train_seconds_idle": quiet,
            "inference_img_per_s": speed, "test_miou": r["test_miou"], "test_miou_digits": r["test_miou_digits"],
            "test_pixel_accuracy": r["test_pixel_accuracy"], "val_miou": r["val_miou"],
            "test_iou_per_class": r.get("test_iou_per_class"), "within_time_limit": min(r["train_seconds"], quiet or float("inf")) <= TIME_LIMIT,
            "target": TARGETS.get(name),
        }  # fmt: skip
        entries.append(entry)
        target = TARGETS.get(name)
        rows.append({
            "model": name, "parameters": f"{r['params']:,}", "MACs per scene": f"{macs / 1e6:,.0f} M",
            "epochs": r["epochs"], "CPU training": f"{r['train_seconds'] / 60:.1f} min",
            "on an idle CPU": f"{quiet / 60:.1f} min" if quiet else "",
            "inference": f"{speed:,.0f} img/s", "test mIoU": f"{r['test_miou']:.4f}",
            "without background": f"{r['test_miou_digits']:.4f}",
            "pixel accuracy": f"{r['test_pixel_accuracy']:.4f}",
            "target": (f">= {target:.2f} " + ("met" if r["test_miou"] >= target else "not met")) if target else "",
        })  # fmt: skip
    print_table(rows)
    by = {e["config"]: e for e in entries}
    comparisons = {}
    if {"fcn8s", "fcn8s-random-init"} <= set(by):
        comparisons["bilinear_minus_random_miou"] = (
            by["fcn8s"]["test_miou"] - by["fcn8s-random-init"]["test_miou"]
        )
    if {"fcn32s", "fcn16s", "fcn8s"} <= set(by):
        m = [by[n]["test_miou"] for n in ("fcn32s", "fcn16s", "fcn8s")]
        comparisons["fcn_order"] = "FCN-8s > FCN-16s > FCN-32s" if m[2] > m[1] > m[0] else "not in that order"
    for k, v in comparisons.items():
        print(f"{k}: {v:+.4f}" if isinstance(v, float) else f"{k}: {v}")
    made = figures(Path(args.figures), runs, args) if args.figures else []
    previous = json.loads(Path(args.output).read_text()) if Path(args.output).is_file() else {}
    kept = {e["config"]: e for e in previous.get("results", [])}
    kept.update(by)
    write_result(args.output, {
        "benchmark": "segmentation", "machine": machine(), "torch": torch.__version__,
        "data": COMMON["data"], "time_limit_seconds": TIME_LIMIT,
        "results": [kept[n] for n in CONFIGS if n in kept], "comparisons": comparisons | {
            k: v for k, v in previous.get("comparisons", {}).items() if k not in comparisons},
        "figures": made, "seconds": time.perf_counter() - started,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
