"""The model registry: ``register_model``, ``create_model``, ``list_models``.

A model family registers small factory functions by name; every factory takes
keyword-only ``num_classes`` and ``in_chans`` (and ``img_size`` where the
architecture depends on it) plus its own options.  Registering a model is enough
for the test suite to check it.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from deeper.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    description: str
    default_input: tuple[int, int, int]  # (C, H, W) the model was designed for
    family: str = "classify"  # the kind of task it serves (a task's ``model_family``): classify, detect, ...


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, default_input: tuple[int, int, int] = (1, 28, 28), family: str = "classify"):
    """Decorator registering a factory under ``name`` (duplicates raise ``ValueError``).

    ``family`` says which tasks the model fits (``deeper models --task NAME`` filters by it).
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        params = inspect.signature(fn).parameters
        for required in ("num_classes", "in_chans"):
            if required not in params:
                raise TypeError(f"model factory {fn.__qualname__} must accept {required!r}")
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        _MODELS[name] = ModelEntry(name, fn, doc, default_input, family)
        return fn

    return deco


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching ``pattern`` (and serving task ``family``, when given)."""
    return sorted(
        n
        for n, e in _MODELS.items()
        if fnmatch.fnmatch(n, pattern) and (family is None or e.family == family)
    )


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _MODELS[name]
    except KeyError:
        raise unknown_name("model", name, _MODELS) from None


#: no model is built with more parameters than this (4 GB of float32 weights)
MAX_PARAMETERS = 10**9


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def option_range(name: str, default) -> tuple[type, float, float, bool] | None:
    """The documented range of a numeric model option, from its default: ``(kind, low, high, high_open)``.

    Integers defaulting to 1 or more (widths, depths, sizes, kernels) take [1, 65536], those defaulting
    to 0 take [0, 65536]; rates (a float default in [0, 1) and ``drop`` or ``rate`` in the name) take
    [0, 1); other floats (multipliers, scales) take [0, 10000].  Any option of a model, whatever it is,
    must also leave the model under :data:`MAX_PARAMETERS` parameters.
    """
    if not _is_number(default):
        return None
    if isinstance(default, int):
        return (int, 1 if default >= 1 else 0, 65536, False)
    if 0 <= default < 1 and ("drop" in name or "rate" in name):
        return (float, 0.0, 1.0, True)
    return (float, 0.0, 10000.0, False)


def _check_option(model: str, key: str, value, default) -> None:
    if isinstance(default, bool) and not isinstance(value, bool):  # residual=maybe would be a truthy string
        raise ConfigError(f"model {model!r}: option {key} must be true or false, got {value!r}")
    if _is_number(default) and not _is_number(value):  # e.g. --model-arg width=abc: a typo, not a crash
        raise ConfigError(f"model {model!r}: option {key} must be a number, got {value!r}")
    if isinstance(value, tuple | list):
        for v in value:
            if _is_number(v) and not (math.isfinite(v) and 0 <= v <= 65536):
                raise ConfigError(
                    f"model {model!r}: option {key} holds {v!r}; its values must be in [0, 65536]"
                )
        return
    rng = option_range(key, default)
    if rng is None or not _is_number(value):
        if _is_number(value) and not math.isfinite(value):
            raise ConfigError(f"model {model!r}: option {key} must be finite, got {value!r}")
        return
    kind, low, high, high_open = rng
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if kind is int and isinstance(value, float):
        ok = False
    if not ok:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(
            f"model {model!r}: option {key} must be {what} in [{low:g}, {high:g}{')' if high_open else ']'}, got {value!r}"
        )


def create_model(name: str, *, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered model.  Unknown names and options, options out of their documented range
    (:func:`option_range`) and models of more than :data:`MAX_PARAMETERS` parameters are :class:`ConfigError`."""
    entry = get_model_entry(name)
    accepted = inspect.signature(entry.factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in kwargs if k not in accepted and not takes_any]
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s) {', '.join(unknown)}")
    for key, value in kwargs.items():
        _check_option(name, key, value, accepted[key].default if key in accepted else None)
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
            raise ConfigError(f"model {name!r}: {key} must be an integer in [1, 100000], got {value!r}")
    try:
        _check_size(name, entry, num_classes, in_chans, kwargs)
        return entry.factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except ValueError as e:  # a model's own check of its options (e.g. an input too small for it)
        raise ConfigError(f"model {name!r}: {e}") from None


def _check_size(name: str, entry: ModelEntry, num_classes: int, in_chans: int, kwargs: dict) -> None:
    """Count the parameters of the model these options make, without allocating them (the meta device)."""
    import torch

    try:
        with torch.device("meta"):
            n = count_parameters(entry.factory(num_classes=num_classes, in_chans=in_chans, **kwargs))
    except (RuntimeError, NotImplementedError, TypeError):  # a factory that computes with real tensors
        return
    if n > MAX_PARAMETERS:
        raise ConfigError(
            f"model {name!r} with these options has {n:,} parameters; the limit is {MAX_PARAMETERS:,}"
        )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
