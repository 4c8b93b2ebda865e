"""The accuracy targets: single models and ensembles on MNIST and Fashion-MNIST.

Each ensemble is a set of member groups; a group is one ``deeper train``
configuration trained with several seeds.  Members run as separate
``deeper train`` processes, ``--jobs`` at a time (several fit on one GPU), in
``--out/ENSEMBLE/GROUP-sSEED``, round-robin over the groups; finished members are
reused, so an interrupted run continues where it stopped.  Then every group, the
fixed sets of :data:`SETS` and the whole set are scored on the test set with
``deeper ensemble``'s code (mean of probabilities and majority vote), and the
table and ``benchmarks/results/accuracy.json`` are written.  Each member's test
probabilities are kept in its ``predictions/`` folder, so re-scoring reruns only new
or retrained members (``--no-cache`` reruns all).

    python benchmarks/accuracy.py --device cuda --amp bf16 --cuda-graphs --jobs 12
    python benchmarks/accuracy.py --only mnist --members 2 --epochs 1 --data digits --out /tmp/acc   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _common import RESULTS, machine, print_table, write_result  # noqa: E402

from deeper.train.ensemble import ensemble_errors, ensemble_probabilities, score_ensemble  # noqa: E402

#: The chapter's network with batch norm, lighter dropout and the digits augmentation
#: (rotation, rescale, shift, elastic), deeper's fast recipe (one-cycle Adam, label smoothing).
DIGITS = {"model": "deep-convnet", "norm": "batch", "dropout": 0.25, "augment": "default", "epochs": 20}
#: A wide CIFAR ResNet-20 (64-128-256 channels) with flips, shifts and random erasing,
#: Nesterov SGD on a one-cycle schedule.
CLOTHES = {
    "model": "resnet20", "model_arg": ["width=4"], "augment": "default", "optimizer": "nesterov",
    "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle", "batch_size": 256, "epochs": 50,
    "channels_last": True,
}  # fmt: skip

#: An et al. (2020)'s augmentation for their no-pooling M3/M5/M7 (rotations of up to 20 degrees,
#: shifts of up to 20%; no rescale or elastic strokes), on all 60,000 training images, with
#: deeper's fast recipe (one-cycle Adam, label smoothing) instead of their 150 epochs of decay
NOPOOL = {"augment": "rotate=20,translate=0.2", "val_size": 0, "channels_last": True}

#: the ink widths (pixels) of MCDNN's width-normalised inputs
WIDTHS = (10, 12, 14, 16, 18, 20)

#: ensemble -> (dataset, {group: (train options, seeds)})
ENSEMBLES: dict[str, tuple[str, dict[str, tuple[dict, list[int]]]]] = {
    "mnist": (
        "mnist",
        {
            "deep-convnet": (DIGITS, list(range(6))),
            "deep-convnet-w2": ({**DIGITS, "model_arg": ["width=2"]}, list(range(100, 104))),
            "deep-convnet-w2-30ep": (
                {**DIGITS, "model_arg": ["width=2"], "epochs": 30},
                list(range(200, 210)),
            ),
            # another family for diversity, trained on this CPU: residual blocks, global
            # average pooling, no affine bottleneck; all 60,000 training images
            "resnet20-full": (
                {"model": "resnet20", "augment": "default", "epochs": 15, "val_size": 0},
                list(range(300, 306)),
            ),
            # diversity in the input (MCDNN): each digit stretched to a fixed ink width first
            **{
                f"deep-convnet-wn{w}": (
                    {**DIGITS, "model_arg": [f"width_norm={w}"], "val_size": 0},
                    list(range(400 + 10 * w, 404 + 10 * w)),
                )
                for w in WIDTHS
            },
            # stronger width-normalised members: the 2x wide network for 30 epochs (GPU)
            **{
                f"deep-convnet-w2-wn{w}": (
                    {**DIGITS, "model_arg": ["width=2", f"width_norm={w}"], "epochs": 30, "val_size": 0},
                    list(range(700 + 10 * w, 706 + 10 * w)),
                )
                for w in WIDTHS
            },
            # the other family on width-normalised digits: a different network and a different
            # input at once, for members that err differently in kind (trained on this CPU)
            **{
                f"resnet20-wn{w}": (
                    {
                        "model": "resnet20",
                        "model_arg": [f"width_norm={w}"],
                        "augment": "default",
                        "epochs": 15,
                        "val_size": 0,
                    },
                    list(range(1000 + 10 * w, 1002 + 10 * w)),
                )
                for w in WIDTHS
            },
            # a third family, so that DeepConvNets are no longer 62 of the members: ResNet-20's
            # plain twin (the same 20 layers without the skip connections), on this CPU
            "plain20-full": (
                {"model": "plain20", "augment": "default", "epochs": 15, "val_size": 0},
                list(range(1300, 1306)),
            ),
            # individually stronger members: networks without pooling that reach 99.7% alone when
            # trained long (An et al. 2020). Four M5s of 15 epochs for this CPU (two fit a session);
            # the three kernel sizes at 60 epochs are for a GPU
            "nopool-m5-15ep": ({**NOPOOL, "model": "nopool-m5", "epochs": 15}, list(range(1400, 1404))),
            **{
                f"nopool-m{k}": (
                    {**NOPOOL, "model": f"nopool-m{k}", "epochs": 60},
                    list(range(1500 + 10 * k, 1504 + 10 * k)),
                )
                for k in (3, 5, 7)
            },
        },
    ),
    "fashion-mnist": ("fashion-mnist", {"resnet20-w4": (CLOTHES, list(range(6)))}),
}

WIDTH_GROUPS = [f"deep-convnet-wn{w}" for w in WIDTHS]
W2_WIDTH_GROUPS = [f"deep-convnet-w2-wn{w}" for w in WIDTHS]
RESNET_WIDTH_GROUPS = [f"resnet20-wn{w}" for w in WIDTHS]
#: ensemble -> {row: groups}: further rows scored besides each group and "all", fixed in
#: advance (not picked by their test scores).  "7-inputs" is MCDNN's layout: one network, the
#: digits as they are and normalised to six widths; "before-widths" the 26 members trained
#: before the width groups.  The printout says how many errors each pair of them shares.
SETS: dict[str, dict[str, list[str]]] = {
    "mnist": {
        "7-inputs": ["deep-convnet", *WIDTH_GROUPS],
        "widths": WIDTH_GROUPS,
        "w2-widths": W2_WIDTH_GROUPS,
        "resnet-widths": RESNET_WIDTH_GROUPS,
        "before-widths": ["deep-convnet", "deep-convnet-w2", "deep-convnet-w2-30ep", "resnet20-full"],
        "cifar-nets": ["resnet20-full", *RESNET_WIDTH_GROUPS, "plain20-full"],
        "no-pooling": ["nopool-m5-15ep", "nopool-m3", "nopool-m5", "nopool-m7"],
    },
}


def add_member_options(p: argparse.ArgumentParser) -> None:
    """The options :func:`train_argv` and :func:`train_members` read (shared with ``benchmarks/ema.py``)."""
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="off", help="off, bf16 or fp16 [off]")
    p.add_argument("--cuda-graphs", action="store_true", help="train with --cuda-graphs (GPU)")
    p.add_argument("--jobs", type=int, default=1, help="members trained at once [1]")


def train_argv(data: str, options: dict, seed: int, out: Path, args) -> list[str]:
    argv = [sys.executable, "-m", "deeper", "train", "--data", data, "--seed", str(seed), "--out", str(out)]
    for key, value in {**options, **({"epochs": args.epochs} if args.epochs else {})}.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
            continue
        for v in value if isinstance(value, list) else [value]:
            argv += [flag, str(v)]
    argv += ["--amp", args.amp, "--no-tensorboard"]
    if (out / "checkpoints" / "latest").is_file():  # an interrupted member: continue it
        argv = [*argv[:4], "--resume", str(out)]
    argv += ["--device", args.device, "--no-progress", "--json"]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.cuda_graphs:
        argv.append("--cuda-graphs")
    return argv


def train_members(jobs: list[tuple[list[str], Path]], parallel: int, time_limit: float | None) -> list[str]:
    """Run the ``deeper train`` commands, ``parallel`` at a time; return the failures.

    Past ``time_limit`` seconds the running members are stopped (each keeps its last
    epoch checkpoint, so the next run resumes it) and the rest are not started.
    """
    deadline = time.monotonic() + time_limit if time_limit else None
    pending, running, failed = list(jobs), [], []
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    while pending or running:
        while pending and len(running) < parallel:
            argv, out = pending.pop(0)
            out.parent.mkdir(parents=True, exist_ok=True)
            log = open(out.parent / f"{out.name}.log", "a")  # noqa: SIM115 - closed when the process ends
            print(f"train {out}", file=sys.stderr, flush=True)
            running.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), out, log))
        time.sleep(1)
        if deadline is not None and time.monotonic() > deadline:
            for proc, _out, _log in running:
                proc.terminate()
            failed += [f"{out} (not finished within --time-limit)" for _, out in pending]
            pending = []
        for proc, out, log in list(running):
            if proc.poll() is not None:
                running.remove((proc, out, log))
                log.close()
                if proc.returncode != 0:
                    failed.append(f"{out} (exit {proc.returncode}; see {out}.log)")
                    print(f"FAILED {out}", file=sys.stderr, flush=True)
    return failed


def make_plan(
    names: list[str], *, data: str | None, members: int | None, out: Path, skip: int = 0
) -> list[tuple]:
    """The members of the ensembles ``names``: ``(ensemble, dataset, group, options, seed, run folder)``.

    Each group's first ``members`` seeds (all by default) less its first ``skip``
    (trained elsewhere, e.g. in another GPU session).  They are listed round-robin
    over each ensemble's groups (every group's first seed, then every second one,
    ...), so that a ``--time-limit`` leaves each group members.
    """
    plan = []
    for name in names:
        dataset, groups = ENSEMBLES[name]
        for group, (options, seeds) in groups.items():
            for k, seed in enumerate(seeds[:members] if members else seeds):
                if k < skip:
                    continue
                folder = out / name / f"{group}-s{seed}"
                plan.append((k, names.index(name), (name, data or dataset, group, options, seed, folder)))
    return [x for *_, x in sorted(plan, key=lambda x: (x[1], x[0]))]


def scored_sets(name: str, finished: list[tuple]) -> dict[str, list[Path]]:
    """Row label -> run folders of the finished members (plan entries) of ensemble ``name``.

    Every group, each of the ensemble's :data:`SETS` that spans more than one group
    with finished members, and ``all`` when there are several groups.
    """
    groups = list(dict.fromkeys(x[2] for x in finished))
    sets = {g: [x[5] for x in finished if x[2] == g] for g in groups}
    for row, members in SETS.get(name, {}).items():
        if len({x[2] for x in finished if x[2] in members}) > 1:  # one group's row is there already
            sets[row] = [x[5] for x in finished if x[2] in members]
    if len(groups) > 1:
        sets["all"] = [x[5] for x in finished]
    return sets


def score(name: str, probs: torch.Tensor, labels: torch.Tensor, accs: list[float]) -> dict:
    """Single-model (``accs``) and ensemble accuracies of the members whose probabilities are ``probs``."""
    by = score_ensemble(probs, labels)
    wrong = ensemble_errors(probs, labels, "mean")["wrong"]
    return {
        "ensemble": name, "members": len(accs), "member_accuracy": accs,
        "single_mean": statistics.fmean(accs), "single_min": min(accs), "single_max": max(accs),
        "ensemble_mean": by["mean"], "ensemble_vote": by["vote"],
        # the test images the mean ensemble gets wrong, and how many every member gets wrong
        "errors": wrong, "wrong_by_every_member": int((probs.argmax(2) != labels).all(0).sum()),
    }  # fmt: skip


def shared_errors(rows: list[dict]) -> list[str]:
    """A line per pair of rows: how many of the test images each gets wrong they share."""
    return [
        f"{a['ensemble']} ({len(a['errors'])} errors) and {b['ensemble']} ({len(b['errors'])}) "
        f"share {len(set(a['errors']) & set(b['errors']))}"
        for i, a in enumerate(rows) for b in rows[i + 1 :]
    ]  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(ENSEMBLES)}")
    p.add_argument(
        "--groups", help="train only these groups (comma-separated); scoring covers every finished one"
    )
    p.add_argument(
        "--members", type=int,
        help="seeds per group (default: each group's own list), in training and in the scoring "
        "that follows it; --score-only without it scores every finished member",
    )  # fmt: skip
    p.add_argument(
        "--skip", type=int, default=0, metavar="K",
        help="leave out each group's first K seeds (trained on another machine) [0]",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, help="override every group's epochs (smoke runs)")
    p.add_argument("--data", help="override every ensemble's dataset (smoke runs: digits)")
    add_member_options(p)
    p.add_argument(
        "--time-limit", type=float, metavar="S", help="stop training after S seconds, score what finished"
    )
    p.add_argument("--score-only", action="store_true", help="score the finished members, train nothing")
    p.add_argument("--tta", default="none", help="test-time augmentation of the scoring: none, flip or shift")
    p.add_argument(
        "--no-cache", dest="cache", action="store_false",
        help="run every member on the test set again instead of reading the probabilities kept in "
        "its predictions/ folder (kept per device type, reused while the weights file is the same)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/accuracy", help="folder of the member runs [runs/accuracy]")
    p.add_argument("--output", default=str(RESULTS / "accuracy.json"))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(ENSEMBLES)
    if unknown := [n for n in names if n not in ENSEMBLES]:
        p.error(f"unknown ensemble(s): {', '.join(unknown)} (known: {', '.join(ENSEMBLES)})")

    started = time.perf_counter()
    plan = make_plan(names, data=args.data, members=args.members, out=Path(args.out), skip=args.skip)
    wanted = set(args.groups.split(",")) if args.groups else None
    todo = [
        (train_argv(d, o, s, out, args), out) for _, d, g, o, s, out in plan if wanted is None or g in wanted
    ]
    for _, d, g, o, _, out in plan:  # a finished member is reused only if it was trained as planned
        recipe = {"data": d, **o, **({"epochs": args.epochs} if args.epochs else {})}
        if (out / "member.json").is_file() and json.loads((out / "member.json").read_text()) != recipe:
            p.error(f"{out} holds a member trained with other options; choose another --out or remove it")
        if not args.score_only and (wanted is None or g in wanted):
            out.mkdir(parents=True, exist_ok=True)
            (out / "member.json").write_text(json.dumps(recipe) + "\n")
    todo = [(a, out) for a, out in todo if not (out / "result.json").is_file()]
    failed = [] if args.score_only else train_members(todo, args.jobs, args.time_limit)

    results, rows, fixed = [], [], []  # fixed: the rows of SETS and "all", compared for shared errors
    for name in names:
        mine = [x for x in plan if x[0] == name and (x[5] / "result.json").is_file()]
        if not mine:
            continue
        data = mine[0][1]
        sets = scored_sets(name, mine)
        everyone = [x[5] for x in mine]  # each member's probabilities once, sliced per group
        probs, labels, members, _ = ensemble_probabilities(
            [str(p) for p in everyone], data=data, device=args.device, data_dir=args.data_dir, tta=args.tta,
            cache=args.cache,
        )  # fmt: skip
        for label, runs in sets.items():
            suffix = f" (tta {args.tta})" if args.tta != "none" else ""
            idx = [everyone.index(p) for p in runs]
            r = score(f"{name}/{label}{suffix}", probs[idx], labels, [members[i]["accuracy"] for i in idx])
            r["tta"] = args.tta
            done = [json.loads((p / "result.json").read_text()) for p in runs]
            r["train_seconds"] = [d["train_seconds"] for d in done]
            r["trained_with"] = sorted({f"{d['device']}, amp {d.get('amp', 'off')}" for d in done})
            r["scored_on"] = f"{args.device}: {machine()}"
            results.append(r)
            if label in SETS.get(name, {}) or label == "all":
                fixed.append(r)
            rows.append({
                "ensemble": r["ensemble"], "members": r["members"],
                "single (mean, min-max)": f"{r['single_mean']:.4f} ({r['single_min']:.4f}-{r['single_max']:.4f})",
                "ensemble mean": f"{r['ensemble_mean']:.4f}", "ensemble vote": f"{r['ensemble_vote']:.4f}",
                "errors (by every member)": f"{len(r['errors'])} ({r['wrong_by_every_member']})",
            })  # fmt: skip
    print_table(rows)
    for line in shared_errors(fixed):
        print(line)
    output = Path(args.output)
    if output.is_file():  # keep the other ensembles' figures (each may be trained in its own session)
        old = json.loads(output.read_text())
        mine = lambda r: r["ensemble"].split("/")[0] in names and r.get("tta", "none") == args.tta  # noqa: E731
        keep = [r for r in old.get("results", []) if not mine(r)]
        results = keep + results
    configs = {n: {"data": d, "groups": {g: {"options": o, "seeds": s} for g, (o, s) in gs.items()}} for n, (d, gs) in ENSEMBLES.items()}  # fmt: skip
    write_result(args.output, {
        "benchmark": "accuracy", "torch": torch.__version__,
        "configs": configs, "results": results, "failed": failed,
        "seconds": time.perf_counter() - started,
    })  # fmt: skip
    for f in failed:
        print(f"accuracy: member failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
