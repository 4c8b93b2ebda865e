"""Where the forward time goes, per layer type (the book's figure 8-14: AlexNet, conv about 89% on CPU).

``torch.profiler`` records every operator of a few forward passes.  Each
operator's *self* time is attributed to the layer type of the innermost module
it ran in (a forward hook marks each leaf module with a ``record_function``
range); operators outside any leaf module (a functional ``relu`` in a
``forward``) are classified by their own name.  Works on any model; on a GPU the
device (kernel) time is used instead of the CPU time.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.autograd import DeviceType

CATEGORIES = ("conv", "pool", "fc", "norm", "relu", "other")
_MARK = "deeper_layer::"

_MODULE_KINDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("conv", (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)),
    ("pool", (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
              nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)),
    ("fc", (nn.Linear, nn.Bilinear)),
    ("norm", (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
              nn.LocalResponseNorm, nn.InstanceNorm2d)),
    ("relu", (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
              nn.Hardtanh, nn.Hardswish, nn.Mish, nn.Softplus)),
)  # fmt: skip
_OP_WORDS = (
    ("conv", ("conv",)),
    ("pool", ("pool",)),
    ("fc", ("addmm", "linear", "matmul", "::mm", "bmm", "baddbmm")),
    ("norm", ("norm",)),
    ("relu", ("relu", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "elu", "hardswish", "mish")),
)


def module_category(module: nn.Module) -> str | None:
    for cat, kinds in _MODULE_KINDS:
        if isinstance(module, kinds):
            return cat
    return None


def op_category(name: str) -> str:
    low = name.lower()
    for cat, words in _OP_WORDS:
        if any(w in low for w in words):
            return cat
    return "other"


def _attach_marks(model: nn.Module) -> list:
    handles = []
    for m in model.modules():
        cat = module_category(m)
        if cat is None:
            continue

        def pre(mod, args, _cat=cat):
            mod._deeper_rf = torch.autograd.profiler.record_function(_MARK + _cat)
            mod._deeper_rf.__enter__()

        def post(mod, args, out):
            rf = mod.__dict__.pop("_deeper_rf", None)
            if rf is not None:
                rf.__exit__(None, None, None)

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return handles


@torch.inference_mode()
def profile_forward(model: nn.Module, x: torch.Tensor, *, repeats: int = 5, warmup: int = 2) -> dict:
    """Seconds and share of forward time per layer type, over ``repeats`` passes of ``x``."""
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        model(x)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    handles = _attach_marks(model)
    try:
        with profile(activities=activities) as prof:
            for _ in range(repeats):
                model(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for ev in prof.events():
        if ev.name.startswith(_MARK):
            continue
        if cuda and ev.device_type != DeviceType.CPU:
            continue  # a kernel: its time is counted through the operator that launched it
        us = ev.self_device_time_total if cuda else ev.self_cpu_time_total
        if not us:
            continue
        cat, parent = None, ev.cpu_parent
        while parent is not None:
            if parent.name.startswith(_MARK):
                cat = parent.name[len(_MARK) :]
                break
            parent = parent.cpu_parent
        totals[cat or op_category(ev.name)] += us / 1e6
    total = sum(totals.values())
    return {
        "device": str(x.device),
        "time_kind": "device (kernel) time" if cuda else "CPU time",
        "batch_size": x.shape[0],
        "input_shape": list(x.shape[1:]),
        "repeats": repeats,
        "seconds_per_forward": total / repeats,
        "seconds": {k: v / repeats for k, v in totals.items()},
        "share": {k: (v / total if total else 0.0) for k, v in totals.items()},
    }


def plot_profile(result: dict, path: str | os.PathLike, title: str = "") -> None:
    """Bar chart of the shares (like figure 8-14)."""
    from deeper.analysis.plots import plt, save_figure

    cats = [c for c in CATEGORIES if result["share"][c] > 0] or list(CATEGORIES)
    shares = [result["share"][c] * 100 for c in cats]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bars = ax.barh(cats[::-1], shares[::-1], color="tab:blue")
    for b, s in zip(bars, shares[::-1]):
        ax.text(b.get_width() + 0.5, b.get_y() + b.get_height() / 2, f"{s:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, max(shares) * 1.15 + 1)
    ax.set_xlabel(f"share of forward {result['time_kind']} (%)")
    ax.set_title(title or f"forward time per layer type on {result['device']}")
    save_figure(fig, path)
