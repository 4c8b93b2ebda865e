"""The models ``deeper serve`` answers with: any task's weights, each answering through its task's ``predict``.

A drawing arrives as a PNG; it is written to a private temporary folder and handed to
``task.predict`` exactly as ``deeper predict`` hands an image file, so the page shows the
same answer as ``deeper predict`` on the same PNG.  Whatever the task writes beside it
(a mask overlay, the image with its boxes) comes back as images in the answer; what a
classifier actually receives (the MNIST-style 28x28 input) is added for the page to draw.
"""

from __future__ import annotations

import base64
import math
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from deeper.errors import ConfigError

#: the largest drawing (or uploaded image) accepted, in bytes
MAX_IMAGE_BYTES = 8 * 1024 * 1024


class ServedModel:
    """Trained weights (a ``.safetensors`` file or a run folder) loaded once, ready to answer."""

    def __init__(self, weights: str | os.PathLike, *, device: str = "auto", ident: int = 0):
        from deeper.inference import task_of
        from deeper.models.weights import load_weights, weights_file
        from deeper.runtime import resolve_device

        self.path = weights_file(weights)
        _, meta = load_weights(self.path)
        self.task = task_of(meta)
        net, meta = self.task.load_model(self.path)
        self.net = net.to(resolve_device(device)).eval()
        try:
            self.device = next(self.net.parameters()).device
        except StopIteration:
            self.device = resolve_device(device)
        self.meta = meta
        self.ident = ident
        self.source = str(weights)
        self.name = self.path.parent.name if self.path.name == "model.safetensors" else self.path.stem
        self._lock = threading.Lock()  # one forward pass at a time per model: no oversubscribed CPU

    # ---- what the page shows about the model
    def input_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` of a classifier's input (what :func:`~deeper.data.images.prepare_image` makes)."""
        if self.task.model_family != "classify":
            return None
        size = int(self.meta.get("img_size", 28))
        return int(self.meta.get("in_chans", 1)), size, size

    def info(self) -> dict:
        return {
            "id": self.ident,
            "name": self.name,
            "source": self.source,
            "task": self.task.name,
            "description": self.task.description,
            "model": self.meta.get("model"),
            "dataset": self.meta.get("dataset"),
            "classes": class_names(self.meta),
            "input": list(self.input_shape() or []) or None,
        }

    # ---- answering
    def answer(self, image: Path, work_dir: Path) -> dict:
        """This model's answer for the image file ``image``; files the task writes go to ``work_dir``."""
        out_dir = work_dir / f"model-{self.ident}"
        with self._lock:
            answer = self.task.predict(
                self.net, self.meta, [str(image)], device=self.device, out_dir=out_dir
            )[0]
        text = self.task.describe_prediction(answer)
        shown = {k: v for k, v in answer.items() if not _is_path_into(v, work_dir)}
        shown.pop("image", None)
        result = {"model": self.ident, "name": self.name, "task": self.task.name, "answer": plain(shown)}
        result["text"] = re.sub(
            re.escape(str(work_dir)) + r"/(\S+/)*", "", text.replace(str(image), "drawing")
        )
        shape = self.input_shape()
        if shape is not None:
            from deeper.data.images import prepare_image

            x = prepare_image(image, shape)  # what ClassificationTask.predict feeds the model
            result["input"] = np.round(x * 255).astype(int).tolist()  # (C, H, W) in 0..255
        written = sorted(out_dir.rglob("*.png")) if out_dir.is_dir() else []
        result["images"] = [{"name": p.name, "src": data_url(p)} for p in written]
        return result


class ModelSet:
    """The models being served, in the order they were given; more can be added while serving."""

    def __init__(self, device: str = "auto"):
        self.device = device
        self._models: list[ServedModel] = []
        self._lock = threading.Lock()

    def add(self, weights: str | os.PathLike) -> ServedModel:
        with self._lock:
            for m in self._models:  # the same weights twice: answer once
                if Path(m.path).resolve() == _weights_path(weights):
                    return m
            model = ServedModel(weights, device=self.device, ident=len(self._models))
            self._models.append(model)
            return model

    def __iter__(self):
        with self._lock:
            return iter(list(self._models))

    def __len__(self) -> int:
        return len(self._models)

    def answer(self, png: bytes) -> list[dict]:
        """Every model's answer for one PNG (or JPEG) image, given as bytes."""
        if not png:
            raise ConfigError("no image in the request")
        if len(png) > MAX_IMAGE_BYTES:
            raise ConfigError(f"the image is larger than {MAX_IMAGE_BYTES // 2**20} MiB")
        with tempfile.TemporaryDirectory(prefix="deeper-serve-") as tmp:
            work = Path(tmp)
            image = work / "drawing.png"
            image.write_bytes(png)
            return [m.answer(image, work) for m in self]


def _weights_path(weights) -> Path:
    from deeper.models.weights import weights_file

    return weights_file(weights).resolve()


def class_names(meta: dict) -> list[str]:
    from deeper.tasks.classify import class_names as names

    return names(meta)


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _is_path_into(value, folder: Path) -> bool:
    return isinstance(value, str) and value.startswith(str(folder))


def plain(value):
    """``value`` as JSON can hold it: NumPy and torch numbers as Python numbers, NaN/Inf as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars, torch tensors
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
