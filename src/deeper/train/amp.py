"""Mixed precision: one ``--amp`` switch drives autocast and, for float16, the grad scaler.

``bf16`` has float32's exponent range, so it needs no loss scaling; ``fp16``
does: small gradients underflow, so the loss is multiplied by a running scale
before ``backward`` and the gradients divided by it before the optimizer step
(steps whose gradients overflow are skipped and the scale lowered).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from deeper.errors import ConfigError
from deeper.runtime import notice

AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = ("off", "auto", *AMP_DTYPES)


@dataclass(frozen=True)
class AmpPolicy:
    """How forward passes run: autocast to ``dtype`` on ``device_type`` (``None``: full float32)."""

    dtype: torch.dtype | None
    device_type: str

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def name(self) -> str:
        """The ``--amp`` value this policy is: off, bf16 or fp16."""
        return next((k for k, v in AMP_DTYPES.items() if v == self.dtype), "off")

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self):
        """The context to run forward passes (and the loss) in."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.needs_scaler else None


def resolve_auto(name: str | None, device: torch.device | str, *, task_allows: bool = True) -> str | None:
    """``--amp auto`` as this machine settles it (any other value unchanged): on the CPU, the precision
    that wins on its family (:func:`deeper.hardware.cpu_choice`) where the task was measured in it
    (``task_allows``); float32 on GPUs and for other tasks."""
    if (name or "").lower() != "auto":
        return name
    if torch.device(device).type != "cpu" or not task_allows:
        return "off"
    from deeper.hardware import cpu_choice, cpu_info

    return cpu_choice(cpu_info()).amp


def amp_policy(name: str | None, device: torch.device | str) -> AmpPolicy:
    """The policy for ``--amp name`` on ``device`` (``auto``: :func:`resolve_auto` first).

    Unknown names are a :class:`ConfigError`.  A precision the device cannot run
    in falls back to float32 with a one-line notice (never an error: the same
    command works on a laptop and on a GPU box).
    """
    device = torch.device(device)
    key = (resolve_auto(name, device) or "off").lower()
    if key in ("off", "none", "fp32", "float32"):
        return AmpPolicy(None, device.type)
    if key not in AMP_DTYPES:
        raise ConfigError(f"unknown --amp {name!r} (choose from {', '.join(AMP_CHOICES)})")
    dtype = AMP_DTYPES[key]
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        notice(f"this GPU has no bfloat16 support; --amp {key} ignored, training in float32")
        return AmpPolicy(None, device.type)
    if device.type == "cpu" and dtype == torch.float16:
        notice(
            "--amp fp16 on the CPU runs float16 kernels that are many times slower than float32; "
            "training in float32 (use --amp bf16 on CPUs)"
        )
        return AmpPolicy(None, device.type)
    if device.type == "cpu" and not torch.amp.autocast_mode.is_autocast_available("cpu"):
        notice(f"autocast is not available on this CPU build; --amp {key} ignored, training in float32")
        return AmpPolicy(None, device.type)
    return AmpPolicy(dtype, device.type)
