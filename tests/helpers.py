"""Helpers shared by the test modules (``from tests.helpers import ...``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from deeper.cli import main


def load_benchmark(name: str):
    """The module ``benchmarks/NAME.py`` (its folder on ``sys.path``, as when it runs as a script)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dry_run_options(task: str, **task_args) -> dict:
    """A task's dry-run training options (its ``dry_run``) with ``task_args`` over its own; ``task`` included."""
    from deeper.tasks.base import get_task_class

    settings = dict(get_task_class(task).dry_run)
    return {**settings, "task": task, "task_args": {**settings.get("task_args", {}), **task_args}}


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run ``deeper ARGV`` in-process: exit code, stdout and stderr."""
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def last_json(stdout: str) -> dict:
    """The JSON object a ``--json`` command prints as its last line."""
    return json.loads(stdout.strip().splitlines()[-1])


def assert_resumes_bit_for_bit(tmp_path: Path, options: dict, *, stop_after: int = 3) -> tuple[Path, Path]:
    """Train ``TrainConfig(**options)`` straight, and stopped after ``stop_after`` steps then resumed:
    the two weights files must be equal.  Returns the two run folders (straight, split)."""
    from safetensors.torch import load_file

    from deeper.train import TrainConfig, fit

    straight, split = tmp_path / "straight", tmp_path / "split"
    fit(TrainConfig(**options, out=str(straight)))
    fit(TrainConfig(**options, max_steps=stop_after, out=str(split)))
    fit(TrainConfig(**options, out=str(split)), resume=True)
    a, b = load_file(straight / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return straight, split
