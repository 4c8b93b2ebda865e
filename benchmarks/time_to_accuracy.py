"""Training throughput and wall time to a target test accuracy: deeper vs a plain PyTorch baseline.

All rows train the same DeepConvNet with the same optimizer, schedule, batch size
and number of epochs (deeper's ``fast`` recipe unless overridden); only the data
pipeline and memory layout differ:

- ``baseline``: the pytorch/examples style: ``torchvision.datasets.MNIST`` with a
  per-sample ``ToTensor`` transform, ``torch.utils.data.DataLoader`` (shuffle, no
  workers on the CPU, as pytorch/examples does), NCHW tensors, float32;
- ``deeper-nchw``: deeper's in-memory loader (one index per batch), NCHW, float32;
- ``deeper-fp32``: deeper's loader and channels-last layout, float32;
- ``deeper``: deeper's default: in-memory loader, channels-last layout, and ``--amp auto``
  (bfloat16 autocast on the CPU families where it trains faster: ``deeper.hardware``).

The test set is scored after every epoch (not timed); "time to target" is the
training time until the first epoch whose test accuracy reaches ``--target``.

    python benchmarks/time_to_accuracy.py --data-dir ../shared/datasets
    python benchmarks/time_to_accuracy.py --quick --json      # throughput only, 100 steps per row
    python benchmarks/time_to_accuracy.py --rows deeper --seeds 0,1,2,3,4 \
        --first-seed-rows baseline,deeper-fp32 --output benchmarks/results/time_to_accuracy_amd.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from deeper.data import DataSources, load_dataset
from deeper.data.dataset import split_indices
from deeper.data.files import read_content
from deeper.data.mnist import MNIST_SOURCE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.runtime import seed_everything
from deeper.tasks.classify import default_val_size
from deeper.train import LoopState, TrainConfig, build_run, evaluate, train_one_epoch

HERE = Path(__file__).resolve().parent
#: what each row changes from deeper's defaults (the recipe's options are the same for all)
ROWS: dict[str, dict] = {
    "baseline": {"channels_last": False, "amp": "off"},
    "deeper-nchw": {"channels_last": False, "amp": "off"},
    "deeper-fp32": {"amp": "off"},
    "deeper": {},
}


def torchvision_loader(root: Path, batch_size: int, seed: int, data_dir: str | None = None):
    """The pytorch/examples MNIST pipeline (files decompressed where torchvision expects them, from the
    same offline folder or cache as deeper's rows)."""
    from torchvision import datasets, transforms

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sources = DataSources.resolve(data_dir)
    for name in MNIST_SOURCE.content_md5:
        if not (raw / name).exists():
            data = read_content(sources, "mnist", name, MNIST_SOURCE.content_md5[name], None)
            (raw / name).write_bytes(data)
    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    train_idx, _ = split_indices(len(ds), default_val_size(len(ds)))  # the very images deeper trains on
    ds = torch.utils.data.Subset(ds, train_idx.tolist())
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, generator=g)


