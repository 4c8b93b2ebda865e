"""Image generation on MNIST and Fashion-MNIST: DCGAN and DDPM trained on the CPU, scored honestly.

FID and KID are taken in the feature space of a **LeNet-5 trained here** on the same dataset (the
input of its last layer, 84 numbers; ``deeper train --model lenet5``, 2 epochs): no Inception
weights exist here, and published Inception-FIDs on MNIST (about 7-10 for the best GANs of a
large study) do not transfer to this scale.  Every generated set is compared with as many real
test images; the **floor** is the same FID between as many real training and real test images,
and deliberately bad references (the test images blurred, and training images of one class
only) show what the scale means.  Class coverage: the classifier's labels over the samples.

Each configuration (:data:`CONFIGS`, fixed before running) is one ``deeper train --task generate``
or ``--task diffusion`` run (``runs`` under ``--out``; a finished run is not trained again, so
rows can be trained one at a time with ``--only``).  The issue's targets: DCGAN FID at most 5x
the floor with every class between 8% and 12% of the samples, DDPM (DDIM sampling) at most 10x
the floor, each trained in at most 15 minutes on this CPU.

Text to image (``--text``, on ``scenes-cap``; target: 80% of the generated scenes match their prompt as read
back): one diffusion U-Net reading the caption (``text-to-image``), and two stages (``text-layout``: the caption
to a layout of digits, drawn with the digits of a class-conditional DCGAN trained for :data:`GLYPH_EPOCHS`
epochs, row ``mnist-dcgan-glyphs``; the two stages' training together within the 15 minutes), its layout
written in the order the caption names the digits or (``layout-left-to-right``) left to right.

    python benchmarks/generation.py --data-dir ../shared/datasets                 # every row
    python benchmarks/generation.py --data-dir ../shared/datasets --only mnist-dcgan
    python benchmarks/generation.py --data-dir ../shared/datasets --text-only     # text to image, the readers
    python benchmarks/generation.py --data-dir ../shared/datasets --text-only --text-models layout layout-left-to-right
    python benchmarks/generation.py --quick --out /tmp/g                          # a smoke run on digits
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
from _common import RESULTS, machine, merge_into, print_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("mnist", "fashion-mnist")
#: the feature classifier of each dataset
CLASSIFIER = {"model": "lenet5", "epochs": 2, "recipe": "fast"}
#: configuration -> training options (a dataset's rows are "<data>-<name>"), fixed before any was run
CONFIGS: dict[str, dict] = {
    "dcgan": dict(
        task="generate", model="dcgan", model_kwargs={"width": 32, "d_width": 32, "latent": 64}, epochs=5,
        batch_size=64, lr=2e-4, schedule="constant", optimizer="adam",
        task_args={"conditional": False, "test_samples": 10000, "val_samples": 1000},
    ),
    "dcgan-conditional": dict(
        task="generate", model="dcgan", model_kwargs={"width": 32, "d_width": 32, "latent": 64}, epochs=40,
        batch_size=64, lr=2e-4, schedule="constant", optimizer="adam",
        task_args={"conditional": True, "test_samples": 10000, "val_samples": 1000},
    ),
    "wgan-gp": dict(
        task="generate", model="wgan-gp", model_kwargs={"width": 32, "d_width": 32, "latent": 64}, epochs=40,
        batch_size=64, lr=1e-4, schedule="constant", optimizer="adam",
        task_args={"conditional": False, "n_critic": 5, "gp": 10.0, "test_samples": 10000, "val_samples": 1000},
    ),
    "ddpm": dict(
        task="diffusion", model="ddpm-unet", model_kwargs={"width": 16, "mults": [1, 2, 2], "dropout": 0.0},
        epochs=2, batch_size=64, lr=2e-3, schedule="onecycle", optimizer="adam", ema=0.999,
        task_args={"conditional": True, "guidance": 2.0, "ddim_steps": 20, "test_samples": 2000,
                   "val_samples": 100},
    ),
}  # fmt: skip
#: DDPM for more of the 15-minute budget: three epochs (about 10 minutes of a 2-core AMD EPYC)
CONFIGS["ddpm-long"] = CONFIGS["ddpm"] | {"epochs": 3}
#: the conditional DCGAN's 15 minutes, ending with the weights of its best validation FID (its FID rises again
#: after about ten epochs)
CONFIGS["dcgan-conditional-best"] = CONFIGS["dcgan-conditional"] | {"restore_best": True}
#: the same, its generator evaluated and saved as an exponential moving average of its weights (Yazici et al.
#: 2019: an average of the generator's iterates comes closer to the data than its last ones)
CONFIGS["dcgan-conditional-ema"] = CONFIGS["dcgan-conditional-best"] | {"ema": 0.999}
#: DDPM for four epochs (about 13 minutes of a 2-core AMD EPYC)
CONFIGS["ddpm-4"] = CONFIGS["ddpm"] | {"epochs": 4}
#: the conditional DCGAN with its learning rates annealed to 0 (cosine) over the 20 epochs that 15 minutes hold:
#: at a constant rate the discriminator pulls ahead after about ten epochs and the generator drifts away
CONFIGS["dcgan-conditional-cosine"] = CONFIGS["dcgan-conditional-best"] | {"epochs": 20, "schedule": "cosine"}
#: the conditional DCGAN's 15 minutes with one-sided label smoothing (Salimans et al. 2016: real images' target
#: 0.9): the discriminator's loss keeps falling and the validation FID rising after about ten epochs
CONFIGS["dcgan-conditional-smooth"] = CONFIGS["dcgan-conditional-best"] | {
    "task_args": CONFIGS["dcgan-conditional"]["task_args"] | {"real_label": 0.9}
}
#: the conditional DCGAN's 15 minutes with a spectrally normalised discriminator instead of a batch-normalised one
#: (SN-GAN, Miyato et al. 2018): label smoothing slowed the discriminator's fall, yet the validation FID still rose
#: after its early best epoch; a discriminator whose every layer is 1-Lipschitz cannot sharpen without bound
CONFIGS["dcgan-conditional-spectral"] = CONFIGS["dcgan-conditional-best"] | {
    "model_kwargs": CONFIGS["dcgan-conditional"]["model_kwargs"] | {"d_norm": "spectral"}
}
#: the spectral DCGAN in bfloat16 autocast (``--amp bf16``): on a CPU with AVX-512 BF16 its steps run about a fifth
#: faster, and its validation FID was still improving when the 15 minutes ended (best epoch 26 of 28 on Fashion-MNIST)
CONFIGS["dcgan-conditional-spectral-bf16"] = CONFIGS["dcgan-conditional-spectral"] | {"amp": "bf16"}
#: the same with its generator evaluated and saved as an exponential moving average of its weights: with the
#: discriminator's drift gone, the validation FID still moves up and down from one epoch to the next (between 0.39
#: and 0.61 over the last dozen epochs of dcgan-conditional-spectral-bf16 on Fashion-MNIST), the noise of the
#: generator's last steps that an average smooths (it did not help while the drift was there)
CONFIGS["dcgan-conditional-spectral-bf16-ema"] = CONFIGS["dcgan-conditional-spectral-bf16"] | {"ema": 0.999}
EPOCHS_TEXT = 5  # about 15 minutes of this CPU at 64x64, batch 32 (the time limit stops it otherwise)
#: text to image on scenes-cap (``--text``), stopped at 15 minutes of training: the reader's LeNet-5 is trained
#: in the run on its own crops of the training scenes
TEXT = dict(
    task="text-to-image", model="ddpm-unet", data="scenes-cap", model_kwargs={"width": 16, "mults": [1, 2, 2, 2],
    "dropout": 0.0}, epochs=EPOCHS_TEXT, batch_size=32, lr=2e-3, schedule="onecycle", optimizer="adam", ema=0.995,
    task_args={"guidance": 3.0, "ddim_steps": 10, "test_samples": 500, "val_samples": 32},
)  # fmt: skip
#: text to image in two stages (``text-layout``): the glyphs from a class-conditional DCGAN of MNIST trained for
#: GLYPH_EPOCHS epochs (row ``mnist-dcgan-glyphs``), then the layout network; both stages within the 15 minutes
GLYPH_EPOCHS = 6
CONFIGS["dcgan-glyphs"] = CONFIGS["dcgan-conditional"] | {"epochs": GLYPH_EPOCHS}
LAYOUT = dict(
    task="text-layout", model="layout-gru", data="scenes-cap", model_kwargs={"dim": 128}, epochs=40, batch_size=64,
    lr=3e-3, schedule="onecycle", optimizer="adam", task_args={"test_samples": 500, "val_samples": 100},
)  # fmt: skip
#: text-to-image model -> (results key, run folder, options)
TEXT_MODELS = {
    "diffusion": ("text_to_image", "scenes-cap-text-to-image", TEXT),
    "layout": ("text_layout", "scenes-cap-text-layout", LAYOUT),
    "layout-left-to-right": (
        "text_layout_left_to_right", "scenes-cap-text-layout-left-to-right",
        LAYOUT | {"task_args": LAYOUT["task_args"] | {"order": "left-to-right"}},
    ),
}  # fmt: skip
TIME_LIMIT = 15 * 60  # seconds of training of every run (the conditional DCGAN and WGAN-GP stop at it)
#: the rows run by default
DEFAULT = ("dcgan", "ddpm")
#: the issue's targets, as multiples of the floor
TARGET = {"generate": 5.0, "diffusion": 10.0}
COVERAGE = (0.08, 0.12)


def classifier(data: str, out: Path, args) -> tuple[str, float]:
    """A LeNet-5 of ``data`` (trained once): the feature network of every score of the dataset."""
    from deeper.train import TrainConfig, fit

    run = out / f"{data}-classifier"
    if not (run / "result.json").exists():
        shutil.rmtree(run, ignore_errors=True)
        opts = dict(CLASSIFIER)
        if args.quick:
            opts.update(subset=400, epochs=2)
        fit(
            TrainConfig(
                **opts, data=data, data_dir=args.data_dir, out=str(run), tensorboard=False, progress=False
            )
        )
    result = json.loads((run / "result.json").read_text())
    return str(run), result["test_accuracy"]


@torch.no_grad()
def references(data: str, clf: str, n: int, args) -> list[dict]:
    """The floor and the deliberately bad references, in the classifier's feature space."""
    from torchvision.transforms.functional import gaussian_blur

    from deeper.data import get_dataset_spec, load_dataset
    from deeper.generate.features import load_classifier
    from deeper.generate.scores import fid_kid

    spec = get_dataset_spec(data)
    feats = load_classifier(clf, data, spec.image_shape)
    train = load_dataset(data, "train", data_dir=args.data_dir)
    test = load_dataset(data, "test", data_dir=args.data_dir)
    n = min(n, len(test), len(train))
    real = test.images[:n].float() / 255
    rows = []

    def row(name: str, images: torch.Tensor) -> None:
        s = fid_kid(feats, real, images)
        rows.append({"dataset": data, "set": name, "samples": len(images), "fid": s["fid"], "kid": s["kid"]})

    row("real training images (the floor)", train.images[:n].float() / 255)
    row("real test images blurred (Gaussian, sigma 1)", gaussian_blur(real, [7, 7], [1.0, 1.0]))
    ones = train.images[train.labels == 1][:n].float() / 255
    row(f"real training images of one class ({spec.classes[1]})", ones)
    row("uniform noise", torch.rand_like(real))
    return rows


