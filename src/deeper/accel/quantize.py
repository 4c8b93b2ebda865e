"""Fewer bits: int8 (post-training static and quantization-aware), 4-bit weight-only, 1-bit.

- **int8 static** (``int8``): ``torch.ao.quantization`` FX graph mode with the
  ``x86`` backend (fbgemm/oneDNN kernels).  Observers record activation ranges
  on a few calibration batches of *training* images; weights are int8 per
  output channel, activations int8 per tensor, conv+ReLU fused.
- **int8 QAT** (``qat``): the same int8 model, but fake quantization is inserted
  first and the network is fine-tuned for a few hundred steps so it learns to
  live with the rounding; then converted like ``int8``.
- **4-bit weight-only** (``int4``): weights stored as signed 4-bit integers, two
  per byte, with one float16 scale per group of ``group_size`` weights of an
  output channel; they are unpacked to float32 for compute (the gain is size,
  not speed, on a CPU without 4-bit kernels).
- **binary** (``binary``): :mod:`deeper.models.binary`, a DeepConvNet with
  1-bit weights and activations trained with a straight-through estimator;
  stored as one bit per weight (``numpy.packbits``) plus per-channel scales.

Each method is measured the same way by :func:`quantize_weights`: test
accuracy, size on disk of the file it writes, and CPU latency at a batch of
1,000 against deeper's fastest float32 path (the faster of NCHW and
channels-last, measured in the same run).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from torch import nn

from deeper.accel.quantized import (  # noqa: F401 (the file formats and their loader, used from here too)
    CARRIED,
    METHODS,
    Int4Weight,
    QuantizedNet,
    _float_preprocessing,
    _quiet_ao,
    _read_safetensors,
    _require_traceable,
    binary_state_bytes,
    carried_metadata,
    dequantize_int4,
    int4_weight_only,
    int8_state_bytes,
    int8_static,
    load_binary,
    load_int8,
    load_quantized,
    quantize_int4,
    quantized_method,
)
from deeper.errors import ConfigError
from deeper.fileio import write_bytes_atomic


def int8_qat(
    model: nn.Module,
    train_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    *,
    steps: int = 300,
    lr: float = 1e-4,
    backend: str = "x86",
    progress: bool | None = False,
) -> nn.Module:
    """Quantization-aware int8: fine-tune with fake quantization for ``steps`` steps, then convert.

    ``train_batches()`` yields ``(images, labels)`` (called again when exhausted).
    Observers are frozen for the last 30% of the steps and batch-norm statistics
    too, so the converted model sees the ranges it was fine-tuned with.
    """
    import torch.nn.functional as F
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx
    from tqdm import tqdm

    from deeper.train.loop import progress_enabled

    model = copy.deepcopy(model).cpu().float().train()
    it = iter(train_batches())
    first = next(it)
    _require_traceable(model, first[0])
    torch.backends.quantized.engine = backend
    with _quiet_ao():
        mapping, custom = _float_preprocessing(get_default_qat_qconfig_mapping(backend))
        prepared = prepare_qat_fx(model, mapping, example_inputs=(first[0],), prepare_custom_config=custom)
        opt = torch.optim.Adam(prepared.parameters(), lr=lr)
        freeze_at = int(steps * 0.7)
        batch = first
        for step in tqdm(
            range(steps), desc="qat", unit="step", disable=not progress_enabled(progress), leave=False
        ):
            if step == freeze_at:
                prepared.apply(torch.ao.quantization.disable_observer)
                prepared.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
            x, y = batch
            loss = F.cross_entropy(prepared(x.cpu().float()), y.cpu())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            try:
                batch = next(it)
            except StopIteration:
                it = iter(train_batches())
                batch = next(it)
        return convert_fx(prepared.eval()).eval()


# ------------------------------------------------------------------ measuring


@torch.inference_mode()
def latency(model: nn.Module, x: torch.Tensor, *, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one forward pass of ``x`` (after ``warmup`` passes)."""
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@dataclass
class FloatPath:
    name: str
    model: nn.Module
    channels_last: bool
    seconds: float


def fastest_float32(model: nn.Module, x: torch.Tensor, *, repeats: int = 5) -> FloatPath:
    """deeper's fastest float32 CPU inference path for ``model`` at ``x``'s batch: NCHW or channels-last.

    The two layouts are timed alternately, so load on the machine hits both alike.
    """
    nchw = copy.deepcopy(model).cpu().float().eval()
    cl = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    a, b = [], []
    for _ in range(repeats):
        a.append(latency(nchw, x, repeats=1, warmup=1))
        b.append(latency(cl, x_cl, repeats=1, warmup=1))
    ta, tb = statistics.median(a), statistics.median(b)
    return FloatPath("channels_last", cl, True, tb) if tb <= ta else FloatPath("nchw", nchw, False, ta)


@torch.inference_mode()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 1000,
    *,
    channels_last=False,
) -> float:
    """Top-1 accuracy of ``model`` on uint8 ``images`` (scaled to [0, 1] batch by batch)."""
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].float().div_(255)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        correct += int((model(x).argmax(1) == labels[i : i + batch_size]).sum())
    return correct / len(images)


