"""Super-resolution on the photographs: bicubic, SRCNN, ESPCN, SRResNet and SRGAN trained on the CPU.

Every configuration (:data:`CONFIGS`, fixed before running) is one ``deeper train --task superres``
(or ``srgan``) run on random patches of the 16 training photographs (``--data photos``), scored on
the 5 held-out photographs (astronaut, camera, chelsea, coffee, flower) as the papers score: the
luminance Y, the low-resolution image made by bicubic shrinking to 8 bits, the bicubic baseline by
the same resize, ``scale`` pixels trimmed, PSNR and SSIM (torchmetrics).  A run stops after 15
minutes of training whatever its epochs (the issue's budget).  The table gives the training time
(the engine's ``train_seconds``), test PSNR and SSIM, the gain over bicubic, and the inference
throughput (held-out photographs per second, their luminance upscaled, batch 1, best of 3).

``srresnet-x4-residual`` drops the batch norm (as EDSR) and adds the bicubic enlargement of the
input to the output, so the network starts as bicubic; ``srgan-x4-residual`` starts from it.

The ``-textured`` configurations repeat another with the training photographs drawn equally often
(``balance``: by area, the retina and Hubble images would give over half the patches) and patches
flatter than a standard deviation of 0.02 skipped (``min_std``: a third of them, black borders and
empty sky).

The ``-long`` configurations repeat ``srcnn-x2-residual`` and ``espcn-x3`` with the whole budget: as
many epochs as about 14 minutes of one core hold (the others stopped after 1-2 minutes).  The
``-scales`` configurations repeat the ``-long`` ones with scale augmentation (:data:`SCALES`: each
training photograph also downscaled by 0.9, 0.8, 0.7 and 0.6, as VDSR trains).
``espcn-x3-residual`` repeats ``espcn-x3-scales`` with the bicubic enlargement of the input added to
the output (the option of SRCNN and SRResNet): the network starts as bicubic and learns its correction.
``srcnn-x2-interior`` repeats ``srcnn-x2-scales`` with each 32-pixel training patch scored on its central
20x20 only (``loss_border`` 6, SRCNN 9-1-5's reach): as the paper trains it (33-pixel patches, the central 21),
the patch's edges, where its bicubic enlargement and the padding differ from a whole image's, do not train it.
``espcn-x3-residual-lr`` repeats ``espcn-x3-residual`` at its paper's starting learning rate, 0.01 (the others:
0.001), annealed over the run (cosine) as the others.
``srcnn-x2-dead-leaves`` and ``espcn-x3-dead-leaves`` repeat ``srcnn-x2-scales`` and ``espcn-x3-residual`` with 64
synthetic dead-leaves images (384 px, :mod:`deeper.image2image.dead_leaves`) added to the training photographs.
``srcnn-x2-bf16-x8`` and ``espcn-x3-bf16-x8`` repeat ``srcnn-x2-dead-leaves`` and ``espcn-x3-residual`` in bfloat16
autocast for about twice the epochs, scored with the geometric self-ensemble (``self_ensemble=8``: the mean of the
outputs for the 8 flips and turns of each input; the single pass beside it as ``1-pass gain``; ``img/s`` with the
ensemble, as ``deeper predict`` upscales).

``srcnn-x2-ceiling`` and ``espcn-x3-ceiling`` are not results but bounds: the ``-bf16-x8`` configurations trained
on the 5 held-out photographs themselves (at their own scale, nothing beside them) for the whole budget.  No set of
training photographs suits those 5 better, so a ceiling below a target says that no training data would reach it
with that network and recipe in 15 minutes.  ``srcnn-x2-cv`` is the SRCNN ceiling cross-validated: five networks, each trained
on four of the held-out photographs and scored on the fifth (``--fold K`` trains fold K alone, so that two run side by
side; a run without it scores them), its row the mean over the five photographs.

``features`` trains the feature network of SRGAN's perceptual loss on the photographs' patches
(``deeper train --data photo-patches --model vgg-features``: which photograph a 32x32 patch comes
from); ``srgan-x4`` starts from ``srresnet-x4``'s weights.

Runs go to ``--out`` (one folder per configuration; finished runs are not trained again);
``--figures DIR`` draws docs/images/i2i_sr_x4.png, i2i_srgan.png and i2i_sr_gain.png from the runs
and the JSON.

    flock /tmp/deeper-cpu.lock python benchmarks/superres.py --figures docs/images
    python benchmarks/superres.py --quick --out /tmp/sr     # smoke run, seconds per configuration
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, merge_runs, print_table, write_result  # noqa: E402

from deeper.data.photos import TEST  # noqa: E402
from deeper.train.callbacks import TimeLimit  # noqa: E402

BUDGET_S = 15 * 60
COMMON: dict = {"data": "photos", "optimizer": "adam", "schedule": "cosine", "label_smoothing": 0.0}
#: configuration -> (task, model, model options, task options, training options), fixed before running
#: the ``-scales`` configurations' scale augmentation: each training photograph also downscaled by these
SCALES = "0.9,0.8,0.7,0.6"
CONFIGS: dict[str, tuple] = {
    "features": ("classify", "vgg-features", {"width": 16}, {},
                 {"data": "photo-patches", "subset": 8000, "epochs": 2, "batch_size": 64, "lr": 0.002,
                  "schedule": "onecycle"}),
    "srcnn-x2": ("superres", "srcnn", {}, {"scale": 2, "patch": 32, "patches": 4096},
                 {"epochs": 3, "batch_size": 32, "lr": 0.001}),
    "srcnn-x2-residual": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096},
                          {"epochs": 10, "batch_size": 32, "lr": 0.001}),
    "espcn-x3": ("superres", "espcn", {}, {"scale": 3, "patch": 48, "patches": 4096},
                 {"epochs": 20, "batch_size": 32, "lr": 0.001}),
    "srcnn-x2-residual-textured": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                                   "balance": True, "min_std": 0.02}, {"epochs": 10, "batch_size": 32, "lr": 0.001}),
    "espcn-x3-textured": ("superres", "espcn", {}, {"scale": 3, "patch": 48, "patches": 4096, "balance": True,
                          "min_std": 0.02}, {"epochs": 20, "batch_size": 32, "lr": 0.001}),
    "srcnn-x2-long": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096},
                      {"epochs": 90, "batch_size": 32, "lr": 0.001}),
    "espcn-x3-long": ("superres", "espcn", {}, {"scale": 3, "patch": 48, "patches": 4096},
                      {"epochs": 170, "batch_size": 32, "lr": 0.001}),
    "srcnn-x2-scales": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                        "scales": SCALES}, {"epochs": 90, "batch_size": 32, "lr": 0.001}),
    "espcn-x3-scales": ("superres", "espcn", {}, {"scale": 3, "patch": 48, "patches": 4096, "scales": SCALES},
                        {"epochs": 170, "batch_size": 32, "lr": 0.001}),
    "espcn-x3-residual": ("superres", "espcn", {"residual": True}, {"scale": 3, "patch": 48, "patches": 4096,
                          "scales": SCALES}, {"epochs": 170, "batch_size": 32, "lr": 0.001}),
    "espcn-x3-residual-lr": ("superres", "espcn", {"residual": True}, {"scale": 3, "patch": 48, "patches": 4096,
                             "scales": SCALES}, {"epochs": 170, "batch_size": 32, "lr": 0.01}),
    "srcnn-x2-interior": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                          "scales": SCALES, "loss_border": 6}, {"epochs": 90, "batch_size": 32, "lr": 0.001}),
    # srcnn-x2-scales with 64 synthetic dead-leaves images of 384 px (deeper.image2image.dead_leaves) beside the
    # photographs: neither scale augmentation nor patch centres moved it, and it gains as much on its training
    # photographs as on the held-out ones; dead leaves are new pictures, with sharp edges of every orientation
    "srcnn-x2-dead-leaves": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                             "scales": SCALES, "dead_leaves": 64}, {"epochs": 90, "batch_size": 32, "lr": 0.001}),
    # espcn-x3-residual (its best) with the same 64 dead-leaves images
    "espcn-x3-dead-leaves": ("superres", "espcn", {"residual": True}, {"scale": 3, "patch": 48, "patches": 4096,
                             "scales": SCALES, "dead_leaves": 64}, {"epochs": 170, "batch_size": 32, "lr": 0.001}),
    # srcnn-x2-dead-leaves and espcn-x3-dead-leaves in bfloat16 autocast (--amp bf16; a training step of SRCNN runs
    # about twice as fast on a CPU with AVX-512 BF16, ESPCN's half as fast again) for about twice the epochs, and
    # scored with the geometric self-ensemble (the 8 flips and turns of each held-out input; the single pass is
    # scored beside it): both gained with every doubling of their training so far
    "srcnn-x2-bf16-x8": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                         "scales": SCALES, "dead_leaves": 64, "self_ensemble": 8},
                         {"epochs": 200, "batch_size": 32, "lr": 0.001, "amp": "bf16"}),
    "espcn-x3-bf16-x8": ("superres", "espcn", {"residual": True}, {"scale": 3, "patch": 48, "patches": 4096,
                         "scales": SCALES, "self_ensemble": 8},
                         {"epochs": 300, "batch_size": 32, "lr": 0.001, "amp": "bf16"}),
    # the ceilings: srcnn-x2-bf16-x8 and espcn-x3-bf16-x8 trained on the held-out photographs themselves (at their
    # own scale, nothing else beside them) for as many epochs as the budget holds; no training set does better on
    # them, so a ceiling under a target says no choice of data reaches it with this network and budget
    "srcnn-x2-ceiling": ("superres", "srcnn", {"residual": True}, {"scale": 2, "patch": 32, "patches": 4096,
                         "self_ensemble": 8}, {"epochs": 230, "batch_size": 32, "lr": 0.001, "amp": "bf16"}),
    "espcn-x3-ceiling": ("superres", "espcn", {"residual": True}, {"scale": 3, "patch": 48, "patches": 4096,
                         "self_ensemble": 8}, {"epochs": 450, "batch_size": 32, "lr": 0.001, "amp": "bf16"}),
    "srcnn-x4-residual": ("superres", "srcnn", {"residual": True}, {"scale": 4, "patch": 48, "patches": 4096},
                          {"epochs": 4, "batch_size": 32, "lr": 0.001}),
    "espcn-x4": ("superres", "espcn", {}, {"scale": 4, "patch": 48, "patches": 4096},
                 {"epochs": 16, "batch_size": 32, "lr": 0.001}),
    "srresnet-x4": ("superres", "srresnet", {"blocks": 8, "width": 32}, {"scale": 4, "patch": 64, "patches": 2048},
                    {"epochs": 5, "batch_size": 16, "lr": 0.0005}),
    "srgan-x4": ("srgan", "srresnet", {}, {"scale": 4, "patch": 64, "patches": 1024, "init": "@srresnet-x4",
                 "features": "@features", "layer": "relu3_1", "perceptual": 1.0, "pixel": 1.0,
                 "adversarial": 0.003, "d_width": 16},
                 {"epochs": 3, "batch_size": 16, "lr": 0.0001, "schedule": "constant"}),
    "srresnet-x4-residual": ("superres", "srresnet", {"blocks": 8, "width": 32, "bn": False, "residual": True},
                             {"scale": 4, "patch": 64, "patches": 2048}, {"epochs": 5, "batch_size": 16, "lr": 0.0005}),
    "srgan-x4-residual": ("srgan", "srresnet", {}, {"scale": 4, "patch": 64, "patches": 1024,
                          "init": "@srresnet-x4-residual", "features": "@features", "layer": "relu3_1",
                          "perceptual": 1.0, "pixel": 1.0, "adversarial": 0.003, "d_width": 16},
                          {"epochs": 3, "batch_size": 16, "lr": 0.0001, "schedule": "constant"}),
}  # fmt: skip
#: cross-validated configurations: the named ceiling trained once per held-out photograph, on the other four alone,
#: and scored on that one photograph; the row is the mean of the five (without the validation photograph: it is
#: scored every epoch, which takes twice the training step's time, and the runs end with their last weights anyway)
FOLDED = {"srcnn-x2-cv": "srcnn-x2-ceiling"}


def _with_folds(configs: dict[str, tuple]) -> dict[str, tuple]:
    """``configs`` with each cross-validated configuration placed after its base: the base without validation."""
    out = {}
    for name, (task, model, model_kwargs, task_args, train) in configs.items():
        out[name] = (task, model, model_kwargs, task_args, train)
        for folded in (n for n, base in FOLDED.items() if base == name):
            out[folded] = (task, model, model_kwargs, task_args, {**train, "val_size": 0})
    return out


CONFIGS = _with_folds(CONFIGS)
#: the issue's targets: gain over bicubic in dB
TARGETS = {
    "srcnn-x2": 2.0,
    "srcnn-x2-residual": 2.0,
    "srcnn-x2-residual-textured": 2.0,
    "espcn-x3": 1.5,
    "espcn-x3-textured": 1.5,
    "srcnn-x2-long": 2.0,
    "espcn-x3-long": 1.5,
    "srcnn-x2-scales": 2.0,
    "espcn-x3-scales": 1.5,
    "espcn-x3-residual": 1.5,
    "srcnn-x2-interior": 2.0,
    "espcn-x3-residual-lr": 1.5,
    "srcnn-x2-dead-leaves": 2.0,
    "espcn-x3-dead-leaves": 1.5,
    "srcnn-x2-bf16-x8": 2.0,
    "espcn-x3-bf16-x8": 1.5,
    "srcnn-x2-cv": 2.0,
}
QUICK = {"epochs": 1, "subset": None}
#: configurations trained on the held-out photographs (a bound on what any training photographs give, not a result)
CEILINGS = ("srcnn-x2-ceiling", "espcn-x3-ceiling")


def settings(name: str, out: Path, quick: bool) -> dict:
    task, model, model_kwargs, task_args, train = CONFIGS[name]
    task_args = {k: (str(out / v[1:] / "model.safetensors") if isinstance(v, str) and v.startswith("@") else v)
                 for k, v in task_args.items()}  # fmt: skip
    opts = {
        **COMMON,
        **train,
        "task": task,
        "model": model,
        "model_kwargs": model_kwargs,
        "task_args": task_args,
    }
    if task != "classify":
        opts["task_args"] = {**task_args, "figures": False}
    if quick:
        opts["epochs"] = 1
        if task == "classify":
            opts["subset"] = 256
        else:
            opts["task_args"] = {**opts["task_args"], "patches": 2 * opts["batch_size"], "eval_crop": 64}
    return opts


def train(name: str, out: Path, quick: bool, folds: list[int] | None = None) -> dict:
    """The result of configuration ``name`` (trained unless its run is finished); of a cross-validated one, the
    folds ``folds`` only (default: all five, combined)."""
    from deeper.data.photos import splits

    if name in FOLDED:
        done = {}
        for k in range(len(TEST)) if folds is None else folds:
            held_out = TEST[k]
            with splits(train=_train_photos(held_out), test=(held_out,)):
                done[held_out] = _fit(name, out / name / held_out, out, quick)
        return combine_folds(done) if folds is None else {}
    if name in CEILINGS:
        with splits(train=TEST):
            return _fit(name, out / name, out, quick)
    return _fit(name, out / name, out, quick)


def _train_photos(held_out: str) -> tuple[str, ...]:
    """A fold's training photographs: the held-out ones but the one it scores."""
    return tuple(n for n in TEST if n != held_out)


