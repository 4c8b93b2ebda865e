"""Using trained weights: evaluate on a dataset, predict images, list the mistakes."""

from __future__ import annotations

import os
import time

import torch
from torch import nn

from deeper.data import BatchLoader, get_dataset_spec, load_dataset
from deeper.errors import ConfigError
from deeper.models import model_from_weights
from deeper.runtime import resolve_device
from deeper.tasks.classify import ClassificationTask
from deeper.train.loop import evaluate

DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})") from None


def load_for_inference(
    weights: str | os.PathLike, model: str | None = None, *, device: str = "auto", dtype: str = "float32"
) -> tuple[nn.Module, dict]:
    """The model of ``weights`` (a file or a run folder) in eval mode, cast to ``dtype`` on ``device``."""
    from deeper.accel.quantized import quantized_method
    from deeper.models.weights import weights_file

    net, meta = model_from_weights(weights_file(weights), model)
    if (method := quantized_method(meta)) is not None:  # a `deeper quantize` file: CPU, its own precision
        if dtype != "float32":
            raise ConfigError(
                f"{weights} holds a {method} model: it computes in its own precision (no --dtype)"
            )
        if resolve_device(device).type != "cpu":
            from deeper.runtime import notice

            notice(f"{weights} holds a {method} model: it runs on the CPU")
        return net.eval(), meta
    net = net.to(device=resolve_device(device), dtype=parse_dtype(dtype)).eval()
    return net, meta


TTA = ("none", "flip", "shift")
#: the one-pixel moves of ``tta="shift"`` (rows, columns)
SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def shift_images(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (N, C, H, W) moved ``dy`` rows down and ``dx`` columns right, zeros shifted in."""
    h, w = x.shape[2:]
    m = max(abs(dy), abs(dx))
    padded = torch.nn.functional.pad(x, (m, m, m, m))
    return padded[:, :, m - dy : m - dy + h, m - dx : m - dx + w]


@torch.inference_mode()
def member_probabilities(model: torch.nn.Module, loader: BatchLoader, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities ``(N, K)`` (float64, on the CPU) of ``model`` over ``loader``.

    ``tta="flip"`` averages the probabilities of each image and of its mirror image;
    ``tta="shift"`` those of each image and of its four one-pixel shifts (a shift
    keeps any class, digits included).
    """
    if tta not in TTA:
        raise ConfigError(f"unknown test-time augmentation {tta!r} (choose from {', '.join(TTA)})")
    model.eval()
    out = []
    for x, _ in loader:
        p = torch.softmax(model(x).double(), 1)
        if tta == "flip":
            p = (p + torch.softmax(model(x.flip(3)).double(), 1)) / 2
        elif tta == "shift":
            for dy, dx in SHIFTS:
                p = p + torch.softmax(model(shift_images(x, dy, dx)).double(), 1)
            p = p / (1 + len(SHIFTS))
        out.append(p.cpu())
    return torch.cat(out)


def check_compatible(meta: dict, data: str, weights) -> None:
    spec = get_dataset_spec(data)
    n = meta.get("num_classes")
    if n is not None and int(n) != spec.num_classes:
        raise ConfigError(f"{weights} predicts {n} classes but {data} has {spec.num_classes}")
    c = meta.get("in_chans")
    if c is not None and int(c) != spec.image_shape[0]:
        raise ConfigError(f"{weights} expects {c}-channel images but {data} has {spec.image_shape[0]}")


def evaluate_weights(
    weights: str | os.PathLike,
    data: str,
    *,
    model: str | None = None,
    dtype: str = "float32",
    split: str = "test",
    device: str = "auto",
    batch_size: int = 1000,
    data_dir: str | None = None,
    progress: bool | None = None,
) -> dict:
    """``deeper eval``: accuracy and loss of ``weights`` on ``data``'s ``split`` in ``dtype``; a progress
    bar when ``progress`` (``None``: when stderr is a terminal)."""
    from deeper.runtime import precision_notice

    net, meta = load_for_inference(weights, model, device=device, dtype=dtype)
    check_compatible(meta, data, weights)
    ds = load_dataset(data, split, data_dir=data_dir)
    dev = device_of(net)
    precision_notice(dtype, dev)
    loader = BatchLoader(ds.to(dev), batch_size, dtype=parse_dtype(dtype))
    start = time.perf_counter()
    task = ClassificationTask(num_classes=len(ds.classes))
    metrics = evaluate(net, task, loader, progress=progress, desc="eval")
    seconds = time.perf_counter() - start
    return evaluation_result(meta, model, weights, data, split, dtype, len(ds), metrics, seconds, str(dev))


def device_of(net: nn.Module) -> torch.device:
    """Where ``net`` computes (the CPU for a network without parameters)."""
    for t in net.parameters():
        return t.device
    return torch.device("cpu")


def evaluation_result(
    meta: dict, model, weights, data: str, split: str, dtype: str, images: int, metrics: dict,
    seconds: float, device: str,
) -> dict:  # fmt: skip
    """The object ``deeper eval --json`` prints (the same for both engines)."""
    return {
        "model": meta.get("model", model),
        "weights": str(weights),
        "data": data,
        "split": split,
        "dtype": dtype,
        "images": images,
        "test_accuracy" if split == "test" else f"{split}_accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
        "seconds": seconds,
        "device": device,
    }


def task_of(meta: dict):
    """The task that trained a weights file (recorded in its metadata; classification before tasks existed)."""
    import json

    from deeper.tasks import create_task

    args = meta.get("task_args")
    try:
        task_args = json.loads(args) if isinstance(args, str) else (args or {})
    except ValueError:
        raise ConfigError("unreadable task_args in the weights' metadata") from None
    return create_task(meta.get("task", "classify"), task_args)


def predict_files(
    weights: str | os.PathLike, paths: list[str], *, model: str | None = None, device: str = "auto", **options
) -> tuple[list[dict], object]:
    """``(answers, task)``: one answer per image file, in the terms of the task that trained ``weights``.

    ``weights`` is a ``.safetensors`` file or a run folder; the task is read from its
    metadata.  ``options`` go to the task's ``predict`` (e.g. ``out_dir`` for tasks
    that answer with images).
    """
    from deeper.models.weights import load_weights, weights_file

    path = weights_file(weights)
    _, meta = load_weights(path)
    task = task_of(meta)
    net, meta = task.load_model(path, model)
    net = net.to(resolve_device(device)).eval()
    return task.predict(net, meta, list(paths), device=device_of(net), **options), task


@torch.inference_mode()
def misclassified(
    weights: str | os.PathLike,
    data: str,
    *,
    model: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    data_dir: str | None = None,
    batch_size: int = 1000,
):
    """``(dataset, indices, predictions)`` of the test images the model gets wrong."""
    net, meta = load_for_inference(weights, model, device=device, dtype=dtype)
    check_compatible(meta, data, weights)
    ds = load_dataset(data, "test", data_dir=data_dir)
    dev = device_of(net)
    preds = []
    for x, _ in BatchLoader(ds.to(dev), batch_size, dtype=parse_dtype(dtype)):
        preds.append(net(x).argmax(1).cpu())
    pred = torch.cat(preds)
    wrong = torch.nonzero(pred != ds.labels).flatten()
    return ds, wrong, pred
