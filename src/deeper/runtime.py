"""Devices, seeds and determinism."""

from __future__ import annotations

import contextlib
import functools
import os
import random
import sys
import time
from collections.abc import Callable, Iterator

import torch

from deeper.errors import ConfigError

#: who else hears every notice (a run's console.log, while the run lasts)
_LISTENERS: list[Callable[[str], None]] = []


def notice(message: str) -> None:
    """A one-line notice for the user on stderr (never mixed into --json stdout), also told to every
    listener of :func:`listening` (a run folder's ``console.log``)."""
    line = f"deeper: {message}"
    print(line, file=sys.stderr)
    for listener in list(_LISTENERS):
        listener(line)


@contextlib.contextmanager
def listening(listener: Callable[[str], None]) -> Iterator[None]:
    """Within the block, ``listener`` hears every :func:`notice` line (as printed, ``deeper: ...``)."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


#: how much slower than float32 a CPU precision must be for a notice to say so
SLOW_FACTOR = 1.5


@functools.cache
def cpu_slowdown(dtype: torch.dtype, engine: str = "torch") -> float:
    """How many times slower than float32 ``dtype`` computes on this CPU: a small convolutional forward
    pass in torch, a matrix product in NumPy (``engine="numpy"``, the from-scratch engine).

    Measured once per process (milliseconds): float16 is fast on CPUs with float16 vector or
    matrix units and many times slower on the others, which emulate it; NumPy has no float16
    matrix kernels at all.
    """
    if engine == "numpy":
        import numpy as np

        a, b = np.random.default_rng(0).random((2, 64, 128))

        def run(dt: torch.dtype):
            name = str(dt).removeprefix("torch.")
            x, y = a.astype(name), b.T.astype(name)
            return lambda: x @ y

    else:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(8, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(16 * 64, 10),
        ).eval()
        x = torch.rand(32, 8, 8, 8)

        def run(dt: torch.dtype):
            n, xx = net.to(dt), x.to(dt)
            return lambda: n(xx)

    def seconds(dt: torch.dtype) -> float:
        step = run(dt)
        with torch.inference_mode():
            step()  # warm-up: kernels chosen, memory allocated
            best = float("inf")
            for _ in range(9):  # the best of several: one timing can be a moment the CPU was busy elsewhere
                t = time.perf_counter()
                step()
                best = min(best, time.perf_counter() - t)
        return best

    try:
        slow = seconds(dtype)
    except (RuntimeError, TypeError):  # no kernel for this precision on this CPU at all
        return float("inf")
    return slow / max(seconds(torch.float32), 1e-9)


def precision_notice(
    dtype: str | torch.dtype, device: str | torch.device, *, what: str = "evaluating", engine: str = "torch"
) -> None:
    """A notice when ``dtype`` on ``device`` is a slow choice on this machine (float16 on a CPU that
    emulates it, float16 in NumPy): the figures are that precision's, the time is not what it buys elsewhere."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if torch.device(device).type != "cpu" or dtype not in (torch.float16, torch.bfloat16):
        return
    factor = cpu_slowdown(dtype, engine)
    if factor >= SLOW_FACTOR:
        name = str(dtype).removeprefix("torch.")
        where = "in NumPy" if engine == "numpy" else "on the CPU"
        times = (
            "has no kernels for it"
            if factor == float("inf")
            else f"runs it {factor:.1f}x slower than float32"
        )
        notice(
            f"{what} in {name} {where} is slow on this machine ({'NumPy' if engine == 'numpy' else 'its CPU'} "
            f"{times}): expect {name}'s accuracy, not its speed"
        )


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU falls back to CPU with a notice."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            notice(f"device {spec!r} requested but CUDA is not available; using the CPU")
            return torch.device("cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device type {device.type!r} (use auto, cpu or cuda)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels only (slower on GPU); on CPU our ops are deterministic already."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled and torch.cuda.is_available()


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep glibc from mapping and unmapping a training step's large tensors afresh on every step.

    glibc serves blocks above a dynamic threshold with ``mmap`` and returns them at once; the
    activations of a CPU training step cross it, so every step page-faults them in again (about 9%
    of the default MNIST training on a 2-core Xeon, measured by ``benchmarks/engine_overhead.py``).
    Fixing the thresholds (the effect of ``MALLOC_MMAP_THRESHOLD_=268435456
    MALLOC_TRIM_THRESHOLD_=536870912``) keeps them in the heap.  Linux with glibc only; left alone
    when the user set either variable or ``DEEPER_MALLOC=0``.  Returns whether it changed anything.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return False
    if os.environ.get("DEEPER_MALLOC") == "0" or any(
        v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 256 << 20) == 1 and libc.mallopt(m_trim_threshold, 512 << 20) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _ALLOCATOR_TUNED = ok
    return ok
