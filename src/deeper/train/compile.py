"""``torch.compile`` with a clean fallback to eager execution.

Compiling needs a supported Python, a C++ compiler for the CPU backend and
Triton for CUDA; where one is missing the model runs eagerly and the user gets
one line saying why.  Errors that only show up while compiling a graph make
Dynamo fall back to eager for that graph instead of stopping the run.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from deeper.runtime import notice


def compile_unavailable_reason(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or ``None`` when it can."""
    device = torch.device(device)
    try:
        import torch._dynamo as dynamo
    except ImportError as e:  # pragma: no cover - a stripped torch build
        return f"torch._dynamo is unavailable ({e})"
    if not dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python version"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "no C++ compiler found (the CPU backend of torch.compile needs one)"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "Triton is not installed (the GPU backend of torch.compile needs it)"
    return None


def compile_model(model: nn.Module, device: torch.device | str, *, mode: str | None = None) -> nn.Module:
    """Compile ``model`` in place (its ``state_dict`` keys stay the same) or leave it eager.

    Returns the same module, so checkpoints, callbacks and weight files never see
    a wrapper.
    """
    reason = compile_unavailable_reason(device)
    if reason is not None:
        notice(f"--compile ignored: {reason}; running eagerly")
        return model
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a graph that fails to compile runs eagerly
    model.compile(mode=mode)
    return model