def _fit(name: str, run_dir: Path, out: Path, quick: bool) -> dict:
    from deeper.train import TrainConfig, fit

    if (run_dir / "result.json").is_file():
        return json.loads((run_dir / "result.json").read_text())
    cfg = TrainConfig(**settings(name, out, quick), out=str(run_dir), tensorboard=False, progress=False)
    return fit(cfg, callbacks=[TimeLimit(BUDGET_S)])


#: the scores of a run on its test split, averaged over the folds of a cross-validated configuration
FOLD_MEANS = ("test_psnr", "test_ssim", "test_bicubic_psnr", "test_bicubic_ssim", "test_single_psnr")


def combine_folds(folds: dict[str, dict]) -> dict:
    """One result of the folds' results (``{held-out photograph: result}``): each score the mean over the folds, so
    the mean over the photographs (each fold scores one); the longest training time, the fewest steps and epochs
    (each fold is a network trained within the budget); fold 0's run folder and task; every fold's own scores."""
    first = next(iter(folds.values()))
    r = {
        k: sum(f[k] for f in folds.values()) / len(folds) if first.get(k) is not None else None
        for k in FOLD_MEANS
    }
    slowest = max(folds.values(), key=lambda f: f["train_seconds"])
    r |= {"train_seconds": slowest["train_seconds"], "steps": min(f["steps"] for f in folds.values()),
          "epochs": min(f["epochs"] for f in folds.values()), "stopped": slowest["stopped"],
          "params": first["params"], "task": first["task"], "run_dir": first["run_dir"],
          "folds": {p: {k: f[k] for k in (*FOLD_MEANS, "train_seconds", "steps")} for p, f in folds.items()}}  # fmt: skip
    return r


