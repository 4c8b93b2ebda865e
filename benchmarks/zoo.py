"""The model zoo on MNIST and Fashion-MNIST: one short recipe, every model, on this CPU.

Every row trains one model from scratch with the same short recipe (chosen so the
whole table fits a shared 2-core CPU in about 40 minutes) and reports:

- ``test_accuracy`` on the first ``--test-images`` test images;
- ``params`` and ``macs`` (per 1x28x28 image, from ``deeper.analysis.summary``);
- ``seconds_per_epoch``: the measured training time per image (after
  ``--warmup-steps`` warm-up steps) times the 55,000 images of a full epoch
  (60,000 minus the 5,000 deeper keeps for validation): an extrapolation.

The recipe (defaults): Adam, one-cycle schedule peaking at ``--lr 1e-3``, batch
16, one pass over the first ``--train-images 1280`` training images (80 steps),
no augmentation, seed 0, on the CPU; scored on the first ``--test-images 1000``
test images.  The accuracies therefore measure how much each network learns
from 1,280 images in 80 steps, not what it reaches when trained to convergence
(``deeper train --model NAME`` does that).

    python benchmarks/zoo.py --data-dir ../shared/datasets
    python benchmarks/zoo.py --models lenet5,resnet20 --datasets mnist --train-images 320 --test-images 250
    python benchmarks/zoo.py --resume     # skip the rows already in the results file

Rows are written to the JSON file as they finish, so an interrupted run can
be resumed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from deeper.analysis.summary import human, summarize
from deeper.data import BatchLoader
from deeper.errors import DivergedError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.models import count_parameters
from deeper.train import LoopState, TrainConfig, build_run, evaluate, train_one_epoch

HERE = Path(__file__).resolve().parent
ZOO = (
    "lenet5,alexnet,alexnet-2group,vgg11,vgg11_bn,vgg13,vgg13_bn,vgg16,vgg16_bn,vgg19,vgg19_bn,googlenet,"
    "resnet18,resnet34,resnet50,resnet101,resnet152,resnet20,resnet56,resnet110,plain20,plain56,plain110,"
    "densenet121,densenet-bc-100,vit-tiny"
)
FULL_EPOCH = 55_000  # training images per epoch of MNIST / Fashion-MNIST (60,000 - 5,000 validation)


def run_row(model: str, data: str, args) -> dict:
    cfg = TrainConfig(
        model=model, data=data, recipe="fast", epochs=1, batch_size=args.batch_size, optimizer="adam",
        lr=args.lr, schedule="onecycle", label_smoothing=0.0, subset=args.train_images, seed=args.seed,
        device="cpu", data_dir=args.data_dir, tensorboard=False, progress=False, eval_batch_size=250,
    ).resolved()  # fmt: skip
    run = build_run(cfg)
    c, h, w = run.train_loader.dataset.image_shape
    macs = summarize(run.model, (c, h, w)).total_macs
    stamps: list[tuple[float, int]] = []

    def on_step(state: LoopState) -> bool:
        stamps.append((time.perf_counter(), state.train_samples))
        return False

    state = LoopState()
    row = {"model": model, "data": data, "params": count_parameters(run.model), "macs": macs}
    try:
        train_one_epoch(
            run.model, run.task, run.train_loader, stepper=run.stepper, state=state, on_step=on_step,
            progress=None, desc=f"{model} on {data}",
        )  # fmt: skip
    except DivergedError as e:
        row.update(test_accuracy=None, note=f"diverged: {e}")
        return row
    k = min(args.warmup_steps, len(stamps) - 2)
    (t0, n0), (t1, n1) = stamps[k], stamps[-1]
    per_image = (t1 - t0) / (n1 - n0)
    test = run.test_loader.dataset.subset(slice(0, args.test_images))
    t = time.perf_counter()
    metrics = evaluate(
        run.model, run.task, BatchLoader(test, 250, channels_last=run.train_loader.channels_last)
    )
    row.update(
        test_accuracy=metrics["accuracy"],
        test_images=len(test),
        train_loss=state.epoch_sums.get("loss", math.nan) / max(1, state.epoch_count),
        train_img_per_s=1 / per_image,
        seconds_per_epoch=per_image * FULL_EPOCH,
        eval_img_per_s=len(test) / (time.perf_counter() - t),
        train_seconds=state.train_seconds,
    )
    return row


def print_table(rows: list[dict], datasets: list[str]) -> None:
    by = {(r["model"], r["data"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    head = f"{'model':16s} {'params':>12s} {'MACs':>8s}"
    for d in datasets:
        head += f" {d + ' acc':>18s} {'s/epoch':>8s}"
    print(head)
    for m in models:
        first = next(r for r in rows if r["model"] == m)
        line = f"{m:16s} {first['params']:>12,d} {human(first['macs']):>8s}"
        for d in datasets:
            r = by.get((m, d))
            acc = "-" if r is None or r.get("test_accuracy") is None else f"{100 * r['test_accuracy']:.2f}%"
            spe = "-" if r is None or "seconds_per_epoch" not in r else f"{r['seconds_per_epoch']:.0f}"
            line += f" {acc:>18s} {spe:>8s}"
        print(line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--models", default=ZOO, help="comma-separated registered models [the whole zoo]")
    p.add_argument("--datasets", default="mnist,fashion-mnist", help="comma-separated datasets")
    p.add_argument("--train-images", type=int, default=1280, help="training images seen, one pass")
    p.add_argument("--test-images", type=int, default=1000, help="test images scored (the first ones)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the one-cycle Adam")
    p.add_argument("--warmup-steps", type=int, default=3, help="steps left out of the timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads [torch's default: one per core]")
    p.add_argument("--output", default=str(HERE / "results" / "zoo.json"), help="JSON results file")
    p.add_argument("--resume", action="store_true", help="keep the rows already in --output and skip them")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    datasets = [d for d in args.datasets.split(",") if d]
    out = Path(args.output)
    rows: list[dict] = []
    if args.resume and out.is_file():
        rows = json.loads(out.read_text())["rows"]
    recipe = {
        "optimizer": "adam", "schedule": "onecycle", "lr": args.lr, "batch_size": args.batch_size,
        "train_images": args.train_images, "steps": math.ceil(args.train_images / args.batch_size),
        "test_images": args.test_images, "seed": args.seed, "augmentation": None,
    }  # fmt: skip
    result = {
        "benchmark": "zoo",
        "machine": machine(),
        "torch": torch.__version__,
        "recipe": recipe,
        "command": " ".join(["python", "benchmarks/zoo.py", *(argv if argv is not None else sys.argv[1:])]),
        "rows": rows,
    }
    started = time.perf_counter()
    for model in models:
        for data in datasets:
            if any(r["model"] == model and r["data"] == data for r in rows):
                continue
            t = time.perf_counter()
            row = run_row(model, data, args)
            row["wall_seconds"] = time.perf_counter() - t
            rows.append(row)
            acc = row.get("test_accuracy")
            print(
                f"  {model} on {data}: " + (f"test {acc:.4f}" if acc is not None else row.get("note", "-"))
                + f", {row.get('seconds_per_epoch', math.nan):.0f} s/epoch ({row['wall_seconds']:.0f} s)",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            result["wall_seconds"] = time.perf_counter() - started
            write_result(out, result)
    print()
    print_table(rows, datasets)
    write_result(out, result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