@torch.no_grad()
def at_size(data: str, run: Path, clf: str, n: int, args) -> dict:
    """A GAN's FID with ``n`` samples against ``n`` test images, and the floor of that size (to set beside a row
    scored with fewer samples: FID grows as the sample shrinks)."""
    from deeper.data import get_dataset_spec, load_dataset
    from deeper.generate.features import load_classifier
    from deeper.generate.scores import fid_kid
    from deeper.tasks.generate import load_generator, sample

    feats = load_classifier(clf, data, get_dataset_spec(data).image_shape)
    g, meta = load_generator(run / "model.safetensors")
    test = load_dataset(data, "test", data_dir=args.data_dir)
    labels = test.labels[:n] if getattr(g, "conditional", False) else None  # the test set's classes
    test = test.images[:n].float() / 255
    train = load_dataset(data, "train", data_dir=args.data_dir).images[:n].float() / 255
    fake = sample(None, g, meta, n, labels=labels, seed=12345)
    fid, floor = fid_kid(feats, test, fake)["fid"], fid_kid(feats, test, train)["fid"]
    return {"samples": n, "fid": fid, "fid_floor": floor, "fid_over_floor": fid / floor}


def reader_ceiling(clf: str, n: int, args) -> dict:
    """The text-to-image readers on real scenes-cap test scenes with their own captions (caption ``i mod 6``):
    the one of the text-to-image run (a LeNet-5 trained on its own crops of the training scenes, as the task
    trains it) and, beside it, one whose digit classifier is the MNIST LeNet-5 ``clf``."""
    from deeper.data.scenes import load_scenes
    from deeper.generate.features import load_classifier
    from deeper.generate.text import prompt_matches, train_reader

    mnist = load_classifier(clf, "mnist", (1, 28, 28))
    epochs = TEXT["task_args"].get("classifier_epochs", 4)
    own = train_reader(load_scenes("scenes-cap", "train", data_dir=args.data_dir), epochs=epochs)
    ds = load_scenes("scenes-cap", "test", n=n, data_dir=args.data_dir)
    prompts = [caps[i % len(caps)] for i, caps in enumerate(ds.captions)]
    with torch.no_grad():
        ok = prompt_matches(ds.images.float() / 255, prompts, own, ds.classes)
        ok_mnist = prompt_matches(ds.images.float() / 255, prompts, mnist, ds.classes)
    return {"scenes": n, "match": sum(ok) / n, "classifier_epochs": epochs,
            "mnist_reader_match": sum(ok_mnist) / n, "classifier_accuracy": mnist.accuracy}  # fmt: skip


