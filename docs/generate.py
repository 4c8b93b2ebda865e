"""Fill the generated blocks of the README and docs from the results JSON; ``--check`` fails when stale.

A block is written between ``<!-- generated: NAME -->`` and ``<!-- /generated -->`` in a Markdown file;
NAME is a renderer below, which reads ``benchmarks/results/*.json`` (or another results file) and
returns Markdown.  No number in a block is typed by hand.

    .venv/bin/python docs/generate.py            # rewrite the blocks
    .venv/bin/python docs/generate.py --check    # exit 1 naming the stale blocks (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)

RENDERERS: dict[str, Callable[[], str]] = {}


def renderer(name: str):
    def deco(fn):
        RENDERERS[name] = fn
        return fn

    return deco


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def cut_short(run: dict) -> bool:
    """Whether a benchmark's run stopped before its last epoch (its ``stopped`` is the engine's reason)."""
    return run.get("stopped") not in (None, "completed")


def source(name: str, *commands: str | None) -> str:
    """The "Measured on" line of a results file, with the commands that reproduce it."""
    m = load(name).get("machine", "")
    cmd = " " + "; ".join(f"`{c}`" for c in commands if c) if any(commands) else ""
    return f"\n\nMeasured on: {m} (`benchmarks/results/{name}.json`).{cmd}"


# ----------------------------------------------------------------------------- the main job


TTA_LABELS = {
    "baseline": "torchvision `MNIST` + per-sample `ToTensor` + `DataLoader` (pytorch/examples style), NCHW, fp32",
    "deeper-nchw": "deeper loader (in-memory, one index per batch), NCHW, fp32",
    "deeper-fp32": "deeper loader + channels-last, fp32",
    "deeper": "**deeper default** (in-memory loader + channels-last + `--amp auto`)",
}


def tta_table(name: str) -> str:
    """One time-to-accuracy file: a row per pipeline (the first seed), then the default's seeds."""
    d = load(name)
    first = d["rows"][0].get("seed", 0)
    base = next(r for r in d["rows"] if r["name"] == "baseline")["img_per_s"]
    rows = []
    for r in (r for r in d["rows"] if r.get("seed", 0) == first):
        t = r.get("seconds_to_target")
        rows.append([TTA_LABELS.get(r["name"], r["name"]), r.get("amp", "off"), f"{r['img_per_s']:,.0f}",
                     f"{r['img_per_s'] / base:.2f}x", f"{r['train_seconds']:.1f}",
                     f"{r['final_test_accuracy']:.4f}", f"{t:.1f}" if t is not None else "never"])  # fmt: skip
    recipe = d["recipe"].get("recipe") if isinstance(d["recipe"], dict) else d["recipe"]
    target = f"{100 * d['target']:.1f}%"
    head = ["pipeline", "amp", "img/s", "vs baseline", "training s", "final test acc", f"s to {target}"]
    out = table(head, rows, "llrrrrr") + source(name) + f" Recipe `{recipe}` for every row, seed {first}."
    seeds = [r for r in d["rows"] if r["name"] == "deeper"]
    if len(seeds) > 1:
        srows = [[r["seed"], f"{r['final_test_accuracy']:.4f}",
                  f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] is not None else "never"]
                 for r in seeds]  # fmt: skip
        sp = d["spread"]["deeper"]
        srows.append([f"**{sp['seeds']} seeds**", f"mean {sp['mean']:.4f} (min {sp['min']:.4f}, max {sp['max']:.4f})",
                      f"{sp['reached']} of {sp['seeds']} reach {target}"])  # fmt: skip
        out += "\n\nThe default over seeds:\n\n" + table(["seed", "final test acc", f"s to {target}"], srows)
    return out


@renderer("time-to-accuracy")
def time_to_accuracy() -> str:
    return tta_table("time_to_accuracy")


@renderer("time-to-accuracy-amd")
def time_to_accuracy_amd() -> str:
    return tta_table("time_to_accuracy_amd")


@renderer("conv-ceiling")
def conv_ceiling() -> str:
    d = load("conv_ceiling")
    rows = [[r["layer"], f"{r['macs_per_image']:,}", f"{r['fp32_ms']:.2f}", f"{r['bf16_ms']:.2f}"] for r in d["layers"]]
    c, e, g = d["ceiling_img_per_s"], d["engine_img_per_s"], d["conv_gflops_at_ceiling"]
    rows.append(["**ceiling** (the six alone)", "", f"{c['fp32']:,.0f} img/s ({g['fp32']:.1f} GFLOP/s)",
                 f"{c['bf16']:,.0f} img/s ({g['bf16']:.1f} GFLOP/s)"])  # fmt: skip
    kind = "bf16" if d["default_amp"] == "bf16" else "fp32"
    rows.append(["**the engine's training step**", "", f"{e['fp32']:,.0f} img/s "
                 f"({d['engine_fp32_fraction_of_fp32_ceiling']:.0%})",
                 f"{e['default']:,.0f} img/s ({d['engine_default_fraction_of_ceiling']:.0%})" if kind == "bf16" else "-"])  # fmt: skip
    head = ["convolution (forward + backward)", "MACs / image", f"fp32 ms / batch {d['batch_size']}",
            f"bf16 autocast ms / batch {d['batch_size']}"]  # fmt: skip
    from deeper.train.config import RECIPES

    epochs, images = RECIPES["fast"]["epochs"], 55_000
    return table(head, rows, "lrrr") + source("conv_ceiling") + (
        f" CPU family `{d['cpu_family']}`: `--amp auto` trains in {d['default_amp']}.\n\n"
        f"Even at the {kind} ceiling, the `fast` recipe's {epochs} epochs of {images:,} images would take "
        f"{epochs * images / c[kind]:.0f} s of convolutions alone; at the engine's {e['default']:,.0f} img/s, "
        f"{epochs * images / e['default']:.0f} s."
    )


