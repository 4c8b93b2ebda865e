"""Run folders as the web app shows them: curves, metrics, the misclassified gallery, the layer table.

A run folder is one ``deeper train`` wrote (``model.safetensors`` or ``result.json`` in it); runs are
found under the runs root (``runs/`` by default) down to :data:`MAX_DEPTH` levels (ensemble members,
benchmark seeds).  Names are paths relative to the root; a name that leaves the root is refused.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from deeper.errors import ConfigError

MARKERS = ("model.safetensors", "result.json")
MAX_DEPTH = 3
#: where the experiments report (``deeper experiment report``) may be, relative to the runs root and
#: the working folder
REPORT_PLACES = (
    "docs/experiments/report.html", "experiments/report.html", "report.html", "../docs/experiments/report.html",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    name: str  # relative to the runs root, with "/"
    path: Path
    mtime: float
    has_weights: bool


def find_runs(root: str | Path) -> list[Run]:
    """The run folders under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[Run] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            marks = [child / m for m in MARKERS if (child / m).is_file()]
            if marks:
                mtime = max(m.stat().st_mtime for m in marks)
                weights = (child / "model.safetensors").is_file()
                found.append(Run(child.relative_to(root).as_posix(), child, mtime, weights))
            if depth < MAX_DEPTH and child.name not in ("checkpoints", "tb"):
                walk(child, depth + 1)

    walk(root, 1)
    return sorted(found, key=lambda r: (-r.mtime, r.name))


def newest_run(root: str | Path) -> Run | None:
    """The newest run under ``root`` that has weights (None when there is none)."""
    return next((r for r in find_runs(root) if r.has_weights), None)


def resolve_run(root: str | Path, name: str) -> Path:
    """The folder of run ``name`` under ``root``; a one-line error for a name that is not a run there."""
    root = Path(root).resolve()
    if not name or name.startswith("/") or "\\" in name:
        raise ConfigError(f"no run named {name!r}")
    path = (root / name).resolve()
    if root not in path.parents or not any((path / m).is_file() for m in MARKERS):
        raise ConfigError(f"no run named {name!r} under {root}")
    return path


def run_info(path: Path) -> dict:
    """What the run page shows: result, configuration, per-epoch metrics, the figures the run drew."""
    result = _read_json(path / "result.json")
    config = (path / "config.yaml").read_text() if (path / "config.yaml").is_file() else None
    rows: list[dict] = []
    if (path / "metrics.csv").is_file():
        with open(path / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    figures = sorted(p.name for p in path.glob("*.png"))
    if "curves.png" in figures:  # the curves first
        figures.insert(0, figures.pop(figures.index("curves.png")))
    meta = weights_meta(path)
    scalars = {k: v for k, v in (result or {}).items() if isinstance(v, int | float | str) and k != "run_dir"}
    return {
        "result": scalars,
        "config": config,
        "metrics": rows,
        "columns": list(rows[0]) if rows else [],
        "figures": figures,
        "has_weights": (path / "model.safetensors").is_file(),
        "task": meta.get("task", "classify") if meta else (result or {}).get("task"),
        "meta": meta,
    }


def weights_meta(path: Path) -> dict | None:
    """The metadata of the run's weights (None when it has none)."""
    w = path / "model.safetensors"
    if not w.is_file():
        return None
    import safetensors

    try:
        with safetensors.safe_open(str(w), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # noqa: BLE001 - a damaged file is shown as having no metadata
        return None


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def find_report(root: str | Path, explicit: str | Path | None = None) -> Path | None:
    """The experiments report (HTML): ``explicit`` when given, else the first of :data:`REPORT_PLACES`."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"--report {explicit}: no such file")
        return p.resolve()
    for place in REPORT_PLACES:
        for base in (Path(root), Path.cwd()):
            p = base / place
            if p.is_file():
                return p.resolve()
    return None


# ---------------------------------------------------------------------------------------- analyses

_GALLERY_LOCK = threading.Lock()


def gallery(path: Path, cache_dir: Path, *, max_images: int = 60, columns: int = 10,
            data_dir: str | None = None) -> dict:  # fmt: skip
    """The misclassified test images of a classification run (the book's figure 8-2), drawn into
    ``cache_dir`` once per weights file: ``{"png", "wrong", "images", "data"}``."""
    from deeper.analysis.gallery import misclassified_gallery
    from deeper.inference import misclassified

    meta = weights_meta(path)
    if meta is None:
        raise ConfigError(f"{path.name}: no weights in this run")
    if meta.get("task", "classify") not in ("classify", "distill"):
        raise ConfigError(f"the gallery is for classifiers; this run's task is {meta['task']!r}")
    data = meta.get("dataset")
    if not data:
        raise ConfigError(f"{path.name}: the weights do not record their dataset")
    weights = path / "model.safetensors"
    key = hashlib.sha256(
        f"{weights.resolve()}:{weights.stat().st_mtime_ns}:{max_images}".encode()
    ).hexdigest()
    png, info = cache_dir / f"gallery-{key[:16]}.png", cache_dir / f"gallery-{key[:16]}.json"
    with _GALLERY_LOCK:  # one evaluation of the test set at a time
        if not (png.is_file() and info.is_file()):
            ds, wrong, pred = misclassified(weights, data, device="cpu", data_dir=data_dir)
            shown = wrong[:max_images].cpu()
            classes = ds.classes if data != "mnist" else None
            title = f"{len(wrong)} of {len(ds):,} {data} test images misclassified (top-left: true, bottom-right: predicted)"
            cache_dir.mkdir(parents=True, exist_ok=True)
            if len(shown):
                misclassified_gallery(
                    ds.images[shown], ds.labels[shown], pred[shown], png, classes=classes, title=title,
                    columns=columns,
                )  # fmt: skip
            else:
                png.write_bytes(b"")
            info.write_text(json.dumps({"wrong": len(wrong), "images": len(ds), "data": data}))
    return {"png": png if png.stat().st_size else None, **json.loads(info.read_text())}


def layer_table(path: Path):
    """The layer table (:func:`deeper.analysis.summary.summarize`) of the run's model, at its input size."""
    from deeper.analysis.summary import summarize
    from deeper.inference import task_of

    meta = weights_meta(path)
    if meta is None:
        raise ConfigError(f"{path.name}: no weights in this run")
    task = task_of(meta)
    net, meta = task.load_model(path / "model.safetensors")
    size = int(meta.get("img_size", 28))
    shape = (int(meta.get("in_chans", 1)), size, size)
    try:
        return summarize(net.cpu(), shape, name=meta.get("model") or path.name)
    except (AttributeError, TypeError, RuntimeError, ValueError) as e:  # e.g. a detector answering with dicts
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"no layer table for {meta.get('model', 'this model')} ({first})") from None
