"""Transfer learning (notes 003): pretrain on MNIST, fine-tune on 500 images, versus training from scratch.

1. Pretrain ``--model`` on all of MNIST (``--pretrain-epochs`` of deeper's ``fast``
   recipe), or reuse ``--pretrained FILE``.
2. For each target dataset and seed, train on the first ``--subset`` training images
   of the target, three ways, with the same recipe (Adam, one-cycle to
   ``--lr``, batch ``--batch-size``, ``--epochs`` passes, no validation split):

   - ``scratch``: random initialisation;
   - ``finetune``: the MNIST weights, a new classifier, everything trained
     (``deeper finetune --from RUN``);
   - ``frozen``: the MNIST weights, only the new classifier trained
     (``--freeze features``).
3. Score each on the target's whole test set; report the mean and standard
   deviation over the seeds.

    python benchmarks/transfer.py --data-dir ../shared/datasets
    python benchmarks/transfer.py --targets digits --seeds 0 --epochs 5 --pretrain-epochs 1    # quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result  # noqa: E402

from deeper.experiments.claims.transfer import summarize_runs, transfer_runs  # noqa: E402
from deeper.train import TrainConfig, fit  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--model", default="deep-convnet", help="registered model to transfer")
    p.add_argument(
        "--pretrained", metavar="FILE", help="MNIST weights to start from (default: pretrain them here)"
    )
    p.add_argument("--pretrain-epochs", type=int, default=3, help="epochs of the fast recipe on MNIST")
    p.add_argument("--targets", default="fashion-mnist,digits", help="comma-separated target datasets")
    p.add_argument("--subset", type=int, default=500, help="training images of the target")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=30, help="passes over the subset")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument(
        "--lr", type=float, default=1e-3, help="peak learning rate (one-cycle Adam), all three ways"
    )
    p.add_argument("--threads", type=int, help="torch threads [torch's default]")
    p.add_argument("--output", default=str(HERE / "results" / "transfer.json"), help="JSON results file")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line on stdout")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = [t for t in args.targets.split(",") if t]
    common = {"device": "cpu", "data_dir": args.data_dir, "tensorboard": False, "progress": False}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.pretrained:
            weights, pre = args.pretrained, None
        else:
            print(
                f"pretraining {args.model} on MNIST ({args.pretrain_epochs} epochs)",
                file=sys.stderr,
                flush=True,
            )
            pre = fit(
                TrainConfig(
                    model=args.model, data="mnist", epochs=args.pretrain_epochs, out=f"{tmp}/pre", **common
                )
            )
            weights = pre["weights"]
        runs = transfer_runs(
            weights, model=args.model, targets=targets, seeds=seeds, subset=args.subset, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, data_dir=args.data_dir, out=tmp,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
    summary = summarize_runs(runs)
    result = {
        "benchmark": "transfer",
        "machine": machine(),
        "torch": torch.__version__,
        "model": args.model,
        "pretrained": args.pretrained or "MNIST, fast recipe",
        "pretrain_test_accuracy": pre["test_accuracy"] if pre else None,
        "recipe": {
            "subset": args.subset,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "adam",
            "schedule": "onecycle",
            "lr": args.lr,
            "validation": None,
        },  # fmt: skip
        "command": " ".join(
            ["python", "benchmarks/transfer.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "summary": summary,
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }
    if pre:
        print(f"\npretrained on MNIST: test accuracy {pre['test_accuracy']:.4f}")
    print(
        f"{'target':14s} {'mode':9s} {'test accuracy (mean +- std over ' + str(len(seeds)) + ' seeds)':>44s}"
    )
    for s in summary:
        print(f"{s['target']:14s} {s['mode']:9s} {100 * s['mean']:>35.2f}% +- {100 * s['std']:.2f}")
    write_result(args.output, result, echo_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
