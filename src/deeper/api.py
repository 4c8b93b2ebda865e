"""The Python API: the handful of functions a notebook needs, on top of the engine and the commands.

>>> import deeper
>>> model = deeper.train(model="lenet5", data="digits", epochs=1, out="runs/api-doc")  # doctest: +SKIP
>>> model.history[-1]["val_accuracy"]                    # one row per epoch, as metrics.csv  # doctest: +SKIP
>>> model.predict(["my_digit.png"])[0]["label"]          # as `deeper predict` answers  # doctest: +SKIP
>>> model = deeper.load("runs/api-doc")                  # a run folder or a .safetensors file  # doctest: +SKIP

:func:`train` takes the options of ``deeper train`` (flat names, or a :class:`~deeper.train.TrainConfig`)
and returns a :class:`Model`: the trained network, its task and metadata, its history and result.
:func:`load` makes the same from a run or a weights file; :func:`predict`, :func:`summary` and
:mod:`deeper.datasets` complete it.  Everything here calls what the commands call: ``model.predict`` is
``deeper predict``, ``model.evaluate`` is ``deeper eval``, ``model.misclassified`` is
``deeper misclassified`` and :func:`summary` is ``deeper summary``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeper.errors import ConfigError

__all__ = ["Model", "load", "predict", "summary", "train"]


class Model:
    """A trained model: ``net`` (a torch module in evaluation mode), its ``task`` and weights ``meta``;
    from a run folder also ``history`` (the rows of ``metrics.csv``), ``result`` (``result.json``) and
    ``run_dir``.  Calling it calls the network."""

    def __init__(self, net: nn.Module, meta: dict, task, path: Path, run_dir: Path | None = None):
        self.net, self.meta, self.task, self.path, self.run_dir = net.eval(), meta, task, Path(path), run_dir
        self.history: list[dict] = read_history(run_dir / "metrics.csv") if run_dir else []
        result = run_dir / "result.json" if run_dir else None
        self.result: dict | None = json.loads(result.read_text()) if result and result.is_file() else None

    # ---- what it is
    @property
    def name(self) -> str:
        return str(self.meta.get("model", "?"))

    @property
    def dataset(self) -> str | None:
        return self.meta.get("dataset")

    @property
    def classes(self) -> list[str]:
        from deeper.tasks.classify import class_names

        return class_names(self.meta)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        size = int(self.meta.get("img_size", 28))
        return int(self.meta.get("in_chans", 1)), size, size

    def __repr__(self) -> str:
        acc = f", test {self.result.get('primary_metric', 'accuracy')} " if self.result else ""
        if acc:
            acc += f"{self.result.get('test_' + self.result.get('primary_metric', 'accuracy'))}"
        return f"<deeper.Model {self.name} ({self.task.name}) on {self.dataset}{acc}: {self.path}>"

    def __call__(self, x):
        return self.net(x)

    def to(self, device: str | torch.device) -> Model:
        from deeper.runtime import resolve_device

        self.net.to(resolve_device(str(device)))
        return self

    # ---- using it
    def predict(self, images, **options) -> list[dict]:
        """One answer per image, in the terms of the model's task (as ``deeper predict --json`` prints them).

        ``images``: file paths; PIL images; or arrays/tensors, one image ``(H, W)`` / ``(C, H, W)`` or a
        batch ``(N, C, H, W)`` (uint8 in 0..255, or floats in [0, 1]).  A classifier takes arrays of its
        input size as they are (a dataset's images: no preprocessing); everything else is prepared as
        ``deeper predict`` prepares an image file (digits cropped, scaled and centred as MNIST was).
        """
        if _is_array(images) and self.task.model_family == "classify":
            x = _as_batch(images, self.input_shape[0])
            if tuple(x.shape[1:]) == self.input_shape:
                return self._classify_tensor(x)
        with tempfile.TemporaryDirectory(prefix="deeper-predict-") as tmp:
            paths = _as_files(images, Path(tmp), self.input_shape[0])
            answers = self.task.predict(self.net, self.meta, paths, device=self.device, **options)
        for a in answers:  # temporary files are no answer
            if isinstance(a.get("image"), str) and a["image"].startswith(tmp):
                a["image"] = int(Path(a["image"]).stem)
        return answers

    @torch.inference_mode()
    def _classify_tensor(self, x: torch.Tensor) -> list[dict]:
        names = self.classes
        out = []
        for start in range(0, len(x), 1000):
            probs = torch.softmax(self.net(x[start : start + 1000].to(self.device)).float(), 1).cpu()
            for i, row in enumerate(probs, start):
                k = int(row.argmax())
                out.append({"image": i, "label": k, "name": names[k] if k < len(names) else str(k),
                            "probabilities": [float(v) for v in row]})  # fmt: skip
        return out

    def evaluate(self, data: str | None = None, *, dtype: str = "float32", split: str = "test",
                 data_dir: str | None = None, batch_size: int = 1000) -> dict:  # fmt: skip
        """``deeper eval``: accuracy and loss on a dataset's split (default: the dataset it was trained on),
        in ``dtype`` (``float16`` is the chapter's check)."""
        from deeper.inference import evaluate_weights

        return evaluate_weights(
            self.path, self._data(data), dtype=dtype, split=split, device=str(self.device),
            batch_size=batch_size, data_dir=data_dir,
        )  # fmt: skip

    def misclassified(self, data: str | None = None, *, data_dir: str | None = None):
        """``(dataset, indices, predictions)`` of the test images the model gets wrong."""
        from deeper.inference import misclassified

        return misclassified(self.path, self._data(data), device=str(self.device), data_dir=data_dir)

    def gallery(self, path: str | os.PathLike, data: str | None = None, *, max_images: int = 100,
                columns: int = 10, data_dir: str | None = None) -> Path:  # fmt: skip
        """``deeper misclassified``: the misclassified test images drawn into the PNG ``path``."""
        from deeper.analysis.gallery import misclassified_gallery

        ds, wrong, pred = self.misclassified(data, data_dir=data_dir)
        shown = wrong[:max_images].cpu()
        title = f"{len(wrong)} of {len(ds):,} {ds.name} test images misclassified"
        classes = ds.classes if ds.name != "mnist" else None
        misclassified_gallery(ds.images[shown], ds.labels[shown], pred[shown], path, classes=classes,
                              title=title, columns=columns)  # fmt: skip
        return Path(path)

    def summary(self, input_shape: tuple[int, int, int] | None = None):
        """``deeper summary``: the layer table at the model's input size."""
        return summary(self, input_shape)

    def _data(self, data: str | None) -> str:
        data = data or self.dataset
        if not data:
            raise ConfigError(f"{self.path}: the weights do not record their dataset; pass data=")
        return data


def read_history(path: Path) -> list[dict]:
    """The rows of a ``metrics.csv`` with numbers as numbers (empty cells as None)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    if text in ("", None):
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _is_array(images) -> bool:
    return isinstance(images, np.ndarray | torch.Tensor)


def _as_batch(images, channels: int = 1) -> torch.Tensor:
    """``(N, C, H, W)`` floats in [0, 1]; a 3-D array is one image when its first axis is ``channels``
    (one (C, H, W) image), else N grey images."""
    x = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None] if x.shape[0] == channels else x[:, None]
    if x.ndim != 4:
        raise ConfigError(f"images must be (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x


def _as_files(images, folder: Path, channels: int = 1) -> list[str]:
    """Image files for ``images`` (paths as they are; arrays and PIL images written as PNG into ``folder``)."""
    from PIL import Image

    if isinstance(images, str | os.PathLike | Image.Image):
        images = [images]
    if _is_array(images):
        images = list(_as_batch(images, channels))
    paths = []
    for i, img in enumerate(images):
        if isinstance(img, str | os.PathLike):
            paths.append(str(img))
            continue
        if _is_array(img):
            a = _as_batch(img, channels)[0].cpu().numpy()
            a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
            img = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
        if not isinstance(img, Image.Image):
            raise ConfigError(
                f"image {i}: expected a path, a PIL image or an array, got {type(img).__name__}"
            )
        p = folder / f"{i}.png"
        img.save(p)
        paths.append(str(p))
    return paths


def load(run_or_file: str | os.PathLike, *, device: str = "cpu") -> Model:
    """The model of a run folder or a ``.safetensors`` file written by deeper (any task)."""
    from deeper.inference import task_of
    from deeper.models.weights import load_weights, weights_file
    from deeper.runtime import resolve_device

    path = weights_file(run_or_file)
    _, meta = load_weights(path)
    task = task_of(meta)
    net, meta = task.load_model(path)
    net = net.to(resolve_device(device))
    run_dir = (
        path.parent
        if (path.parent / "config.yaml").is_file() or (path.parent / "metrics.csv").is_file()
        else None
    )
    return Model(net, meta, task, path, run_dir)


def train(config=None, /, **options) -> Model:
    """Train as ``deeper train`` does (the same options, flat names, or a :class:`~deeper.train.TrainConfig`)
    and return the trained :class:`Model`, its ``history`` and ``result`` included."""
    from deeper.train.entry import fit

    result = fit(config, **options)
    weights = result.get("weights")
    if not weights:
        raise ConfigError("this run wrote no single model (an ensemble?): load a member with deeper.load")
    return load(weights, device=result.get("device") or "cpu")


def predict(weights, images, *, device: str = "cpu", **options) -> list[dict]:
    """``deeper predict``: answers for ``images`` (see :meth:`Model.predict`) from a run, weights file or Model."""
    model = weights if isinstance(weights, Model) else load(weights, device=device)
    return model.predict(images, **options)


def summary(model, input_shape: tuple[int, int, int] | str | None = None, **model_kwargs):
    """``deeper summary``: the layer table of a :class:`Model`, a torch module or a registered model name.

    ``input_shape`` is ``(C, H, W)`` or ``"1x28x28"`` (default: the model's own input).
    """
    from deeper.analysis.summary import parse_shape, summarize, summarize_registered

    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    if isinstance(model, str):
        return summarize_registered(model, shape, **model_kwargs)
    if isinstance(model, Model):
        return summarize(model.net, shape or model.input_shape, name=model.name)
    if isinstance(model, nn.Module):
        if shape is None:
            raise ConfigError("summary of a torch module needs input_shape, e.g. (1, 28, 28)")
        return summarize(model, shape)
    raise ConfigError(f"summary takes a Model, a torch module or a model name, not {type(model).__name__}")
