"""ONNX export, checked against onnxruntime.

``torch.onnx.export`` (the ``torch.export``-based exporter) writes the model
with a dynamic batch dimension; onnxruntime then runs it on real test images
and the largest absolute difference from PyTorch's eager output is reported,
with both latencies.  Needs the ``accel`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from deeper.errors import ConfigError, DeeperError
from deeper.fileio import NEW_FILE_MODE


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({e.name} is missing): pip install 'deeper[accel]'"
        ) from None


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, *, opset: int = 18) -> Path:
    """Write ``model`` (eval mode, CPU, float32) as ONNX with a dynamic batch axis; atomically."""
    _require_onnx()
    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"output {str(path)!r} must be a .onnx file")
    model = model.cpu().float().eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(None),
            _quiet_loggers("torch.onnx", "onnxscript"),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example.cpu().float(),), dynamo=True, opset_version=opset,
                input_names=["images"], output_names=["logits"],
                dynamic_shapes=({0: batch},), external_data=False, verbose=False,
            )  # fmt: skip
            program.save(tmp)
        written = _opset_of(tmp)
        if written != opset:  # the exporter fell back to its own opset when it could not convert
            raise ConfigError(
                f"the ONNX exporter could not convert this model to opset {opset} (it would write opset {written}); "
                "choose --opset 17 or higher"
            )
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - exporter failures come in many types
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, DeeperError):
            raise
        raise DeeperError(
            f"ONNX export of {type(model).__name__} failed: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    return path


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """The exporter's own log lines (version-conversion notes) kept off the user's terminal."""
    import logging

    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _opset_of(path: str | os.PathLike) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    _require_onnx()
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def parity_and_latency(
    model: nn.Module, path: str | os.PathLike, x: torch.Tensor, *, repeats: int = 5
) -> dict:
    """Max |onnxruntime - eager| on ``x``, both latencies (CPU, same thread count), agreement of predictions."""
    model = model.cpu().float().eval()
    sess = onnx_session(path, threads=torch.get_num_threads())
    name = sess.get_inputs()[0].name
    feed = {name: x.cpu().float().numpy()}
    ref = model(x)
    got = torch.from_numpy(sess.run(None, feed)[0])
    t_torch = _median_seconds(lambda: model(x), repeats)
    t_ort = _median_seconds(lambda: sess.run(None, feed), repeats)
    return {
        "max_abs_diff": float((got - ref).abs().max()),
        "same_predictions": float((got.argmax(1) == ref.argmax(1)).float().mean()),
        "torch_latency_ms": t_torch * 1000,
        "onnxruntime_latency_ms": t_ort * 1000,
        "onnxruntime_speedup": t_torch / t_ort,
        "batch_size": len(x),
        "threads": torch.get_num_threads(),
    }
