"""Restoration ("image reconstruction"): denoising and inpainting with a residual U-Net, on the CPU.

Each configuration (:data:`CONFIGS`, fixed before running) is one ``deeper train --task restore`` run:
on random patches of the 16 training photographs, scored on the 5 held-out photographs whole (RGB),
or on MNIST / Fashion-MNIST's training images, scored on 200 of their test images (denoising only:
a hole on a digit's black background changes nothing, and an unchanged image has no PSNR).  The damage of
the held-out images is the same for the network and the simple repairs: the damaged image itself,
an oracle-tuned Gaussian blur (noise) or the mean of the known pixels (holes); ``baseline`` is,
image by image, the best of them.  A run stops after 15 minutes of training.  ``denoise-photos-long``
repeats ``denoise-photos`` with the whole budget (28 epochs, about 13 minutes of one core, instead of 4);
``denoise-photos-scales`` repeats it with scale augmentation (each training photograph also downscaled by
0.9, 0.8, 0.7 and 0.6: ``superres.SCALES``), ``denoise-photos-dead-leaves`` that with 64 synthetic dead-leaves
images added to the training photographs, and ``denoise-photos-bf16-x8`` that in bfloat16 autocast for twice the
epochs, scored with the geometric self-ensemble (``self_ensemble=8``; its single pass as ``1-pass gain``).

``--classical`` scores two classical denoisers of scikit-image on the same noisy held-out photographs (the
noise of the ``denoise-photos`` runs, drawn with the task's evaluation seed): non-local means (``h`` = 0.8 sigma,
5x5 patches within 13x13, sigma known) and total-variation denoising (Chambolle; its weight, like the blur's
width, the best of a few for each image).  They are no "simple
repair" of the target; they say where the learned denoiser stands against methods built for the job.

    flock /tmp/deeper-cpu.lock python benchmarks/restore.py --data-dir ../shared/datasets --figures docs/images
    python benchmarks/restore.py --classical      # the classical denoisers only (about a minute)
    python benchmarks/restore.py --quick --out /tmp/r      # smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, merge_runs, print_table, write_result  # noqa: E402
from superres import BUDGET_S, SCALES  # noqa: E402

from deeper.train.callbacks import TimeLimit  # noqa: E402

COMMON: dict = {"optimizer": "adam", "schedule": "cosine", "label_smoothing": 0.0, "lr": 0.001}
PHOTO_NET = {"width": 16, "depth": 3}
DIGIT_NET = {"width": 16, "depth": 2}
#: configuration -> (dataset, model options, task options, training options), fixed before running
CONFIGS: dict[str, tuple] = {
    "denoise-photos": ("photos", PHOTO_NET, {"damage": "noise", "sigma": 25.0, "patch": 64, "patches": 2048},
                       {"epochs": 4, "batch_size": 16}),
    "denoise-photos-long": ("photos", PHOTO_NET, {"damage": "noise", "sigma": 25.0, "patch": 64, "patches": 2048},
                            {"epochs": 28, "batch_size": 16}),
    "denoise-photos-scales": ("photos", PHOTO_NET, {"damage": "noise", "sigma": 25.0, "patch": 64, "patches": 2048,
                              "scales": SCALES}, {"epochs": 28, "batch_size": 16}),
    # denoise-photos-scales with 64 synthetic dead-leaves images of 384 px (deeper.image2image.dead_leaves; about a
    # third of the training pixels) beside the photographs: its validation PSNR peaks early and falls, and scale
    # augmentation (more copies of the same 16 photographs) did not stop that; dead leaves are new pictures with the
    # edges and flat regions of photographs (Achddou, Gousseau & Ladjal 2021 train denoisers on them alone)
    "denoise-photos-dead-leaves": ("photos", PHOTO_NET, {"damage": "noise", "sigma": 25.0, "patch": 64,
                                   "patches": 2048, "scales": SCALES, "dead_leaves": 64},
                                   {"epochs": 28, "batch_size": 16}),
    # denoise-photos-dead-leaves in bfloat16 autocast (--amp bf16: a training step of this U-Net runs about twice as
    # fast on a CPU with AVX-512 BF16) for twice the epochs, scored with the geometric self-ensemble (the 8 flips and
    # turns of each held-out image; the single pass is scored beside it)
    "denoise-photos-bf16-x8": ("photos", PHOTO_NET, {"damage": "noise", "sigma": 25.0, "patch": 64,
                               "patches": 2048, "scales": SCALES, "dead_leaves": 64, "self_ensemble": 8},
                               {"epochs": 56, "batch_size": 16, "amp": "bf16"}),
    "inpaint-photos": ("photos", PHOTO_NET, {"damage": "inpaint", "hole": 16, "cover": 0.15, "patch": 64,
                       "patches": 2048}, {"epochs": 4, "batch_size": 16}),
    "denoise-mnist": ("mnist", DIGIT_NET, {"damage": "noise", "sigma": 50.0, "patches": 8192},
                      {"epochs": 2, "batch_size": 64}),
    "denoise-fashion": ("fashion-mnist", DIGIT_NET, {"damage": "noise", "sigma": 50.0, "patches": 8192},
                        {"epochs": 2, "batch_size": 64}),
}  # fmt: skip
TARGET_DB = 3.0  # restored PSNR above the best simple repair, held-out photographs


def train(name: str, out: Path, quick: bool, data_dir: str | None) -> dict:
    from deeper.train import TrainConfig, fit

    run_dir = out / name
    if (run_dir / "result.json").is_file():
        return json.loads((run_dir / "result.json").read_text())
    data, model_kwargs, task_args, opts = CONFIGS[name]
    task_args = {**task_args, "figures": True}
    opts = {**COMMON, **opts}
    if quick:
        opts["epochs"] = 1
        task_args = {**task_args, "patches": 2 * opts["batch_size"], "eval_crop": 64, "eval_images": 16}
    cfg = TrainConfig(task="restore", model="restore-unet", data=data, model_kwargs=model_kwargs, task_args=task_args,
                      data_dir=data_dir, out=str(run_dir), tensorboard=False, progress=False, **opts)  # fmt: skip
    return fit(cfg, callbacks=[TimeLimit(BUDGET_S)])


#: the weights of total-variation denoising tried on each image (the best one kept: an oracle, as the blur's width)
TV_WEIGHTS = (0.04, 0.06, 0.08, 0.1, 0.13, 0.16)


def _tensor(image) -> torch.Tensor:
    """(H, W, C) float array -> (1, C, H, W) float tensor."""
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def classical(sigma: float = 25.0) -> dict:
    """PSNR and SSIM of scikit-image's non-local means and total-variation denoisers on the held-out photographs, with
    the noise the restore task's evaluation adds (its seed, its batches), beside its oracle blur."""
    import numpy as np
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    from deeper.data.photos import load_photos
    from deeper.image2image.damage import add_noise, best_blur
    from deeper.image2image.images import quantize
    from deeper.image2image.metrics import psnr, ssim
    from deeper.image2image.sources import ImageSource
    from deeper.tasks.restore import EVAL_SEED

    s = sigma / 255.0
    methods = {
        "blur": lambda x, noisy, clean: best_blur(noisy, clean),
        "nl-means": lambda x, noisy, clean: denoise_nl_means(x, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6,
                                                              fast_mode=True, channel_axis=-1),
        "total variation": lambda x, noisy, clean: max(
            (denoise_tv_chambolle(x, weight=w, channel_axis=-1) for w in TV_WEIGHTS),
            key=lambda y: float(psnr(_tensor(y), clean))),
    }  # fmt: skip
    gen = torch.Generator().manual_seed(EVAL_SEED)
    scored: dict[str, list] = {k: [] for k in methods}
    source = ImageSource(load_photos("test"), batch_size=64, colour="rgb")  # as the task's test batches
    for idx in source.batches:
        clean = source.images(idx)
        noisy = add_noise(clean, sigma, gen)
        for i in range(clean.shape[0]):
            x = noisy[i].permute(1, 2, 0).double().numpy()
            for name, fn in methods.items():
                out = fn(x, noisy[i : i + 1], clean[i : i + 1])
                out = quantize(_tensor(out) if isinstance(out, np.ndarray) else out)
                scored[name].append((float(psnr(out, clean[i : i + 1])), float(ssim(out, clean[i : i + 1]))))
    return {name: {"psnr": sum(v[0] for v in vals) / len(vals), "ssim": sum(v[1] for v in vals) / len(vals),
                   "per_image_psnr": [v[0] for v in vals]} for name, vals in scored.items()}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-restore", help="folder of the runs")
    p.add_argument("--data-dir", help="offline folder holding mnist/ and fashion-mnist/")
    p.add_argument("--only", action="append", help="configurations to train (default: all)")
    p.add_argument("--quick", action="store_true", help="one tiny epoch each (a smoke run; not a result)")
    p.add_argument(
        "--figures", metavar="DIR", help="copy the runs' restore.png figures here (i2i_restore_*.png)"
    )
    p.add_argument("--output", help="JSON result (default: benchmarks/results/restore.json)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the 2 cores are shared)")
    p.add_argument("--classical", action="store_true", help="score scikit-image's classical denoisers only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.classical:
        found = classical()
        print_table(
            [
                {"denoiser": k, "PSNR": f"{v['psnr']:.2f}", "SSIM": f"{v['ssim']:.4f}"}
                for k, v in found.items()
            ]
        )
        path = Path(args.output or RESULTS / "restore.json")
        data = json.loads(path.read_text()) if path.is_file() else {}
        data["classical"] = {"sigma": 25.0, "photographs": "test", "machine": machine(), "denoisers": found}
        print(f"wrote {write_result(path, data)}")
        return 0
    out = Path(args.out)
    rows, results = [], {}
    for name in args.only or list(CONFIGS):
        r = train(name, out, args.quick, args.data_dir)
        results[name] = r
        t = r["test"]
        other = "blur" if "blur_psnr" in t else "meanfill"
        rows.append({
            "config": name, "data": r["data"], "params": f"{r['params']:,}", "train s": f"{r['train_seconds']:.0f}",
            "steps": r["steps"], "damaged PSNR": f"{t['damaged_psnr']:.2f}",
            f"{'blur / mean fill'} PSNR": f"{t[other + '_psnr']:.2f}", "best simple PSNR": f"{t['baseline_psnr']:.2f}",
            "restored PSNR": f"{t['psnr']:.2f}", "restored SSIM": f"{t['ssim']:.4f}",
            "simple SSIM": f"{t['baseline_ssim']:.4f}", "gain dB": f"{t['psnr'] - t['baseline_psnr']:+.2f}",
            "1-pass gain": f"{t['single_psnr'] - t['baseline_psnr']:+.2f}" if "single_psnr" in t else "",
        })  # fmt: skip
        if args.figures and (Path(r["run_dir"]) / "restore.png").is_file():
            Path(args.figures).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(
                Path(r["run_dir"]) / "restore.png", Path(args.figures) / f"i2i_restore_{name}.png"
            )
    print_table(rows)
    if not args.quick:
        path = Path(args.output or RESULTS / "restore.json")
        path = write_result(path, merge_runs(path, {
            "benchmark": "restore", "machine": machine(), "torch": torch.__version__, "budget_s": BUDGET_S,
            "target_db": TARGET_DB, "configs": {k: list(v) for k, v in CONFIGS.items()}, "rows": rows,
            "results": {k: {"test": v["test"], "train_seconds": v["train_seconds"], "steps": v["steps"],
                            "stopped": v["stopped"], "params": v["params"]} for k, v in results.items()},
        }, list(CONFIGS)))  # fmt: skip
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