def train_row(data: str, name: str, clf: str, out: Path, args) -> dict:
    from deeper.train import TrainConfig, fit
    from deeper.train.callbacks import TimeLimit

    run = out / f"{data}-{name}"
    opts = json.loads(json.dumps(CONFIGS[name]))
    opts["task_args"]["classifier"] = clf
    if args.quick:
        opts.update(subset=200, epochs=1)
        opts["task_args"].update(test_samples=100, val_samples=50)
        if opts["task"] == "diffusion":
            opts["task_args"]["ddim_steps"] = 5
    if not (run / "result.json").exists():
        resume = (run / "checkpoints" / "latest").exists()
        fit(TrainConfig(**opts, data=data, data_dir=args.data_dir, out=str(run), tensorboard=False, progress=False),
            resume=resume, callbacks=[TimeLimit(TIME_LIMIT)])  # fmt: skip
    r = json.loads((run / "result.json").read_text())
    shares = r["test"].get("classes", [])
    ratio = r["test_fid"] / r["fid_floor"] if r.get("fid_floor") else None
    covered = bool(shares) and all(COVERAGE[0] <= s <= COVERAGE[1] for s in shares)
    target = TARGET[opts["task"]]
    return {
        "config": f"{data}-{name}", "dataset": data, "model": name, "samples": opts["task_args"]["test_samples"],
        "train_seconds": r["train_seconds"], "epochs": r["epochs"], "stopped": r.get("stopped"), "steps": r["steps"],
        "test_fid": r["test_fid"], "fid_floor": r["fid_floor"],
        "fid_over_floor": ratio, "test_kid": r["test_kid"], "class_min": r["test_class_min"],
        "class_max": r["test_class_max"], "classes": shares, "target_over_floor": target,
        "fid_target_met": ratio is not None and ratio <= target,
        "coverage_target_met": covered if opts["task"] == "generate" else None,
        "within_15_minutes": r["train_seconds"] <= 900, "options": {k: v for k, v in opts.items() if k != "task_args"}
        | {"task_args": {k: v for k, v in opts["task_args"].items() if k != "classifier"}},
        "run": str(run), "figures": r.get("figures", []),
        "at_2000": at_size(data, run, clf, 2000, args) if opts["task"] == "generate" and not args.quick else None,
    }  # fmt: skip


