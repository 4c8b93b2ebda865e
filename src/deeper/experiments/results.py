"""Running an experiment and keeping what it found: ``<results>/<name>/<profile>/result.json`` + PNGs.

The results folder defaults to ``docs/experiments`` (under the current folder;
``$DEEPER_EXPERIMENTS`` or ``--results`` change it).  Each run replaces its
own ``<name>/<profile>/`` folder: its figures and a ``result.json`` holding the
claim, the source, the profile's parameters, the verdict and the tests that
decided it, the numbers, the machine it ran on and the command that reproduces it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from deeper.errors import ConfigError
from deeper.experiments.base import PROFILES, Context, Experiment, Outcome, check_profile, get_experiment
from deeper.experiments.stats import VERDICTS
from deeper.fileio import write_text_atomic

RESULT_FILE = "result.json"


def default_results_dir() -> Path:
    return Path(os.environ.get("DEEPER_EXPERIMENTS") or "docs/experiments")


def result_dir(root: str | os.PathLike, name: str, profile: str) -> Path:
    return Path(root) / name / profile


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """The machine a figure was measured on: CPU model and cores, GPU model, library versions."""
    import numpy
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    cores = os.cpu_count()
    line = f"{cores}-core {cpu_name()}, {'GPU ' + gpu if gpu else 'no GPU'}, torch {torch.__version__.split('+')[0]}"
    return {
        "description": line,
        "cpu": cpu_name(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "device": device,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def run_experiment(
    name: str,
    profile: str = "quick",
    *,
    results: str | os.PathLike | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    reuse: bool = False,
    threads: int | None = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Run experiment ``name`` with ``profile``; write and return its ``result.json`` document.

    ``threads``: torch's CPU threads during the run (``None``: torch's default).  One is the
    default: the experiments train many small networks, and on a busy machine with few cores
    a second thread mostly waits (5x slower steps were measured on a loaded 2-core CPU).
    """
    import torch

    exp = get_experiment(name)
    check_profile(profile)
    if reuse and not exp.reusable:
        raise ConfigError(f"experiment {name!r} reuses no benchmark's results (--reuse)")
    root = Path(results) if results is not None else default_results_dir()
    out = result_dir(root, name, profile)
    staging = out.with_name(f".{profile}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    prof = exp.profiles[profile]
    ctx = Context(
        exp, profile, dict(prof.params), staging, device=device, data_dir=data_dir, log=log, reuse=reuse
    )
    started = time.perf_counter()
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        outcome = exp.run(ctx)
        doc = document(exp, profile, outcome, seconds=time.perf_counter() - started, device=str(ctx.torch_device()),
                       reuse=reuse)  # fmt: skip
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(before)
    for fname, _ in outcome.figures:
        if not (staging / fname).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"experiment {name} names figure {fname} but did not write it")
    write_text_atomic(staging / RESULT_FILE, json.dumps(clean(doc), indent=2, default=_jsonable) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return doc


def document(exp: Experiment, profile: str, outcome: Outcome, *, seconds: float, device: str,
             reuse: bool = False) -> dict:  # fmt: skip
    """The ``result.json`` of a finished run."""
    if outcome.verdict not in VERDICTS:
        raise ValueError(f"{exp.name}: verdict {outcome.verdict!r} is not one of {VERDICTS}")
    command = f"deeper experiment run {exp.name} --profile {profile}" + (" --reuse" if reuse else "")
    return {
        "experiment": exp.name,
        "title": exp.title,
        "claim": exp.claim,
        "sources": [asdict(s) for s in exp.sources],
        "method": exp.method,
        "profile": profile,
        "profile_description": (
            f"the committed results of {exp.benchmark}, analysed"
            if reuse
            else exp.profiles[profile].description
        ),
        "params": {} if reuse else exp.profiles[profile].params,
        "reused": exp.benchmark if reuse else None,
        "verdict": outcome.verdict,
        "because": outcome.because,
        "rule": outcome.rule,
        "tests": outcome.tests,
        "numbers": outcome.numbers,
        "figures": [{"file": f, "caption": c} for f, c in outcome.figures],
        "notes": outcome.notes,
        "evidence": outcome.evidence,
        "data": outcome.data,
        "machine": machine(device),
        "gpu_claim": exp.gpu,
        "seconds": seconds,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
    }


def clean(obj):
    """``obj`` as strict JSON data: NaN and infinities become ``None``, tuples lists."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_result(root: str | os.PathLike, name: str, profile: str) -> dict | None:
    path = result_dir(root, name, profile) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable result ({e})") from None


def finished(root: str | os.PathLike) -> dict[str, dict[str, dict]]:
    """``{experiment: {profile: result}}`` of every finished run under ``root`` (registered experiments only)."""
    from deeper.experiments.base import list_experiments

    out: dict[str, dict[str, dict]] = {}
    for exp in list_experiments():
        for profile in PROFILES:
            doc = load_result(root, exp.name, profile)
            if doc is not None:
                out.setdefault(exp.name, {})[profile] = doc
    return out


def benchmark_result(name: str) -> tuple[dict, str]:
    """``benchmarks/results/<name>.json`` (looked for under the current folder, then beside the package's
    source tree) and its path relative to the project; a ConfigError when it is not there."""
    here = Path.cwd() / "benchmarks" / "results" / f"{name}.json"
    src = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / f"{name}.json"
    for path in (here, src):
        if path.is_file():
            return json.loads(path.read_text()), f"benchmarks/results/{name}.json"
    raise ConfigError(
        f"benchmarks/results/{name}.json is not there: run its benchmark first, or drop --reuse"
    )
