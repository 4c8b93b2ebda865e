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


def source(name: str, command: str | None = None) -> str:
    m = load(name).get("machine", "")
    cmd = f" `{command}`" if command else ""
    return f"\n\nMeasured on: {m} (`benchmarks/results/{name}.json`).{cmd}"


# ----------------------------------------------------------------------------- the main job


@renderer("time-to-accuracy")
def time_to_accuracy() -> str:
    d = load("time_to_accuracy")
    labels = {
        "baseline": "torchvision `MNIST` + per-sample `ToTensor` + `DataLoader` (pytorch/examples style), NCHW",
        "deeper-nchw": "deeper loader (in-memory, one index per batch), NCHW",
        "deeper": "**deeper default** (in-memory loader + channels-last)",
    }
    base = next(r for r in d["rows"] if r["name"] == "baseline")["img_per_s"]
    rows = []
    for r in d["rows"]:
        t = r.get("seconds_to_target")
        rows.append([labels.get(r["name"], r["name"]), f"{r['img_per_s']:,.0f}", f"{r['img_per_s'] / base:.2f}x",
                     f"{r['train_seconds']:.1f}", f"{r['final_test_accuracy']:.4f}",
                     f"{t:.1f}" if t is not None else "never"])  # fmt: skip
    recipe = d["recipe"].get("recipe") if isinstance(d["recipe"], dict) else d["recipe"]
    head = [
        "pipeline",
        "img/s",
        "vs baseline",
        "training s",
        "final test acc",
        f"s to {100 * d['target']:.1f}%",
    ]
    return table(head, rows) + source("time_to_accuracy") + f" Recipe `{recipe}` for every row."


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


# ----------------------------------------------------------------------------- the README's headline


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
        f"{rec['fast_seeds']} seeds of the default recipe (the book: 99.38%), 99.4% after "
        f"{deeper_row['seconds_to_target']:.0f} s of training on 2 CPU cores "
        f"({deeper_row['img_per_s'] / next(r for r in tta['rows'] if r['name'] == 'baseline')['img_per_s']:.2f}x "
        "a plain PyTorch loop) ([main job](docs/results.md))",
        f"- **Ensembles**: {best['members']} members reach {pct(best['ensemble_mean'])} on MNIST "
        f"(members {pct(best['single_mean'])} on average) ([accuracy toolkit](docs/accuracy.md))",
        f"- **Transfer learning**: 500 digits images, {pct(tr[('digits', 'scratch')])} from scratch, "
        f"{pct(tr[('digits', 'finetune')])} fine-tuned from MNIST ([zoo](docs/zoo.md))",
        f"- **DQN**: CartPole-v1 solved by {solved}/5 seeds (Double DQN {dsolved}/5) within 50,000 steps "
        f"([reinforcement learning](docs/rl.md))",
        f"- **Multi-digit scenes** for detection, segmentation and captioning: {sc['scenes']:,} scenes in "
        f"{sc['seconds']:.1f} s ([scenes](docs/scenes.md))",
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