def _fastest_of(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median latency of ``model`` on ``x``, the faster of NCHW and channels-last inputs."""
    x_cl = x.contiguous(memory_format=torch.channels_last)
    a, b = [], []
    for _ in range(repeats):
        a.append(latency(model, x, repeats=1, warmup=1))
        b.append(latency(model, x_cl, repeats=1, warmup=1))
    return min(statistics.median(a), statistics.median(b))


def quantize_weights(
    weights: str | os.PathLike,
    data: str,
    method: str,
    output: str | os.PathLike,
    *,
    model: str | None = None,
    data_dir: str | None = None,
    calib_batches: int = 10,
    qat_steps: int = 300,
    group_size: int = 32,
    binary_epochs: int | None = None,
    batch_size: int = 1000,
    repeats: int = 5,
    seed: int = 0,
    progress: bool | None = None,
) -> dict:
    """Quantize trained float weights with ``method``; write the result to ``output``; measure both.

    The returned dict has ``test_accuracy``, ``float_accuracy``, ``accuracy_drop``
    (points), ``speedup`` (deeper's fastest float32 path / quantized, CPU, batch
    ``batch_size``), ``size_bytes`` (of ``output``), ``float_size_bytes`` (of
    ``weights``) and the latencies in milliseconds.
    """
    from deeper.data import BatchLoader, load_dataset
    from deeper.inference import check_compatible
    from deeper.models import model_from_weights
    from deeper.models.weights import weights_file
    from deeper.runtime import notice, seed_everything

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    for name, v in (("calib_batches", calib_batches), ("qat_steps", qat_steps), ("group_size", group_size),
                    ("batch_size", batch_size), ("repeats", repeats)):  # fmt: skip
        if v < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
    output = Path(output)
    if output.suffix != ".safetensors":
        raise ConfigError(f"output {str(output)!r} must be a .safetensors file")
    seed_everything(seed)
    net, meta = model_from_weights(weights, model)
    net = net.cpu().float().eval()
    check_compatible(meta, data, weights)
    train = load_dataset(data, "train", data_dir=data_dir)
    test = load_dataset(data, "test", data_dir=data_dir)
    x = test.images[:batch_size].float().div(255)
    fp = fastest_float32(net, x, repeats=repeats)
    float_acc = accuracy(fp.model, test.images, test.labels, channels_last=fp.channels_last)
    info = {"model": meta.get("model", model), "method": method, "dataset": data}
    carried = carried_metadata(meta, method)  # what eval, predict and serve need to rebuild and use it
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))

    if method == "int8":
        calib = [train.images[perm[i * 100 : (i + 1) * 100]].float().div(255) for i in range(calib_batches)]
        qmodel = int8_static(net, calib)
        blob = int8_state_bytes(qmodel, {**carried, **info, "calibration_images": str(100 * calib_batches)})
    elif method == "qat":
        loader = BatchLoader(train, 128, shuffle=True, seed=seed)
        qmodel = int8_qat(net, lambda: iter(loader), steps=qat_steps, progress=progress)
        blob = int8_state_bytes(qmodel, {**carried, **info, "qat_steps": str(qat_steps)})
    elif method == "int4":
        qmodel = int4_weight_only(net, group_size=group_size)
        blob = st_save(
            {k: v.contiguous() for k, v in qmodel.state_dict().items()},
            metadata={**carried, **info, "group_size": str(group_size)},
        )
    else:
        qmodel, trained = _train_binary(data, data_dir, output, binary_epochs, seed, progress)
        info["binary_train"] = trained
        blob = binary_state_bytes(qmodel, {**carried, **{k: str(v) for k, v in info.items()}})
        notice(f"binary network trained: {trained['test_accuracy']:.4f} after {trained['epochs']} epochs")
    q_acc = accuracy(qmodel, test.images, test.labels)
    q_seconds = _fastest_of(qmodel, x, repeats)
    write_bytes_atomic(output, blob)
    return {
        **{k: v for k, v in info.items() if k != "binary_train"},
        "test_accuracy": q_acc,
        "float_accuracy": float_acc,
        "accuracy_drop": (float_acc - q_acc) * 100,
        "speedup": fp.seconds / q_seconds,
        "latency_ms": q_seconds * 1000,
        "float_latency_ms": fp.seconds * 1000,
        "float_path": fp.name,
        "batch_size": len(x),
        "size_bytes": output.stat().st_size,
        "float_size_bytes": weights_file(weights).stat().st_size,
        "threads": torch.get_num_threads(),
        "output": str(output),
        **({"binary_train": info["binary_train"]} if method == "binary" else {}),
    }


def _train_binary(data, data_dir, output: Path, epochs, seed, progress) -> tuple[nn.Module, dict]:
    """Train :class:`~deeper.models.binary.BinaryConvNet` with deeper's fast recipe; the model and fit's result."""
    import tempfile

    from deeper.models import model_from_weights
    from deeper.train import TrainConfig, fit

    with tempfile.TemporaryDirectory(
        prefix=".binary-", dir=output.parent if output.parent.exists() else None
    ) as tmp:
        cfg = TrainConfig(
            model="binary-convnet", data=data, data_dir=data_dir, epochs=epochs, seed=seed, out=tmp,
            tensorboard=False, progress=progress, device="cpu",
        )  # fmt: skip
        result = fit(cfg)
        net, _ = model_from_weights(result["weights"])
    keep = ("test_accuracy", "epochs", "train_seconds", "img_per_s")
    return net.eval(), {k: result[k] for k in keep}