@torch.inference_mode()
def inference_rate(task, net) -> float:
    """Held-out photographs upscaled per second (their luminance, batch 1, best of 3 passes; with the run's
    self-ensemble, as ``deeper predict`` upscales)."""
    from deeper.data.photos import load_photos
    from deeper.image2image.images import downscale, modcrop
    from deeper.image2image.sources import as_colour
    from deeper.image2image.superres import super_resolve

    s = task.scale
    lrs = [
        downscale(modcrop(as_colour(im[None].float() / 255, "y"), s), s) for im in load_photos("test").images
    ]
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for lr in lrs:
            super_resolve(
                net, lr, None, s, upsampled_input=task.upsampled_input, ensemble=task.args["self_ensemble"]
            )
        best = min(best, time.perf_counter() - t)
    return len(lrs) / best


def _loaded(run_dir: Path):
    """``(task, network in eval mode)`` of a finished run's weights."""
    from deeper.inference import task_of
    from deeper.models.weights import load_weights

    weights = run_dir / "model.safetensors"
    task = task_of(load_weights(weights)[1])
    net, _ = task.load_model(weights)
    return task, net.eval()


@torch.inference_mode()
def gains_by_split(task, net, side: int = 512) -> dict[str, float]:
    """The mean gain over bicubic (dB) on the training photographs beside the held-out ones, each photograph's
    central ``side`` x ``side`` at most (the largest training images are 1,411 pixels wide): a network that
    gains as much on the photographs it was trained on as on new ones is held back by its size and budget, not
    by what it learnt of the sixteen."""
    from deeper.data.photos import load_photos
    from deeper.image2image.figures import crop_centre
    from deeper.image2image.images import modcrop, quantize, trim
    from deeper.image2image.metrics import psnr
    from deeper.image2image.sources import as_colour
    from deeper.image2image.superres import sr_inputs, super_resolve

    s = task.scale
    out = {}
    for split in ("train", "test"):
        gains = []
        for im in load_photos(split).images:
            hr = modcrop(crop_centre(as_colour(im[None].float() / 255, "y"), side), s)
            lr, bic = sr_inputs(hr, s)
            y = super_resolve(
                net, lr, bic, s, upsampled_input=task.upsampled_input, ensemble=task.args["self_ensemble"]
            )
            y = quantize(y)
            gains.append(float(psnr(trim(y, s), trim(hr, s)) - psnr(trim(quantize(bic), s), trim(hr, s))))
        out[split] = sum(gains) / len(gains)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-superres", help="folder of the runs")
    p.add_argument("--only", action="append", help="configurations to train (default: all)")
    p.add_argument("--quick", action="store_true", help="one tiny epoch each (a smoke run; not a result)")
    p.add_argument("--figures", metavar="DIR", help="draw the figures of docs/image2image.md here")
    p.add_argument("--output", help="JSON result (default: benchmarks/results/superres.json)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the 2 cores are shared)")
    p.add_argument("--fold", type=int, action="append", choices=range(len(TEST)),
                   help=f"train only these folds (0-{len(TEST) - 1}) of the cross-validated configurations, and stop (to train "
                        "folds side by side; a run without --fold then scores them)")  # fmt: skip
    args = p.parse_args(argv)
    names = args.only or list(CONFIGS)
    if args.fold and not any(n in FOLDED for n in names):
        p.error(f"--fold trains folds of the cross-validated configurations ({', '.join(FOLDED)}) only")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.fold:
        for name in (n for n in names if n in FOLDED):
            train(name, out, args.quick, args.fold)
        return 0
    rows, results = [], {}
    for name in names:
        r = train(name, out, args.quick)
        results[name] = r
        if r["task"] == "classify":
            print(
                f"{name}: vgg-features on photo-patches, test accuracy {r['test_accuracy']:.3f} "
                f"({len(r.get('test', {}).get('confusion_matrix', [])) or 16} photographs), {r['train_seconds']:.0f} s"
            )
            continue
        task, net = _loaded(Path(r["run_dir"]))  # the run's weights, read once for both measurements
        rate = inference_rate(task, net)
        results[name]["inference_img_per_s"] = rate
        if (
            name in TARGETS and name not in FOLDED
        ):  # the target rows: do they fall short on the photographs they were trained on too?
            by_split = gains_by_split(task, net)
            results[name] |= {
                "train_photos_gain_db": by_split["train"],
                "test_photos_crop_gain_db": by_split["test"],
            }
        gain = r["test_psnr"] - r["test_bicubic_psnr"]
        single = r.get("test_single_psnr")  # with a self-ensemble: its single pass
        target = TARGETS.get(name)
        rows.append({
            "config": name, "scale": f"x{CONFIGS[name][3]['scale']}", "params": f"{r['params']:,}",
            "train s": f"{r['train_seconds']:.0f}", "steps": r["steps"],
            "PSNR": f"{r['test_psnr']:.2f}", "SSIM": f"{r['test_ssim']:.4f}",
            "bicubic PSNR": f"{r['test_bicubic_psnr']:.2f}", "bicubic SSIM": f"{r['test_bicubic_ssim']:.4f}",
            "gain dB": f"{gain:+.2f}",
            "1-pass gain": f"{single - r['test_bicubic_psnr']:+.2f}" if single is not None else "", "target": f">= +{target:.1f}" if target else "",
            "img/s": f"{rate:.1f}",
        })  # fmt: skip
    print_table(rows)
    # the rows of the gain chart (a written results file: all of its configurations)
    scored = {k: v for k, v in results.items() if v.get("test_psnr") is not None}
    if not args.quick:
        path = Path(args.output or RESULTS / "superres.json")
        merged = merge_runs(path, {
            "benchmark": "superres", "machine": machine(), "torch": torch.__version__,
            "budget_s": BUDGET_S, "configs": {k: list(v) for k, v in CONFIGS.items()}, "targets_db": TARGETS,
            "rows": rows,
            "results": {k: {x: v.get(x) for x in ("test_psnr", "test_ssim", "test_bicubic_psnr", "test_bicubic_ssim",
                           "test_single_psnr", "test_accuracy", "train_seconds", "steps", "epochs", "stopped", "params",
                           "inference_img_per_s", "train_photos_gain_db", "test_photos_crop_gain_db", "run_dir")}
                        | ({"folds": v["folds"]} if "folds" in v else {}) for k, v in results.items()},
        }, list(CONFIGS))  # fmt: skip
        path = write_result(path, merged)
        print(f"wrote {path}")
        scored = {k: v for k, v in merged["results"].items() if v.get("test_psnr") is not None}
    if args.figures:
        figures(out, Path(args.figures), results, scored)
    return 0