def text_row(kind: str, out: Path, args, *, layout: dict | None = None) -> dict:
    """Text to image (:data:`TEXT_MODELS` ``kind``): the share of generated scenes whose prompt holds as read back,
    beside the reader's ceiling.  ``layout``: the two-stage models' glyph GAN row (its training time counts)."""
    from deeper.train import TrainConfig, fit
    from deeper.train.callbacks import TimeLimit

    _, folder, options = TEXT_MODELS[kind]
    run = out / folder
    opts = json.loads(json.dumps(options))
    limit = TIME_LIMIT - (layout["train_seconds"] if layout else 0)
    if layout:
        opts["task_args"]["glyphs"] = layout["run"]
    if args.quick:
        opts.update(subset=64, epochs=1)
        opts["task_args"].update(test_samples=16, val_samples=8, source="digits", classifier_epochs=1)
        if not layout:
            opts["task_args"]["ddim_steps"] = 3
    if not (run / "result.json").exists():
        resume = (run / "checkpoints" / "latest").exists()
        fit(TrainConfig(**opts, data_dir=args.data_dir, out=str(run), tensorboard=False, progress=False),
            resume=resume, callbacks=[TimeLimit(limit)])  # fmt: skip
    r = json.loads((run / "result.json").read_text())
    row = {
        "model": opts["task"], "samples": opts["task_args"]["test_samples"], "train_seconds": r["train_seconds"],
        "epochs": r["epochs"], "steps": r["steps"], "stopped": r.get("stopped"), "prompt_match": r["test_prompt_match"],
        "reader_real": r["reader_real"], "target": 0.8, "target_met": r["test_prompt_match"] >= 0.8,
        "reader": r["reader"], "options": opts, "run": str(run), "figures": r.get("figures", []),
    }  # fmt: skip
    if layout:
        row |= {"glyphs": layout["config"], "glyph_seconds": layout["train_seconds"],
                "total_seconds": layout["train_seconds"] + r["train_seconds"]}  # fmt: skip
    return row