def run_row(
    name: str, cfg: TrainConfig, *, max_steps: int | None, target: float, tv_root: Path | None
) -> dict:
    seed_everything(cfg.seed)
    run = build_run(cfg)
    if tv_root is not None:  # replace deeper's loader by the baseline pipeline, same model/optimizer/schedule
        loader = torchvision_loader(tv_root, cfg.optim.batch_size, cfg.seed, cfg.run.data_dir)
    else:
        loader = run.train_loader
    task = run.task  # the recipe's loss (label smoothing included) for every row
    state = LoopState()
    stop = (lambda s: s.global_step >= max_steps) if max_steps else None
    per_epoch, time_to_target, epoch_to_target = [], None, None
    for epoch in range(cfg.optim.epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        state.step_in_epoch, state.epoch_sums, state.epoch_count = 0, {}, 0
        train_one_epoch(
            run.model,
            task,
            loader,
            stepper=run.stepper,  # the engine's steps: its optimizer, schedule and --amp
            state=state,
            on_step=stop,
            progress=None,
            desc=f"{name} epoch {epoch + 1}",
        )
        if max_steps:
            break
        acc = evaluate(run.model, task, run.test_loader)["accuracy"]
        per_epoch.append({"epoch": epoch + 1, "test_accuracy": acc, "train_seconds": state.train_seconds})
        print(
            f"  {name}: epoch {epoch + 1} test {acc:.4f} at {state.train_seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if time_to_target is None and acc >= target:
            time_to_target, epoch_to_target = state.train_seconds, epoch + 1
    return {
        "name": name,
        "seed": cfg.seed,
        "amp": run.amp.name if run.amp is not None else "off",
        "channels_last": bool(getattr(run.train_loader, "channels_last", False)),
        "img_per_s": state.train_samples / state.train_seconds,
        "train_seconds": state.train_seconds,
        "steps": state.global_step,
        "final_test_accuracy": per_epoch[-1]["test_accuracy"] if per_epoch else None,
        "seconds_to_target": time_to_target,
        "epochs_to_target": epoch_to_target,
        "per_epoch": per_epoch,
    }


def spread(rows: list[dict], target: float) -> dict:
    """Per row name over the seeds: final accuracy mean/min/max, seeds reaching the target, time to it."""
    out = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        rs = [r for r in rows if r["name"] == name and r["final_test_accuracy"] is not None]
        if not rs:
            continue
        acc = [r["final_test_accuracy"] for r in rs]
        times = sorted(r["seconds_to_target"] for r in rs if r["seconds_to_target"] is not None)
        out[name] = {
            "seeds": len(rs), "mean": sum(acc) / len(acc), "min": min(acc), "max": max(acc),
            "reached": len(times), "median_seconds_to_target": times[len(times) // 2] if times else None,
        }  # fmt: skip
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--recipe", default="fast", help="deeper recipe the rows share")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; every row trains once per seed")
    p.add_argument("--target", type=float, default=0.994, help="test accuracy to time")
    p.add_argument("--quick", action="store_true", help="throughput only: 100 steps per row, no accuracy")
    p.add_argument(
        "--rows", default="baseline,deeper-nchw,deeper-fp32,deeper", help="comma-separated rows to run"
    )
    p.add_argument(
        "--first-seed-rows", default="",
        help="comma-separated rows trained for the first seed only (e.g. the baseline beside a "
        "five-seed spread of the default)",
    )  # fmt: skip
    p.add_argument(
        "--output", default=str(HERE / "results" / "time_to_accuracy.json"), help="JSON results file"
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)

    torch.set_num_threads(torch.get_num_threads())
    base = TrainConfig(
        data="mnist",
        recipe=args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        device="cpu",
        tensorboard=False,
        progress=False,
    )
    base = base.resolved()
    load_dataset("mnist", "train", data_dir=args.data_dir)  # fail early, before any timing
    rows = []
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        once = [n for n in args.first_seed_rows.split(",") if n]
        plan = [(seeds[0], n) for n in once] + [(s, n) for s in seeds for n in args.rows.split(",") if n]
        for seed, name in plan:
            if name not in ROWS:
                p.error(f"unknown row {name!r} (rows: {', '.join(ROWS)})")
            cfg = base.replace(seed=seed, **ROWS[name])
            print(
                f"{name}: {cfg.optim.epochs} epochs, batch {cfg.optim.batch_size}, {cfg.optim.optimizer} lr {cfg.optim.lr} {cfg.optim.schedule}",
                file=sys.stderr,
                flush=True,
            )
            rows.append(
                run_row(
                    name,
                    cfg,
                    max_steps=100 if args.quick else None,
                    target=args.target,
                    tv_root=Path(tmp) if name == "baseline" else None,
                )
            )
    for r in rows:
        ref = next((b for b in rows if b["name"] == "baseline" and b["seed"] == r["seed"]), None)
        r["speedup_vs_baseline"] = r["img_per_s"] / ref["img_per_s"] if ref else None
    result = {
        "benchmark": "time_to_accuracy",
        "machine": machine(),
        "torch": torch.__version__,
        "recipe": {
            k: base.flat()[k] for k in ("recipe", "optimizer", "lr", "batch_size", "epochs", "schedule")
        },
        "seeds": seeds,
        "spread": spread(rows, args.target),
        "target": args.target,
        "quick": args.quick,
        "rows": rows,
    }
    print(
        f"\nmachine: {result['machine']}\n{'row':12s} {'seed':>4s} {'amp':>4s} {'img/s':>8s} {'vs base':>8s} {'train s':>8s} {'final acc':>9s} {'s to ' + str(args.target):>10s}"
    )
    for r in rows:
        acc = f"{r['final_test_accuracy']:.4f}" if r["final_test_accuracy"] is not None else "-"
        tt = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "-"
        sp = f"{r['speedup_vs_baseline']:.2f}x" if r["speedup_vs_baseline"] else "-"
        print(
            f"{r['name']:12s} {r['seed']:4d} {r['amp']:>4s} {r['img_per_s']:8.0f} {sp:>8s} {r['train_seconds']:8.1f} {acc:>9s} {tt:>10s}"
        )
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
