"""Pruning: drop the weights (or whole channels) that matter least, and measure what it costs.

Both methods use ``torch.nn.utils.prune`` and are made permanent (the zeros are
written into the weights):

- ``unstructured``: the smallest-magnitude weights over all conv and affine
  layers together (global L1), so layers with many small weights lose more;
- ``structured``: whole output channels of every convolution, those with the
  smallest L2 norm, the same fraction in each layer (the classifier is kept).
  Zero channels can be removed from the network for a real speed-up; zeros
  scattered by unstructured pruning only help sparse kernels.

:func:`sparsity_curve` measures test accuracy at several sparsities, each
optionally followed by a short fine-tuning with the mask held fixed, and draws
the accuracy-vs-sparsity PNG.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.nn.utils.prune as tprune
from torch import nn

from deeper.errors import ConfigError

PRUNE_METHODS = ("unstructured", "structured")


def _weights(model: nn.Module, *, convs_only: bool = False) -> list[tuple[nn.Module, str]]:
    kinds = (nn.Conv2d,) if convs_only else (nn.Conv2d, nn.Linear)
    return [(m, "weight") for m in model.modules() if isinstance(m, kinds)]


def apply_pruning(model: nn.Module, method: str, amount: float) -> nn.Module:
    """Attach pruning masks to ``model`` in place (call :func:`make_permanent` to bake them in)."""
    if method not in PRUNE_METHODS:
        raise ConfigError(f"unknown pruning method {method!r} (choose from {', '.join(PRUNE_METHODS)})")
    if not 0 <= amount < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {amount}")
    if amount == 0:
        return model
    if method == "unstructured":
        params = _weights(model)
        if not params:
            raise ConfigError(f"{type(model).__name__} has no conv or affine layers to prune")
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    else:
        params = _weights(model, convs_only=True)
        if not params:
            raise ConfigError(f"{type(model).__name__} has no convolutions for channel pruning")
        for m, name in params:
            tprune.ln_structured(m, name, amount=amount, n=2, dim=0)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if tprune.is_pruned(m) and hasattr(m, "weight_orig"):
            tprune.remove(m, "weight")
    return model


def prune_model(model: nn.Module, method: str, amount: float) -> nn.Module:
    """A pruned copy of ``model`` (masks baked into the weights)."""
    return make_permanent(apply_pruning(copy.deepcopy(model), method, amount))


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over all conv and affine layers."""
    ws = [m.weight for m, _ in _weights(model)]
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / total if total else 0.0


def zero_channels(model: nn.Module) -> int:
    """Output channels of convolutions whose weights are all zero."""
    return sum(
        int((m.weight.detach().flatten(1).abs().sum(1) == 0).sum())
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    )


def finetune(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, lr: float = 1e-4
) -> None:
    """A few Adam steps on ``batches`` (pruning masks, when attached, keep pruned weights at zero)."""
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def sparsity_curve(
    weights: str | os.PathLike,
    data: str,
    *,
    methods: Iterable[str] = PRUNE_METHODS,
    sparsities: Iterable[float] = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    finetune_steps: int = 0,
    model: str | None = None,
    data_dir: str | None = None,
    plot: str | os.PathLike | None = None,
    seed: int = 0,
    save: str | os.PathLike | None = None,
) -> dict:
    """Test accuracy of ``weights`` pruned to each sparsity with each method (and the PNG, if ``plot``).

    ``save``: write the model pruned with the first method at the highest sparsity (as measured,
    fine-tuning included) there, a weights file every command takes (``deeper eval``, ``predict``,
    ``serve``): the float weights with their zeros, the source's metadata and ``pruned``.
    """
    from itertools import islice

    from deeper.accel.quantize import accuracy
    from deeper.data import BatchLoader, load_dataset
    from deeper.inference import check_compatible
    from deeper.models import model_from_weights
    from deeper.runtime import seed_everything

    if finetune_steps < 0:
        raise ConfigError(f"--finetune-steps must be >= 0, got {finetune_steps}")
    if save is not None and Path(save).suffix != ".safetensors":
        raise ConfigError(f"--save {str(save)!r} must be a .safetensors file")
    sparsities = sorted(set(float(s) for s in sparsities))
    methods = list(methods)
    for m in methods:
        if m not in PRUNE_METHODS:
            raise ConfigError(f"unknown pruning method {m!r} (choose from {', '.join(PRUNE_METHODS)})")
    net, meta = model_from_weights(weights, model)
    net = net.cpu().float().eval()
    check_compatible(meta, data, weights)
    test = load_dataset(data, "test", data_dir=data_dir)
    train = load_dataset(data, "train", data_dir=data_dir) if finetune_steps else None
    rows = []
    kept = None
    for method in methods:
        for s in sparsities:
            seed_everything(seed)
            pruned = apply_pruning(copy.deepcopy(net), method, s)
            if finetune_steps and s > 0:
                loader = BatchLoader(train, 128, shuffle=True, seed=seed)
                finetune(pruned, islice(loader, finetune_steps))
            make_permanent(pruned)
            if save is not None and (method, s) == (methods[0], sparsities[-1]):
                kept = (pruned, method, s)
            rows.append({
                "method": method,
                "target_sparsity": s,
                "weight_sparsity": weight_sparsity(pruned),
                "zero_channels": zero_channels(pruned),
                "test_accuracy": accuracy(pruned, test.images, test.labels),
            })  # fmt: skip
    result = {
        "model": meta.get("model", model),
        "dataset": data,
        "finetune_steps": finetune_steps,
        "dense_accuracy": accuracy(net, test.images, test.labels),
        "rows": rows,
    }
    if plot is not None:
        plot_sparsity_curve(result, plot)
        result["plot"] = str(plot)
    if kept is not None:
        result["saved"] = save_pruned(kept[0], meta, save, method=kept[1], sparsity=kept[2],
                                      finetune_steps=finetune_steps)  # fmt: skip
    return result


def save_pruned(
    model: nn.Module,
    meta: dict,
    path: str | os.PathLike,
    *,
    method: str,
    sparsity: float,
    finetune_steps: int,
) -> dict:
    """Write a pruned model as float weights (zeros included) with ``meta`` and what was pruned."""
    from deeper.models import save_weights

    pruned = {"method": method, "target_sparsity": sparsity, "weight_sparsity": weight_sparsity(model),
              "zero_channels": zero_channels(model), "finetune_steps": finetune_steps}  # fmt: skip
    source = {k: v for k, v in meta.items() if not k.startswith("test_")}  # the dense model's scores
    save_weights(model, path, {**source, "pruned": pruned})
    return {"output": str(path), **pruned}


def plot_sparsity_curve(result: dict, path: str | os.PathLike) -> None:
    from deeper.analysis.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, style in zip(PRUNE_METHODS, ("-o", "-s")):
        pts = [
            (r["target_sparsity"] * 100, r["test_accuracy"] * 100)
            for r in result["rows"]
            if r["method"] == method
        ]
        if pts:
            ax.plot(*zip(*pts), style, label=method)
    ax.axhline(result["dense_accuracy"] * 100, color="gray", ls=":", label="dense")
    ax.set_xlabel("sparsity (% of weights or channels removed)")
    ax.set_ylabel("test accuracy (%)")
    ft = f", {result['finetune_steps']} fine-tuning steps" if result["finetune_steps"] else ", no fine-tuning"
    ax.set_title(f"{result['model']} on {result['dataset']}: pruning{ft}")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