def merged(path: Path, fresh: dict, scored: list[str]) -> dict:
    """``fresh`` merged into the results file at ``path``: the rows not trained again (each naming the CPU it was
    measured on), the references and classifiers of the datasets not scored again (``scored``), and text to image
    where it was not run, stay."""
    previous = json.loads(path.read_text()) if path.is_file() else {}
    for r in previous.get("rows", []):  # rows of files written before rows had a key
        r.setdefault("config", f"{r['dataset']}-{r['model']}")
    order = [f"{d}-{n}" for d in DATASETS for n in CONFIGS]
    result = merge_into(
        previous, {k: v for k, v in previous.items() if k not in ("rows", "results")} | fresh, order
    )
    result.pop("results", None)
    refs = [x for x in previous.get("references", []) if x["dataset"] not in scored] + fresh["references"]
    rank = {d: i for i, d in enumerate(DATASETS)}
    result["references"] = sorted(refs, key=lambda x: rank.get(x["dataset"], len(rank)))
    result["classifiers"] = previous.get("classifiers", {}) | fresh["classifiers"]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="offline data folder (default: $DEEPER_DATA)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--rows", nargs="+", default=list(DEFAULT), choices=sorted(CONFIGS))
    p.add_argument(
        "--only", help="train and score this one row (DATA-NAME); the other rows of the results stay"
    )
    p.add_argument("--out", default="runs/generation", help="folder of the runs")
    p.add_argument("--images", help="copy each run's samples.png (and trajectory/interpolation) here")
    p.add_argument("--text", action="store_true", help="also train text to image on scenes-cap")
    p.add_argument(
        "--text-models",
        nargs="+",
        default=["diffusion", "layout"],
        choices=sorted(TEXT_MODELS),
        help="the text-to-image models trained: one diffusion U-Net, and/or two stages (layout, GAN glyphs)",
    )
    p.add_argument(
        "--text-only",
        action="store_true",
        help="train and score text to image (and the readers) only; the other entries of the results stay",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: digits, tiny settings, no results file")
    p.add_argument("--output", help="results JSON (default: benchmarks/results/generation.json)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        Path(args.images).mkdir(parents=True, exist_ok=True)
    datasets = ["digits"] if args.quick else args.datasets
    started = time.perf_counter()
    refs, rows, classifiers = [], [], {}
    if args.text_only:
        args.text, datasets = True, ["digits" if args.quick else "mnist"]
    for data in datasets:
        wanted = [n for n in args.rows if args.only in (None, f"{data}-{n}")]
        if args.only and not wanted:
            continue
        clf, acc = classifier(data, out, args)
        classifiers[data] = {
            "run": clf,
            "model": CLASSIFIER["model"],
            "epochs": CLASSIFIER["epochs"],
            "test_accuracy": acc,
        }
        if args.text_only:
            continue
        refs += references(data, clf, 100 if args.quick else 10000, args)
        for name in wanted:
            row = train_row(data, name, clf, out, args)
            rows.append(row)
            print(f"{data} {name}: FID {row['test_fid']:.3f} = {row['fid_over_floor']:.1f}x the floor "
                  f"{row['fid_floor']:.3f}, classes {row['class_min']:.3f}-{row['class_max']:.3f}, "
                  f"{row['train_seconds']:.0f} s", flush=True)  # fmt: skip
            if args.images:
                for fig in row["figures"]:
                    shutil.copy(fig, Path(args.images) / f"generation_{data}_{name}_{Path(fig).name}")
    texts, reader = {}, None
    if args.text:
        if not args.quick:  # (the readers are scored on scenes of MNIST digits)
            reader = reader_ceiling(classifiers["mnist"]["run"], 500, args)
        for kind in args.text_models:
            glyphs = None
            if kind.startswith("layout"):
                glyphs = next((r for r in rows if r["config"] == "mnist-dcgan-glyphs"), None)
                if glyphs is None:
                    glyphs = train_row(
                        datasets[0], "dcgan-glyphs", classifiers[datasets[0]]["run"], out, args
                    )
                    rows.append(glyphs)
            text = texts[kind] = text_row(kind, out, args, layout=glyphs)
            if args.images and kind in ("diffusion", "layout"):
                for fig in text["figures"]:
                    name = "generation_text_" if kind == "diffusion" else "generation_layout_"
                    shutil.copy(fig, Path(args.images) / f"{name}{Path(fig).name}")
            print(f"{text['model']}: {100 * text['prompt_match']:.1f}% of prompts match as read back "
                  f"(the reader on real scenes: {100 * text['reader_real']:.1f}%)", flush=True)  # fmt: skip
    if refs:
        print_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in refs])
    if rows:
        print_table([
            {"dataset": r["dataset"], "model": r["model"], "FID": f"{r['test_fid']:.3f}", "floor": f"{r['fid_floor']:.3f}",
             "x floor": f"{r['fid_over_floor']:.1f}", "KID": f"{r['test_kid']:.4f}",
             "classes": f"{100 * r['class_min']:.1f}-{100 * r['class_max']:.1f}%", "train s": f"{r['train_seconds']:.0f}"}
            for r in rows
        ])  # fmt: skip
    if args.quick:
        return 0
    path = Path(args.output or RESULTS / "generation.json")
    fresh = {
        "benchmark": "generation", "torch": torch.__version__,
        "feature_network": "LeNet-5 trained here on the same dataset (input of its last layer, 84 features)",
        "classifiers": classifiers, "references": refs, "rows": rows, "seconds": time.perf_counter() - started,
    }  # fmt: skip
    if reader:
        fresh["reader"] = reader | {"machine": machine()}
    for kind, text in texts.items():
        fresh[TEXT_MODELS[kind][0]] = text | {"machine": machine()}
    path = write_result(path, merged(path, fresh, datasets if refs else []))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
