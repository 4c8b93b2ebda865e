"""k-fold cross-validation for choosing hyper-parameters (``deeper cv``).

The training split is cut into ``k`` stratified folds (scikit-learn's
``StratifiedKFold``, fixed seed, so every candidate sees the same folds); each
candidate configuration is trained ``k`` times, validated each time on the fold
it did not train on, and scored by the mean validation accuracy.  The test split
plays no part in the choice.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

from deeper.errors import ConfigError
from deeper.fileio import write_text_atomic
from deeper.runtime import notice


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["lr=0.001,0.003", "augment=none;default"]`` -> ``{"lr": [0.001, 0.003], ...}``.

    Values are separated by commas, or by semicolons when a value itself holds commas
    (an augmentation spec); each value is read as YAML (numbers, booleans, strings).
    """
    from deeper.train.config import TrainConfig
    from deeper.validate import check_option, load_yaml

    known = set(TrainConfig().flat())
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        if key not in known or key in ("out", "folds", "fold", "ensemble"):
            raise ConfigError(f"--grid: {key!r} is not a training option that can be varied")
        parts = values.split(";") if ";" in values else values.split(",")
        grid[key] = [check_option(key, load_yaml(v.strip(), f"--grid {key}")) for v in parts if v.strip()]
    return grid


def _label(params: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "base"


def _slug(params: dict) -> str:
    text = "_".join(f"{k}-{v}" for k, v in params.items()) or "base"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def cross_validate(cfg, grid: dict[str, list], *, folds: int = 5, out: str | Path, log=notice) -> dict:
    """Train every combination of ``grid`` on each of ``folds`` folds; rank by mean validation accuracy.

    Folds already finished (a ``result.json`` in their folder) are reused, so an
    interrupted search continues where it stopped.
    """
    from deeper.train.engine import run_engine as fit

    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    out = Path(out)
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*grid.values())] or [{}]
    rows = []
    for n, params in enumerate(combos, 1):
        scores = []
        for fold in range(folds):
            run_dir = out / _slug(params) / f"fold-{fold}"
            done = run_dir / "result.json"
            if done.is_file():
                result = json.loads(done.read_text())
            else:
                log(f"cv {n}/{len(combos)} [{_label(params)}] fold {fold + 1}/{folds}")
                fold_cfg = cfg.replace(**params, folds=folds, fold=fold, out=str(run_dir), ensemble=1)
                result = fit(fold_cfg, log=lambda _m: None)
            if result.get("val_accuracy") is None:
                raise ConfigError(
                    f"{run_dir}: the run ended before its first epoch, so it has no validation score"
                )
            scores.append(result["val_accuracy"])
        mean = statistics.fmean(scores)
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        log(f"cv [{_label(params)}]: val accuracy {mean:.4f} +- {std:.4f}")
        rows.append({"params": params, "val_accuracy": scores, "mean": mean, "std": std})
    best = max(rows, key=lambda r: r["mean"])
    summary = {
        "folds": folds,
        "data": cfg.data,
        "model": cfg.model,
        "results": rows,
        "best": best,
        "out": str(out),
    }
    write_text_atomic(out / "cv.json", json.dumps(summary, indent=2) + "\n")
    return summary
