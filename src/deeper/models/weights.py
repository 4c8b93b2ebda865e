"""Model weights as safetensors files with self-describing metadata.

The metadata (strings only, as safetensors requires) records what is needed to
rebuild the model: its registry name, ``num_classes``, ``in_chans``,
``img_size``, the dataset and its class names.  Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from deeper.errors import CheckpointError, ConfigError
from deeper.fileio import write_bytes_atomic
from deeper.models.registry import create_model


def save_weights(
    model_or_state: nn.Module | dict, path: str | os.PathLike, metadata: dict | None = None
) -> Path:
    """Write the weights (atomically) with ``metadata`` (values JSON-encoded when not strings)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    path = Path(path)
    write_bytes_atomic(path, st_save(tensors, metadata=meta))
    return path


def weights_file(run: str | os.PathLike) -> Path:
    """A run folder's ``model.safetensors``, or the weights file itself."""
    p = Path(run)
    if p.is_dir():
        p = p / "model.safetensors"
        if not p.is_file():
            raise CheckpointError(f"{run}: no model.safetensors in this folder (has the run finished?)")
    elif not p.is_file():
        raise CheckpointError(f"{run}: no such run folder or weights file")
    return p


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)`` of a safetensors file (or of a run folder's ``model.safetensors``: every
    command that takes weights takes a run), with a clear error when it is not one."""
    path = weights_file(path) if Path(path).is_dir() else Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        hint = " (a pickle? convert it with `deeper convert-book-weights`)" if data[:1] == b"\x80" else ""
        raise CheckpointError(f"{path}: not a valid safetensors file{hint}: {e}") from None
    import safetensors

    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    check_finite(tensors, path)
    return tensors, meta


#: what a weights file may claim about its model (a file claiming two billion classes is refused)
META_LIMITS = {"num_classes": (1, 100_000), "in_chans": (1, 64), "img_size": (1, 4096)}


def meta_int(meta: dict[str, str], key: str, source: str | os.PathLike | None = None) -> int | None:
    """An integer of the metadata, within :data:`META_LIMITS` (``source``: the file, named in the error)."""
    if key not in meta:
        return None
    try:
        value = int(meta[key])
    except (ValueError, TypeError):
        raise CheckpointError(
            f"{source or 'weights'}: metadata {key}={meta[key]!r} is not an integer"
        ) from None
    low, high = META_LIMITS.get(key, (-(2**63), 2**63))
    if not low <= value <= high:
        raise CheckpointError(f"{source or 'weights'}: metadata {key}={value} is outside [{low}, {high}]")
    return value


def check_finite(state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinite values, naming the file and the tensor."""
    for key, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{source}: tensor {key} holds {bad} NaN or infinite value(s); refusing it")


def read_model_spec(
    path: str | os.PathLike, name: str | None = None, **overrides
) -> tuple[str, dict, dict[str, torch.Tensor], dict[str, str]]:
    """``(model name, constructor kwargs, state dict, metadata)`` recorded in a weights file.

    ``name`` (if given) must agree with the file's metadata; ``overrides`` replace
    recorded constructor options.  Shared by both engines' loaders.
    """
    state, meta = load_weights(path)
    recorded = meta.get("model")
    if name is None:
        if recorded is None:
            raise ConfigError(f"{path}: no model name in the file's metadata; pass --model")
        name = recorded
    elif recorded is not None and recorded != name:
        raise ConfigError(f"{path} holds weights for model {recorded!r}, not {name!r}")
    kwargs = {
        "num_classes": meta_int(meta, "num_classes", path) or 10,
        "in_chans": meta_int(meta, "in_chans", path) or 1,
    }
    if (img := meta_int(meta, "img_size", path)) is not None:
        kwargs["img_size"] = img
    if "model_kwargs" in meta:  # options that shape the network (e.g. norm), recorded by `deeper train`
        try:
            recorded = json.loads(meta["model_kwargs"])
        except (ValueError, TypeError):
            raise CheckpointError(f"{path}: unreadable model_kwargs in the file's metadata") from None
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{path}: model_kwargs in the file's metadata is not a mapping")
        kwargs.update(recorded)
    kwargs.update(overrides)
    return name, kwargs, state, meta


def model_from_weights(
    path: str | os.PathLike, name: str | None = None, **overrides
) -> tuple[nn.Module, dict[str, str]]:
    """Rebuild a model from a weights file; ``name`` (if given) must agree with the file's metadata."""
    name, kwargs, state, meta = read_model_spec(path, name, **overrides)
    from deeper.accel.quantized import load_quantized, quantized_method

    if quantized_method(meta) is not None:  # written by `deeper quantize`: int8, int4 or 1-bit weights
        return load_quantized(path, name, kwargs, meta), meta
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not fit model {name!r} ({'; '.join(s.strip() for s in first[:3])})"
        ) from None
    return model, meta
