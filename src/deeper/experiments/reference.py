"""Trained reference models shared by several experiments (16-bit inference, fewer bits, robustness).

``reference_weights(ctx, spec)`` trains ``deeper.fit(**spec)`` once and keeps its
weights file and result in a cache folder (``$DEEPER_EXPERIMENT_CACHE``, default
``runs/experiment-cache``, which git ignores); the next experiment that asks for
the same ``spec`` (and data folder) gets the same file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from deeper.fileio import write_text_atomic


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPER_EXPERIMENT_CACHE") or "runs/experiment-cache")


def reference_weights(ctx, spec: dict) -> tuple[Path, dict]:
    """The weights file of ``deeper.fit(**spec)`` and the run's result (trained on the first call)."""
    from deeper.train import fit

    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{spec.get('model', 'model')}-{spec.get('data', 'data')}-{key}"
    folder = cache_dir() / name
    weights, result = folder / "model.safetensors", folder / "result.json"
    if weights.is_file() and result.is_file():
        return weights, json.loads(result.read_text())
    ctx.log(f"  training the reference model {name} ({spec})")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".train-") as tmp:
        r = fit(**spec, out=tmp, device="cpu", data_dir=ctx.data_dir, tensorboard=False, progress=False,
                log=lambda _m: None)  # fmt: skip
        folder.mkdir(exist_ok=True)
        shutil.copyfile(Path(r["weights"]), weights)
    keep = {
        k: r[k]
        for k in ("model", "data", "recipe", "test_accuracy", "epochs", "train_seconds", "img_per_s")
        if k in r
    }
    write_text_atomic(result, json.dumps({**keep, "spec": spec}, indent=2) + "\n")
    return weights, {**keep, "spec": spec}