def figures(out: Path, folder: Path, results: dict, scored: dict) -> None:
    """The x4 comparison and SRGAN beside SRResNet (of the runs of ``results``), and the gains over bicubic of
    every configuration of ``scored`` (those of the results file)."""
    from deeper.analysis.plots import plt, save_figure
    from deeper.data.photos import load_photos
    from deeper.image2image.figures import image_grid
    from deeper.image2image.images import downscale, modcrop
    from deeper.image2image.superres import bicubic_colour, upscale_colour
    from deeper.inference import task_of
    from deeper.models.weights import load_weights

    folder.mkdir(parents=True, exist_ok=True)
    photos = load_photos("test")
    windows = {"astronaut": (60, 190, 112), "chelsea": (60, 150, 112), "coffee": (150, 250, 112)}

    def load(name):
        w = out / name / "model.safetensors"
        task = task_of(load_weights(w)[1])
        net, _ = task.load_model(w)
        return net.eval(), task

    def row_of(names, labels):
        rows = []
        for photo, (top, left, size) in windows.items():
            im = photos.images[photos.names.index(photo)]
            hr = modcrop(im[None].float() / 255, 4)
            lr = downscale(hr, 4)
            cells = [(f"{photo}: bicubic", bicubic_colour(lr, 4))]
            for n, label in zip(names, labels):
                net, task = load(n)
                cells.append((label, upscale_colour(net, lr, 4, upsampled_input=task.upsampled_input)))
            cells.append(("original", hr))
            rows.append([(c, x[..., top : top + size, left : left + size]) for c, x in cells])
        return rows

    x4 = [n for n in ("srcnn-x4-residual", "espcn-x4", "srresnet-x4", "srresnet-x4-residual") if n in results]
    if x4:
        labels = [f"{n.replace('-x4', '')} {results[n]['test_psnr']:.2f} dB" for n in x4]
        image_grid(
            row_of(x4, labels), folder / "i2i_sr_x4.png", title="x4 on held-out photographs (test PSNR on Y)"
        )
    pairs = [(g, r) for g, r in (("srgan-x4-residual", "srresnet-x4-residual"), ("srgan-x4", "srresnet-x4"))
             if g in results and r in results]  # fmt: skip
    if pairs:
        g, r = pairs[0]
        labels = [f"SRResNet {results[r]['test_psnr']:.2f} dB", f"SRGAN {results[g]['test_psnr']:.2f} dB"]
        image_grid(
            row_of([r, g], labels),
            folder / "i2i_srgan.png",
            title=f"{r} (MSE) and {g} (perceptual + adversarial), x4",
        )
    sr = list(scored)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    gains = [scored[n]["test_psnr"] - scored[n]["test_bicubic_psnr"] for n in sr]
    colours = ["#bbbbbb" if n in CEILINGS else "#4c72b0" if g >= 0 else "#c44e52" for n, g in zip(sr, gains)]
    ax.bar(range(len(sr)), gains, color=colours)
    ax.set_xticks(range(len(sr)), sr, rotation=35, ha="right", fontsize=7)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("PSNR gain over bicubic, dB")
    ax.set_title("held-out photographs, Y channel (the CPU of each run: the results table; grey: trained on them)",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, folder / "i2i_sr_gain.png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
