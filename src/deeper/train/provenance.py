"""What ``config.yaml`` records beside the options: the values a run resolved and the versions that ran it.

``resolved``: what the options left to the machine became (the device, the validation split's size, the
memory layout, the number of processes, the
training precision ``--amp auto`` became); ``versions``: deeper, torch, torchvision, Python and the git
commit of the source (when it is a checkout).  Both describe a run; neither is an option, so
``--resume`` and ``--config`` read past them.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

#: the sections of config.yaml that describe a run rather than configure one
DESCRIPTIVE = ("resolved", "versions")


def resolved_values(run) -> dict:
    """The values a built run settled on where the configuration left a choice."""
    val = getattr(run.val_loader, "dataset", None) if run.val_loader is not None else None
    train = getattr(run.train_loader, "dataset", None)
    layout = getattr(run.train_loader, "channels_last", None)
    return {
        "device": str(run.device),
        "train_size": len(train) if train is not None else None,
        "val_size": len(val) if val is not None else 0,
        "channels_last": bool(layout) if layout is not None else None,
        "world_size": int(run.world_size),
        "amp": run.amp.name if getattr(run, "amp", None) is not None else "off",
    }


@lru_cache(maxsize=1)
def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        deeper_version = version(
            "deeper"
        )  # the installed distribution's (the package root imports the engine)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
        deeper_version = None
    try:
        import torchvision

        tv = str(torchvision.__version__)
    except ImportError:  # pragma: no cover - a dependency, but the record must not fail
        tv = None
    return {
        "deeper": deeper_version,
        "torch": str(torch.__version__),
        "torchvision": tv,
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit of the checkout deeper runs from (``+dirty`` with uncommitted changes); None elsewhere."""
    src = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def recorded_config(cfg, run) -> dict:
    """The document written as ``config.yaml``: the options, then what the run resolved and the versions."""
    return {**cfg.to_dict(), "resolved": resolved_values(run), "versions": versions()}