@renderer("recipes")
def recipes() -> str:
    d = load("recipes")
    names = {"fast-1epoch": "`fast --epochs 1`", "book": "`book` (Adam 0.001, batch 100, constant)"}
    rows = []
    for r in d["rows"]:
        name = names.get(r["name"], f"`fast`, seed {r['name'].removeprefix('fast-seed')}")
        rows.append(
            [
                name,
                r["epochs"],
                f"{r['test_accuracy']:.4f}",
                f"{r['val_accuracy']:.4f}",
                f"{r['train_seconds']:.1f}",
            ]
        )
    rows.append(
        [f"`fast`, mean of {d['fast_seeds']} seeds", 6, f"**{d['fast_mean_test_accuracy']:.4f}**", "", ""]
    )
    return table(["run", "epochs", "test accuracy", "val accuracy", "training s"], rows) + source("recipes")


@renderer("engine-overhead")
def engine_overhead() -> str:
    d = load("engine_overhead")
    rows = []
    base = None
    for name, rounds in d["rounds"].items():
        med = sorted(x["img_per_s"] for x in rounds)[len(rounds) // 2]
        base = base or med
        rows.append([name, f"{med:,.0f}", ", ".join(f"{x['img_per_s']:,.0f}" for x in rounds), f"{med / base:.3f}x",
                     ", ".join(sorted({x["weights_sha256"] for x in rounds}))])  # fmt: skip
    note = f" Allocator settings: {d['malloc_env']}." if d.get("malloc_env") else ""
    return (
        table(["code", "median img/s", "rounds", "ratio", "final weights (sha256)"], rows, "lrrrl")
        + source("engine_overhead", "DEEPER_DATA=../shared/datasets python benchmarks/engine_overhead.py")
        + note
    )


# ----------------------------------------------------------------------------- zoo and transfer


@renderer("transfer")
def transfer() -> str:
    d = load("transfer")
    by = {(s["target"], s["mode"]): s for s in d["summary"]}
    names = {"fashion-mnist": "Fashion-MNIST", "digits": "scikit-learn digits"}
    rows = []
    for target in ("fashion-mnist", "digits"):
        cells = [
            f"{100 * by[(target, m)]['mean']:.2f}% ± {100 * by[(target, m)]['std']:.2f}"
            for m in ("scratch", "finetune", "frozen")
        ]
        rows.append([names[target], *cells])
    head = [
        "target (500 images)",
        "from scratch",
        "fine-tuned from MNIST",
        "MNIST features frozen, new classifier only",
    ]
    return table(head, rows, "lrrr") + source("transfer", d["command"])


@renderer("zoo")
def zoo() -> str:
    d = load("zoo")
    by: dict[str, dict] = {}
    for r in d["rows"]:
        by.setdefault(r["model"], {})[r["data"]] = r
    rows = []
    for model, runs in by.items():
        m, f = runs.get("mnist", {}), runs.get("fashion-mnist", {})
        any_ = m or f
        rows.append([f"`{model}`", f"{any_['params']:,}", _si(any_["macs"]), pct(m.get("test_accuracy"), 1),
                     pct(f.get("test_accuracy"), 1),
                     ", ".join(f"{x['seconds_per_epoch']:,.0f}" for x in (m, f) if x)])  # fmt: skip
    head = [
        "model",
        "params (1x28x28, 10 classes)",
        "MACs / image",
        "MNIST",
        "Fashion-MNIST",
        "s / epoch (MNIST, Fashion)",
    ]
    return table(head, rows) + source("zoo", d["command"])


def _si(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.2f}{unit}"
    return str(x)


# ----------------------------------------------------------------------------- data and hardening


@renderer("scenes")
def scenes() -> str:
    d = load("scenes")
    rows = [
        [f"`{r['preset']}`", f"{r['scenes']:,}", f"{r['seconds']:.2f}", f"{r['scenes/s']:,.0f}"]
        for r in d["rows"]
    ]
    return table(["preset", "scenes", "seconds", "scenes/s"], rows) + source(
        "scenes", "python benchmarks/scenes.py"
    )


@renderer("hardening")
def hardening() -> str:
    d = load("hardening")
    rows = [[r["class"], r["probes"], r["clean"]] for r in d["classes"]]
    bombs = [[b["case"], "yes" if b["clean"] else "no", f"{b['peak_mb']:,.0f}"] for b in d["bombs"]]
    return (
        table(["class of bad input", "probes", "ended cleanly"], rows)
        + "\n\n"
        + table(["case", "refused cleanly", "peak memory of the process, MB"], bombs, "lrr")
        + source("hardening", "DEEPER_DATA=../shared/datasets python benchmarks/hardening.py")
    )


# ----------------------------------------------------------------------------- the engine's tasks

#: the page of docs/ that tells each task's story (linked from the engine's table when it exists)
TASK_PAGES = {
    "classify": "zoo.md", "distill": "speed.md", "segment": "segmentation.md", "detect": "detection.md",
    "caption": "captioning.md", "rl": "rl.md", "superres": "image2image.md", "srgan": "image2image.md",
    "restore": "image2image.md", "style": "image2image.md", "style-fast": "image2image.md",
    "generate": "generation.md", "diffusion": "generation.md", "text-to-image": "generation.md",
    "text-layout": "generation.md",
}  # fmt: skip


@renderer("tasks")
def tasks() -> str:
    """Every registered task, read from the registry (not from results): what it does, its models and data."""
    from deeper.data import get_dataset_spec, list_datasets
    from deeper.models import list_models
    from deeper.tasks import get_task_class, list_tasks

    rows = []
    for name in list_tasks():
        cls = get_task_class(name)
        models = list_models(family=cls.model_family) if cls.model_family else []
        kinds = sorted(
            {get_dataset_spec(d).kind for d in list_datasets() if cls.takes_data(get_dataset_spec(d).kind)}
        )
        page = TASK_PAGES.get(name)
        label = f"[`{name}`]({page})" if page and (ROOT / "docs" / page).exists() else f"`{name}`"
        better = next(m.higher_is_better for m in cls.metrics if m.name == cls.primary)
        primary = f"`{cls.primary}`, " + ("higher" if better else "lower")
        shown = ", ".join(f"`{m}`" for m in models[:6]) + (
            f" ({len(models)} in all)" if len(models) > 6 else ""
        )
        rows.append([label, cls.description, shown or "its own", ", ".join(kinds) or "its own", primary])
    return table(["task", "what it does", "models", "data", "primary metric"], rows, "lllll") + (
        "\n\nGenerated from the task registry (`deeper tasks` prints the same with every option)."
    )


# ----------------------------------------------------------------------------- image to image (docs/image2image.md)


def rows_table(name: str) -> str:
    """The ``rows`` of a results file as written by its benchmark (every cell formatted there)."""
    rows = load(name)["rows"]
    keys: list[str] = []  # every row's columns, a column new in a later row placed after its left neighbour
    for r in rows:
        left = None
        for k in r:
            if k not in keys:
                keys.insert(keys.index(left) + 1 if left is not None else 0, k)
            left = k
    return table(keys, [[r.get(k, "") for k in keys] for r in rows])


@renderer("i2i-superres")
def i2i_superres() -> str:
    return rows_table("superres") + source("superres", "python benchmarks/superres.py --figures docs/images")


@renderer("i2i-restore")
def i2i_restore() -> str:
    cmd = "python benchmarks/restore.py --data-dir ../shared/datasets --figures docs/images"
    return rows_table("restore") + source("restore", cmd)


@renderer("layout-speed")
def layout_speed() -> str:
    return rows_table("layout_speed") + source("layout_speed", "python benchmarks/layout_speed.py")


@renderer("i2i-sr-fit")
def i2i_sr_fit() -> str:
    """The target rows' gain over bicubic on the training photographs beside the held-out ones (central crops)."""
    rows = [
        [f"`{name}`", f"{r['train_photos_gain_db']:+.2f} dB", f"{r['test_photos_crop_gain_db']:+.2f} dB"]
        for name, r in load("superres")["results"].items()
        if r.get("train_photos_gain_db") is not None
    ]
    cmd = ("python benchmarks/superres.py --only srcnn-x2-scales --only espcn-x3-scales --only espcn-x3-residual"
           " --only srcnn-x2-interior --only espcn-x3-residual-lr --only srcnn-x2-dead-leaves"
           " --only espcn-x3-dead-leaves --only srcnn-x2-bf16-x8 --only espcn-x3-bf16-x8")
    return table(["config", "gain on the 16 training photographs", "gain on the 5 held-out ones"], rows) + source(
        "superres", cmd
    )


#: what each run of the data comparison trained on (the runs of ``benchmarks/superres.py``)
SR_TRAINED_ON = {
    "-bf16-x8": "the 16 training photographs",
    "-cv": "the 4 other held-out photographs (5 networks, one per photograph scored)",
    "-ceiling": "the 5 held-out photographs themselves (a bound, not a result)",
}


@renderer("i2i-sr-ceiling")
def i2i_sr_ceiling() -> str:
    """The best SRCNN x2 and ESPCN x3 runs beside the same networks trained on the held-out photographs (the
    ceilings) and, cross-validated, on the other held-out photographs; then the folds one by one."""
    sr = load("superres")["results"]

    def gain(r: dict, key: str = "test_psnr") -> str:
        return f"{r[key] - r['test_bicubic_psnr']:+.2f} dB"

    rows, names = [], []
    for net in ("srcnn-x2", "espcn-x3"):
        for suffix, what in SR_TRAINED_ON.items():
            if (r := sr.get(net + suffix)) is not None:
                names.append(net + suffix)
                rows.append([f"`{net + suffix}`", what, gain(r), gain(r, "test_single_psnr"),
                             f"{r['steps']:,} in {r['train_seconds']:.0f} s"])  # fmt: skip
    header = ["run", "trained on", "gain over bicubic", "single pass", "steps (the longest network's time)"]
    out = table(header, rows, "llrrr")
    for name in (n for n in names if "folds" in sr[n]):
        folds = [[p, f"{f['test_bicubic_psnr']:.2f}", f"{f['test_psnr']:.2f}", gain(f), gain(f, "test_single_psnr"),
                  f"{f['train_seconds']:.0f} s"] for p, f in sr[name]["folds"].items()]  # fmt: skip
        out += f"\n\n`{name}`, each photograph scored by the network trained on the other four:\n\n" + table(
            ["photograph", "bicubic PSNR", "PSNR", "gain", "single pass", "trained"], folds, "lrrrrr"
        )
    return out + source("superres", "python benchmarks/superres.py" + "".join(f" --only {n}" for n in names))


@renderer("i2i-classical")
def i2i_classical() -> str:
    """Classical denoisers and the oracle blur on the noisy held-out photographs, beside the best U-Net."""
    r = load("restore")
    found = r["classical"]["denoisers"]
    names = {"blur": "Gaussian blur, best width per image (the simple repair)", "nl-means": "non-local means (scikit-image)",
             "total variation": "total variation, Chambolle, best weight per image (scikit-image)"}  # fmt: skip
    rows = [[names.get(k, k), f"{v['psnr']:.2f}", f"{v['ssim']:.4f}"] for k, v in found.items()]
    photos = [kv for kv in r["results"].items() if kv[0].startswith("denoise-photos")]
    best = max(photos, key=lambda kv: kv[1]["test"]["psnr"])
    rows.append([f"U-Net `{best[0]}`", f"{best[1]['test']['psnr']:.2f}", f"{best[1]['test']['ssim']:.4f}"])
    blur = found["blur"]["psnr"]
    rows.append([f"the target: the simple repair + {r['target_db']:.0f} dB", f"{blur + r['target_db']:.2f}", ""])
    machine = r["classical"]["machine"]
    return table(["denoiser (sigma 25, the 5 held-out photographs)", "PSNR", "SSIM"], rows) + (
        f"\n\nMeasured on: {machine} (`benchmarks/results/restore.json`). `python benchmarks/restore.py --classical`"
    )


@renderer("i2i-style")
def i2i_style() -> str:
    return rows_table("style") + source("style", "python benchmarks/style.py --figures docs/images")


@renderer("i2i-targets")
def i2i_targets() -> str:
    """The issue's targets against the measured figures, met or not, from the three results files."""
    sr, rs, st = load("superres")["results"], load("restore")["results"], load("style")["results"]
    sr_targets = load("superres")["targets_db"]  # the benchmark's TARGETS: its rows scored against the issue
    rows = []

    def row(what: str, target: str, measured: str, met: bool | None) -> None:
        rows.append([what, target, measured, "-" if met is None else ("yes" if met else "**no**")])

    def gain(name: str) -> float:
        return sr[name]["test_psnr"] - sr[name]["test_bicubic_psnr"]

    for name in sr:
        if (need := sr_targets.get(name)) is not None:
            r = sr[name]
            row(f"`{name}`: PSNR over bicubic, trained <= 15 min", f">= +{need:.1f} dB",
                f"{gain(name):+.2f} dB in {r['train_seconds']:.0f} s", gain(name) >= need and r["train_seconds"] <= 900)  # fmt: skip
    x4 = [n for n in ("srcnn-x4-residual", "espcn-x4") if n in sr]
    for name in (n for n in sr if n.startswith("srresnet-x4") and x4):
        ahead = sr[name]["test_psnr"] - max(sr[n]["test_psnr"] for n in x4)
        row(f"`{name}` ahead of SRCNN and ESPCN x4", "> 0 dB", f"{ahead:+.2f} dB", ahead > 0)
    for name in (n for n in sr if n.startswith("srgan-x4")):
        base = name.replace("srgan", "srresnet")
        if base in sr:
            cost = sr[name]["test_psnr"] - sr[base]["test_psnr"]
            row(f"`{name}`: PSNR cost against `{base}`", "shown", f"{cost:+.2f} dB", None)
    for name, r in rs.items():
        if name.startswith("denoise-photos") or name.startswith("inpaint-photos"):
            t = r["test"]
            g = t["psnr"] - t["baseline_psnr"]
            row(f"`{name}`: PSNR over the best simple repair", ">= +3.0 dB", f"{g:+.2f} dB", g >= 3.0)
    for name, r in st.items():
        t = r["test"]
        if name.startswith("gatys"):
            drop, secs, sim = 1 / t["heldout_style"], r["train_seconds"], t["content_ssim"]
            row(f"`{name}`: time, held-out style loss down, content SSIM", "<= 180 s, >= 10x, >= 0.3",
                f"{secs:.0f} s, {drop:.1f}x, {sim:.3f}", secs <= 180 and drop >= 10 and sim >= 0.3)  # fmt: skip
        elif r.get("inference_img_per_s_512") is not None:
            rate = r["inference_img_per_s_512"]
            row(f"`{name}`: 512 px inference", ">= 10 img/s", f"{rate:.1f} img/s", rate >= 10)
    return table(["what", "target", "measured", "met"], rows, "llll")


# ----------------------------------------------------------------------------- captioning (docs/captioning.md)

CAPTION_CMD = "python benchmarks/captioning.py --eval-scenes 500 --figures docs/images"


@renderer("captioning")
def captioning() -> str:
    """Every configuration, each decoding: test BLEU-1/4, CIDEr-D and meaning, with the training time."""
    r = load("captioning")
    rows = []
    for e in r["results"]:
        idle = e.get("train_seconds_idle")
        for k, s in e["decodings"].items():
            width = int(k.removeprefix("beam"))
            rows.append([
                f"`{e['config']}`", e["data"], "greedy" if width == 1 else f"beam {width}", f"{e['params']:,}",
                e["epochs"], f"{e['train_seconds'] / 60:.1f} min", "-" if idle is None else f"{idle / 60:.1f} min",
                f"{s['bleu1']:.3f}", f"{s['bleu4']:.3f}", f"{s['cider']:.3f}", pct(s["meaning_accuracy"], 1),
            ])  # fmt: skip
    header = ["run", "data", "decoding", "parameters", "epochs", "training (measured)", "(idle CPU)",
              "BLEU-1", "BLEU-4", "CIDEr-D", "meaning"]  # fmt: skip
    tests = sorted({e["options"]["task_args"].get("test_scenes") or 2000 for e in r["results"]})
    a = r["anchor"]
    note = (f"\n\nScored on the first {' / '.join(f'{t:,}' for t in tests)} test scenes of each dataset, against "
            f"their six references.  Anchor: {a['model']} on {a['data']} reports BLEU-4 {a['bleu4']} (in "
            "percent); no published score exists for these synthetic scenes.")  # fmt: skip
    return table(header, rows, "lllrrrrrrrr") + note + source("captioning", CAPTION_CMD)


@renderer("captioning-reading")
def captioning_reading() -> str:
    """What the scenes-cap runs read right: on their own training scenes against the test scenes (greedy), and
    with a beam of 5 the digits alone (count captions, any order) against their order (left to right)."""
    r = load("captioning")
    rows = []
    for e in r["results"]:
        if e["data"] != "scenes-cap" or e.get("train_scenes_meaning_greedy") is None:
            continue
        forms = e["decodings"]["beam5"]["forms"]
        form = {f: pct(forms[f]["accuracy"], 1) if f in forms else "-" for f in ("count", "order")}
        rows.append([f"`{e['config']}`", f"{e['train_scenes']:,}",
                     pct(e["train_scenes_meaning_greedy"], 1), pct(e["decodings"]["beam1"]["meaning_accuracy"], 1),
                     form["count"], form["order"]])  # fmt: skip
    header = ["run", "training scenes", "greedy, true of its first training scenes", "greedy, true of the test scenes",
              "beam 5: count captions true", "beam 5: left-to-right captions true"]  # fmt: skip
    return table(header, rows, "lrrrrr") + source("captioning", CAPTION_CMD)


def _each(decodings: dict, metric: str, fmt) -> str:
    """One figure of every decoding: 'greedy 0.84, beam 3 0.94, ...'."""
    names = {k: "greedy" if k == "beam1" else k.replace("beam", "beam ") for k in decodings}
    return ", ".join(f"{names[k]} {fmt(d[metric])}" for k, d in decodings.items())


@renderer("captioning-targets")
def captioning_targets() -> str:
    """The issue's targets against the measured figures of each decoding (met by the best), met or not."""
    r = load("captioning")
    by = {e["config"]: e for e in r["results"]}
    limit = r["time_limit_seconds"]
    rows = []
    for name, e in by.items():  # every run the targets apply to (the benchmark's TARGETS)
        if not e.get("target"):
            continue
        t, ds = e["target"], e["decodings"]
        secs = e.get("pretrain_seconds", 0.0) + min(e["train_seconds"], e.get("train_seconds_idle") or float("inf"))
        best_bleu = max(d["bleu4"] for d in ds.values())
        rows.append([f"`{name}` on scenes-cap: BLEU-4, trained <= 15 min", f">= {t['bleu4']:.2f}",
                     f"{_each(ds, 'bleu4', lambda x: f'{x:.3f}')} ({secs / 60:.1f} min)",
                     best_bleu >= t["bleu4"] and secs <= limit])  # fmt: skip
        whole = e.get("whole_test")  # every test scene, where the table scored the first ones
        measured = _each(ds, "meaning_accuracy", lambda x: pct(x, 1))
        if whole:
            chosen = " (the validation scenes' choice)" if "chosen_on" in whole else ""  # fmt: skip
            measured += f"; beam {whole['beam']}{chosen} on all {whole['scenes']:,} test scenes {pct(whole['meaning_accuracy'], 1)}"
        rows.append([f"`{name}` on scenes-cap: captions true of their scene", f">= {pct(t['meaning_accuracy'], 0)}",
                     measured, e["target_met"]["meaning_accuracy"]])  # fmt: skip
    if {"nic-hard", "sat-hard"} <= set(by):
        a, b = by["sat-hard"]["decodings"]["beam1"], by["nic-hard"]["decodings"]["beam1"]
        d = a["meaning_accuracy"] - b["meaning_accuracy"]
        rows.append(["scenes-cap-hard: `sat-hard` ahead of `nic-hard` (meaning, same budget)", "> 0, by how much",
                     f"{100 * d:+.1f} points (BLEU-4 {a['bleu4'] - b['bleu4']:+.3f}, CIDEr-D "
                     f"{a['cider'] - b['cider']:+.3f})", d > 0])  # fmt: skip
    for name, e in by.items():
        g, w = e["decodings"]["beam1"], e["decodings"]["beam5"]
        rows.append([f"`{name}`: beam 5 against greedy", "shown",
                     f"meaning {100 * (w['meaning_accuracy'] - g['meaning_accuracy']):+.1f} points, "
                     f"BLEU-4 {w['bleu4'] - g['bleu4']:+.3f}", None])  # fmt: skip
    cells = [[w, t, m, "-" if ok is None else ("yes" if ok else "**no**")] for w, t, m, ok in rows]
    return table(["what", "target", "measured", "met"], cells, "llll")


# ----------------------------------------------------------------------------- segmentation (docs/segmentation.md)

SEGMENT_CMD = "python benchmarks/segmentation.py --figures docs/images"


@renderer("segmentation")
def segmentation() -> str:
    """Every configuration measured: size, cost, training time, speed and test mIoU, against its target."""
    r = load("segmentation")
    rows = []
    for e in r["results"]:
        idle, t = e.get("train_seconds_idle"), e.get("target")
        met = "" if t is None else f">= {t:.2f}: " + ("met" if e["test_miou"] >= t and e["within_time_limit"] else "**not met**")
        epochs = f"{e['epochs']} of {e['epochs_configured']} (time limit)" if cut_short(e) else e["epochs"]
        rows.append([f"`{e['config']}`", f"{e['params']:,}", f"{e['macs'] / 1e6:,.0f} M", epochs,
                     f"{e['train_seconds'] / 60:.1f} min", "-" if idle is None else f"{idle / 60:.1f} min",
                     f"{e['inference_img_per_s']:,.0f}", f"{e['test_miou']:.4f}", f"{e['test_miou_digits']:.4f}",
                     f"{e['test_pixel_accuracy']:.4f}", met])  # fmt: skip
    head = ["model", "parameters", "MACs / scene", "epochs", "CPU training (measured)", "(idle CPU)",
            "inference img/s", "test mIoU", "without background", "pixel accuracy", "target"]  # fmt: skip
    c = r.get("comparisons", {})
    notes = []
    if "fcn_order" in c:
        notes.append(f"The FCN paper's order, measured: {c['fcn_order']}.")
    if "bilinear_minus_random_miou" in c:
        notes.append(f"FCN-8s with bilinear-initialised upsampling minus the same with random initialisation, "
                     f"same budget: {c['bilinear_minus_random_miou']:+.4f} mIoU.")  # fmt: skip
    text = table(head, rows, "lrrrrrrrrrl")
    if notes:
        text += "\n\n" + " ".join(notes)
    return text + source("segmentation", SEGMENT_CMD)


# ----------------------------------------------------------------------------- detection (docs/detection.md)

DETECT_CMD = "python benchmarks/detection.py"
#: published mAP@0.5 on the 300x300 MNIST-detection layout (the issue's anchors; not measured here)
DETECT_300_ANCHORS = "SSD 0.74-0.76 (basic) and 0.869 (improved), a YOLO trained from scratch 0.883"


def _detect_story(r: dict) -> list[str]:
    """The story's models in the benchmark's order (its ``story`` rows)."""
    return [row["model"] for row in r["story"]]


@renderer("detection")
def detection() -> str:
    """The notes' speed story: every detector on the same test scenes, latency, speed-up, mAP, training."""
    r = load("detection")
    runs, rows = r["runs"], []
    speedups = {row["model"]: row["speed-up"] for row in r["story"]}
    for name in _detect_story(r) + [n for n in runs if n not in speedups]:
        e = runs[name]
        speedup = "-" if speedups.get(name) is None else f"{speedups[name]:.1f}x"
        stopped = "time limit" if cut_short(e) else "all"
        rows.append([f"`{name}`", e["data"], f"{e['params']:,}", f"{e['epochs']} ({stopped})",
                     f"{e['train_seconds'] / 60:.1f} min", f"{e['latency_ms']:.1f} ms", speedup,
                     f"{e['test_map50']:.4f}", f"{e['test_map']:.4f}", f"{e.get('test_map75', float('nan')):.4f}"])  # fmt: skip
    head = ["model", "data", "parameters", "epochs (done)", "training", "latency / image (batch 1)",
            "speed-up over the row above", "mAP@0.5", "mAP@[.5:.95]", "mAP@0.75"]  # fmt: skip
    text = table(head, rows, "llrrrrrrrr")
    svm = [[f"`{n}`", f"{e['svm']['softmax_test_map50']:.4f}", f"{e['test_map50']:.4f}",
            f"{e['svm']['softmax_test_map']:.4f}", f"{e['test_map']:.4f}", f"{e['svm']['svm_seconds']:.0f} s"]
           for n, e in runs.items() if e.get("svm")]  # fmt: skip
    if svm:
        text += ("\n\nThe SVM stage of R-CNN and SPPNet against the softmax their network was fine-tuned with "
                 "(the same proposals, test split):\n\n")
        text += table(["model", "softmax mAP@0.5", "SVMs mAP@0.5", "softmax mAP", "SVMs mAP", "SVM stage"], svm)
    search = [e for e in runs.values() if e.get("proposal_s", 0) and e["proposal_s"] > 60]
    if search:
        e = search[0]
        n = e["config"]["subset"] + 500 + 2000
        text += (f"\n\nSelective search took {1000 * e['proposal_s'] / n:.0f} ms per scene when the proposals of "
                 f"the {n:,} scenes were cached (training, validation and test splits).")
    if "ssd-300" in runs:
        e = runs["ssd-300"]
        text += (f"\n\nOn `scenes-det-300` (300x300, up to 20 digits) SSD reached mAP@0.5 {e['test_map50']:.3f} in "
                 f"{e['train_seconds'] / 60:.1f} minutes of this CPU ({e['epochs']} epochs of its "
                 f"{e['config']['epochs']}); published anchors on that layout: {DETECT_300_ANCHORS}.")  # fmt: skip
    return text + source("detection", DETECT_CMD)


@renderer("detection-targets")
def detection_targets() -> str:
    """The issue's targets against the measured figures (test split of scenes-det), met or not."""
    r = load("detection")
    cells = [[f"`{t['model']}` {'mAP@0.5' if t['metric'] == 'map50' else 'mAP@[.5:.95]'}, trained <= 15 min",
              f">= {t['target']:.2f}", f"{t['measured']:.4f}", "yes" if t["met"] else "**no**"]
             for t in r.get("targets", [])]  # fmt: skip
    return table(["what", "target", "measured", "met"], cells, "llrl")


# ----------------------------------------------------------------------------- image generation (docs/generation.md)


GENERATION_CMDS = (
    "DEEPER_DATA=../shared/datasets python benchmarks/generation.py",
    "... --datasets mnist --rows dcgan-conditional wgan-gp",
    "... --datasets mnist --rows dcgan-conditional-best",
    "... --datasets mnist --rows dcgan-conditional-ema",
    "... --datasets mnist --rows dcgan-conditional-cosine",
    "... --datasets mnist --rows dcgan-conditional-smooth",
    "... --datasets mnist --rows dcgan-conditional-spectral",
    "... --datasets fashion-mnist --rows ddpm-long",
    "... --datasets fashion-mnist --rows ddpm-4",
    "... --datasets fashion-mnist --rows dcgan-conditional-best",
    "... --datasets fashion-mnist --rows dcgan-conditional-smooth",
    "... --datasets fashion-mnist --rows dcgan-conditional-spectral",
    "... --datasets fashion-mnist --rows dcgan-conditional-spectral-bf16",
    "... --datasets fashion-mnist --rows dcgan-conditional-spectral-bf16-ema",
    "... --text-only --text-models layout layout-left-to-right (row dcgan-glyphs)",
)


@renderer("generation")
def generation() -> str:
    """FID/KID of the generators against the floor and the bad references, in a classifier trained here."""
    r = load("generation")
    clf = "; ".join(
        f"{d}: LeNet-5, {c['epochs']} epochs, {pct(c['test_accuracy'])} test accuracy"
        for d, c in r["classifiers"].items()
    )
    refs = [
        [x["dataset"], x["set"], f"{x['samples']:,}", f"{x['fid']:.3f}", f"{x['kid']:.4f}"]
        for x in r["references"]
    ]
    rows = []
    for x in r["rows"]:
        cov = f"{100 * x['class_min']:.1f}-{100 * x['class_max']:.1f}%"
        if x["coverage_target_met"] is not None:
            cov += " (8-12%: " + ("yes" if x["coverage_target_met"] else "**no**") + ")"
        met = "yes" if x["fid_target_met"] else "**no**"
        stop = f", stopped: {x['stopped']}" if cut_short(x) else ""
        rows.append([
            x["dataset"], x["model"], f"{x['samples']:,}", f"{x['test_fid']:.3f}", f"{x['fid_floor']:.3f}",
            f"{x['fid_over_floor']:.1f}x (target {x['target_over_floor']:g}x: {met})", f"{x['test_kid']:.4f}", cov,
            f"{x['train_seconds'] / 60:.1f} min ({x['steps']:,} steps{stop})", x.get("CPU", ""),
        ])  # fmt: skip
        if x.get("at_2000"):
            a = x["at_2000"]
            rows.append([x["dataset"], f"{x['model']}, the same weights", f"{a['samples']:,}", f"{a['fid']:.3f}",
                         f"{a['fid_floor']:.3f}", f"{a['fid_over_floor']:.1f}x", "", "", "", ""])  # fmt: skip
    return (
        f"Feature network: {clf} (the input of its last layer, 84 features).\n\n"
        + table(["data", "set", "samples", "FID", "KID"], refs, "llrrr")
        + "\n\n"
        + table(
            [
                "data",
                "model",
                "samples",
                "FID",
                "floor",
                "FID / floor",
                "KID",
                "classes (rarest-commonest)",
                "training",
                "CPU",
            ],
            rows,
            "llrrrlrlll",
        )  # fmt: skip
        + source("generation", *GENERATION_CMDS)
    )


@renderer("generation-text")
def generation_text() -> str:
    """Text to image: the two readers on real scenes, then the generated scenes read back against the target."""
    r = load("generation")
    reader, t = r.get("reader"), r.get("text_to_image")
    if not reader or "mnist_reader_match" not in reader:
        return "(not measured yet: `python benchmarks/generation.py --text-only`)"
    readers = table(
        ["the reader's digit classifier", "real test scenes whose own caption it reads as true"],
        [
            [f"LeNet-5 trained on its own crops of the 10,000 training scenes ({reader['classifier_epochs']} epochs)",
             f"{pct(reader['match'], 1)} of {reader['scenes']:,}"],
            [f"LeNet-5 trained on MNIST ({pct(reader['classifier_accuracy'])} on MNIST's test set)",
             f"{pct(reader['mnist_reader_match'], 1)} of {reader['scenes']:,}"],
        ],
        "lr",
    )  # fmt: skip
    out = readers
    rows, machines = [], []
    if t:
        stop = f", stopped: {t['stopped']}" if cut_short(t) else ""
        rows.append([f"`{t['options']['model']}` ({t['options']['model_kwargs']['width']} wide, "
                     f"mults {t['options']['model_kwargs']['mults']}), guidance {t['options']['task_args']['guidance']:g}, "
                     f"DDIM {t['options']['task_args']['ddim_steps']} steps",
                     f"{t['train_seconds'] / 60:.1f} min ({t['epochs']} epochs, {t['steps']:,} steps{stop})", t])  # fmt: skip
        machines.append(t.get("machine", r.get("machine", "")))
    for lay in (r.get("text_layout"), r.get("text_layout_left_to_right")):
        if not lay:
            continue
        glyphs = next((g for g in r.get("rows", []) if g.get("config") == lay["glyphs"]), {})
        order = lay["options"]["task_args"].get("order", "mention")
        stop = f", stopped: {lay['stopped']}" if cut_short(lay) else ""
        rows.append([f"`{lay['options']['model']}`, {'as the caption names them' if order == 'mention' else order}: "
                     f"two stages, the layout, then the digits of the conditional DCGAN of row `{lay['glyphs']}` "
                     f"({glyphs.get('epochs', '?')} epochs)",
                     f"{lay['total_seconds'] / 60:.1f} min: DCGAN {lay['glyph_seconds'] / 60:.1f} + layout "
                     f"{lay['train_seconds'] / 60:.1f} ({lay['epochs']} epochs, {lay['steps']:,} steps{stop})", lay])  # fmt: skip
        machines.append(lay.get("machine", r.get("machine", "")))
    if rows:
        out += "\n\n" + table(
            ["model", "training", "prompts", "generated scenes whose prompt holds", "the reader on the real scenes",
             "target"],
            [[model, training, f"{x['samples']:,}", pct(x["prompt_match"], 1), pct(x["reader_real"], 1),
              f">= {pct(x['target'], 0)}: {'yes' if x['target_met'] else '**no**'}"] for model, training, x in rows],
            "llrrrl",
        )  # fmt: skip
        m = "; ".join(dict.fromkeys(machines))
        out += f"\n\nMeasured on: {m} (`benchmarks/results/generation.json`)."
    return out + (
        " `DEEPER_DATA=../shared/datasets python benchmarks/generation.py --text-only --images docs/images`"
        + (" (two stages: `... --text-only --text-models layout layout-left-to-right --images docs/images`)"
           if r.get("text_layout") else "")
    )  # fmt: skip


# ----------------------------------------------------------------------------- the README's headline


def cpu_short(d: dict) -> str:
    """The CPU of a result's machine line, without the trademarks: "Intel Xeon", "AMD EPYC"."""
    name = d["machine"].split(",")[0].replace("(R)", "").replace(" Processor", "")
    return " ".join(name.split())


def amd_headline() -> str:
    d = load("time_to_accuracy_amd")
    sp, target = d["spread"]["deeper"], f"{100 * d['target']:.1f}%"
    base = next(r for r in d["rows"] if r["name"] == "baseline")
    first = next(r for r in d["rows"] if r["name"] == "deeper" and r["seed"] == base["seed"])
    t = sp["median_seconds_to_target"]
    return (
        f"on a 2-core {cpu_short(d)}, {sp['reached']} of {sp['seeds']} seeds reach {target} "
        f"(mean {pct(sp['mean'])}{f', median {t:.0f} s' if t is not None else ''}; "
        f"{first['img_per_s'] / base['img_per_s']:.2f}x the plain loop's img/s)"
    )


def detection_headline() -> str:
    """The detectors' best and fastest on scenes-det, each trained in at most 15 minutes."""
    r = load("detection")
    runs = {k: r["runs"][k] for k in _detect_story(r)}
    best = max(runs, key=lambda k: runs[k]["test_map50"])
    fast = min(runs, key=lambda k: runs[k]["latency_ms"])
    slow = max(runs, key=lambda k: runs[k]["latency_ms"])
    f = runs[fast]
    return (f"- **Object detection**, R-CNN to YOLO and SSD, each trained in at most 15 minutes on a 2-core "
            f"{cpu_short(f)}: test mAP@0.5 up to {runs[best]['test_map50']:.3f} (`{best}`); `{fast}` "
            f"{f['test_map50']:.3f} at {f['latency_ms']:.1f} ms per image, {runs[slow]['latency_ms'] / f['latency_ms']:.0f}x "
            f"faster than `{slow}` ([detection](docs/detection.md))")  # fmt: skip


def segmentation_captioning_headline() -> str:
    """U-Net's mIoU and the best NIC's captions (the decoding of a targeted run within its time limit with the most
    captions true), from their benchmarks."""
    seg = {e["config"]: e for e in load("segmentation")["results"]}
    u = seg["unet"]
    runs = [e for e in load("captioning")["results"] if e.get("target") and e["within_time_limit"]]
    run, beam = max(((e, d) for e in runs for d in e["decodings"].values()), key=lambda x: x[1]["meaning_accuracy"])
    scenes = run["options"]["task_args"].get("test_scenes")
    whole = run.get("whole_test")
    where = [f"the first {scenes:,} test scenes"] if scenes else []
    if whole:
        where.append(f"{pct(whole['meaning_accuracy'], 1)} of all {whole['scenes']:,}")
    note = f" ({'; '.join(where)})" if where else ""
    return (f"- **Segmentation and captioning**: U-Net test mIoU {u['test_miou']:.3f} on digit scenes "
            f"([segmentation](docs/segmentation.md)); NIC captions with BLEU-4 {beam['bleu4']:.3f}, "
            f"{pct(beam['meaning_accuracy'], 1)} of them true of their scene{note} ([captioning](docs/captioning.md))")


@renderer("headline")
def headline() -> str:
    rec, tta = load("recipes"), load("time_to_accuracy")
    deeper_row = next(r for r in tta["rows"] if r["name"] == "deeper")
    acc = load("accuracy")
    best = max(
        (r for r in acc["results"] if r["ensemble"].startswith("mnist")), key=lambda r: r["ensemble_mean"]
    )
    tr = {(s["target"], s["mode"]): s["mean"] for s in load("transfer")["summary"]}
    rl = load("rl")
    solved = sum(s["solved"] for s in rl["cartpole"]["seeds"])
    dsolved = sum(s["solved"] for s in rl["cartpole_double"]["seeds"])
    sc = next(r for r in load("scenes")["rows"] if r["preset"] == "scenes-det")
    hard = load("hardening")["classes"]
    lines = [
        f"- **The chapter's DeepConvNet**: {pct(rec['fast_mean_test_accuracy'])} mean test accuracy over "
        f"{rec['fast_seeds']} seeds of the default recipe (the book: 99.38%); 99.4% after "
        f"{deeper_row['seconds_to_target']:.0f} s of training on a 2-core {cpu_short(tta)} "
        f"({deeper_row['img_per_s'] / next(r for r in tta['rows'] if r['name'] == 'baseline')['img_per_s']:.2f}x "
        f"a plain PyTorch loop's img/s); {amd_headline()} ([main job](docs/results.md))",
        f"- **Ensembles**: {best['members']} members reach {pct(best['ensemble_mean'])} on MNIST "
        f"(members {pct(best['single_mean'])} on average) ([accuracy toolkit](docs/accuracy.md))",
        f"- **Transfer learning**: 500 digits images, {pct(tr[('digits', 'scratch')])} from scratch, "
        f"{pct(tr[('digits', 'finetune')])} fine-tuned from MNIST ([zoo](docs/zoo.md))",
        f"- **DQN**: CartPole-v1 solved by {solved}/5 seeds (Double DQN {dsolved}/5) within 50,000 steps "
        f"([reinforcement learning](docs/rl.md))",
        f"- **Multi-digit scenes** for detection, segmentation and captioning: {sc['scenes']:,} scenes in "
        f"{sc['seconds']:.1f} s ([scenes](docs/scenes.md))",
        detection_headline(),
        segmentation_captioning_headline(),
        f"- **Bad input**: {sum(r['clean'] for r in hard):,} of {sum(r['probes'] for r in hard):,} hostile probes "
        "end in a one-line error, nothing left behind ([hardening](docs/hardening.md))",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- driver


def render(text: str, path: Path) -> tuple[str, list[str]]:
    """``text`` with every block re-rendered, and the names of the blocks whose content changed."""
    changed = []

    def fill(m: re.Match) -> str:
        name = m.group(2)
        if name not in RENDERERS:
            raise SystemExit(
                f"{path}: unknown generated block {name!r} (known: {', '.join(sorted(RENDERERS))})"
            )
        body = RENDERERS[name]().rstrip() + "\n"
        if body != m.group(3):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(fill, text), changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = ap.parse_args(argv)
    stale = []
    for path in FILES:
        text = path.read_text()
        new, changed = render(text, path)
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
        if changed and not args.check:
            path.write_text(new)
    if stale:
        print(("stale: " if args.check else "updated: ") + "; ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
