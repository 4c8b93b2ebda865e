"""Knowledge distillation, measured: the same student trained alone and from a teacher (``deeper distill``).

The distillation itself is a task of the engine (:mod:`deeper.tasks.distill`,
``deeper train --task distill``); :func:`distill` trains the student twice with
the same recipe and seed, alone and with the teacher, and reports the gain.
"""

from __future__ import annotations

import os
from pathlib import Path


def distill(
    teacher_weights: str | os.PathLike,
    cfg,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> dict:
    """Train ``cfg``'s student alone and distilled from the teacher; compare their test accuracy.

    Both runs share every option (seed included); their folders are
    ``OUT/alone`` and ``OUT/distilled``.
    """
    from deeper.inference import evaluate_weights
    from deeper.train import fit

    out = Path(cfg.run.out or "runs/distill")
    teacher = evaluate_weights(teacher_weights, cfg.data, data_dir=cfg.run.data_dir, device=cfg.run.device)
    alone = fit(cfg.replace(out=str(out / "alone")))
    args = {"teacher": str(teacher_weights), "temperature": temperature, "alpha": alpha}
    distilled = fit(cfg.replace(task="distill", task_args=args, out=str(out / "distilled")))
    keep = ("test_accuracy", "train_seconds", "weights", "params")
    return {
        "student": cfg.model,
        "data": cfg.data,
        "teacher_accuracy": teacher["test_accuracy"],
        "temperature": temperature,
        "alpha": alpha,
        "alone": {k: alone[k] for k in keep},
        "distilled": {k: distilled[k] for k in keep},
        "gain": (distilled["test_accuracy"] - alone["test_accuracy"]) * 100,  # points
        "out": str(out),
    }
