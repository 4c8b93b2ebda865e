"""Using trained weights: evaluate on a dataset, predict images, list the mistakes."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from deeper.data import BatchLoader, get_dataset_spec, load_dataset
from deeper.data.images import prepare_image
from deeper.errors import ConfigError
from deeper.models import model_from_weights
from deeper.runtime import resolve_device
from deeper.train.loop import evaluate
from deeper.train.tasks import ClassificationTask

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
    """The model of ``weights`` in eval mode, cast to ``dtype`` on ``device``."""
    net, meta = model_from_weights(weights, model)
    net = net.to(device=resolve_device(device), dtype=parse_dtype(dtype)).eval()
    return net, meta


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
) -> dict:
    net, meta = load_for_inference(weights, model, device=device, dtype=dtype)
    check_compatible(meta, data, weights)
    ds = load_dataset(data, split, data_dir=data_dir)
    dev = next(net.parameters()).device
    loader = BatchLoader(ds.to(dev), batch_size, dtype=parse_dtype(dtype))
    start = time.perf_counter()
    metrics = evaluate(net, ClassificationTask(), loader)
    seconds = time.perf_counter() - start
    return evaluation_result(meta, model, weights, data, split, dtype, len(ds), metrics, seconds, str(dev))


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


@dataclass
class Prediction:
    path: str
    label: int
    name: str
    probabilities: list[float]


@torch.inference_mode()
def predict_files(
    weights: str | os.PathLike, paths: list[str], *, model: str | None = None, device: str = "auto"
) -> list[Prediction]:
    net, meta = load_for_inference(weights, model, device=device)
    in_chans = int(meta.get("in_chans", 1))
    size = int(meta.get("img_size", 28))
    classes = (
        json.loads(meta["classes"])
        if "classes" in meta
        else [str(i) for i in range(int(meta.get("num_classes", 10)))]
    )
    batch = torch.stack([torch.from_numpy(prepare_image(p, (in_chans, size, size))) for p in paths])
    dev = next(net.parameters()).device
    probs = torch.softmax(net(batch.to(dev)).float(), dim=1).cpu()
    out = []
    for p, row in zip(paths, probs):
        k = int(row.argmax())
        out.append(Prediction(str(p), k, classes[k] if k < len(classes) else str(k), [float(v) for v in row]))
    return out


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
    dev = next(net.parameters()).device
    preds = []
    for x, _ in BatchLoader(ds.to(dev), batch_size, dtype=parse_dtype(dtype)):
        preds.append(net(x).argmax(1).cpu())
    pred = torch.cat(preds)
    wrong = torch.nonzero(pred != ds.labels).flatten()
    return ds, wrong, pred
