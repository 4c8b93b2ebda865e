"""The model registry: ``register_model``, ``create_model``, ``list_models``.

A model family registers small factory functions by name; every factory takes
keyword-only ``num_classes`` and ``in_chans`` (and ``img_size`` where the
architecture depends on it) plus its own options.  Registering a model is enough
for the test suite to check it.
"""

from __future__ import annotations

import fnmatch
import inspect
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


def create_model(name: str, *, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered model.  Unknown names and options are :class:`ConfigError`."""
    entry = get_model_entry(name)
    accepted = inspect.signature(entry.factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in kwargs if k not in accepted and not takes_any]
    if unknown:
        raise ConfigError(f"model {name!r} does not take option(s) {', '.join(unknown)}")

    def is_number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    for key, value in kwargs.items():  # e.g. --model-arg width=abc: a user's typo, not a crash
        if key in accepted and is_number(accepted[key].default) and not is_number(value):
            raise ConfigError(f"model {name!r}: option {key} must be a number, got {value!r}")
    if num_classes < 1 or in_chans < 1:
        raise ConfigError(f"num_classes and in_chans must be positive, got {num_classes} and {in_chans}")
    try:
        return entry.factory(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except ValueError as e:  # a model's own check of its options (e.g. an input too small for it)
        raise ConfigError(f"model {name!r}: {e}") from None


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
