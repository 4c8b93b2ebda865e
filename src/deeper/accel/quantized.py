"""Quantized models as files: int8 (FX graph mode), 4-bit weight-only and 1-bit storage, and the loader
that makes a file written by ``deeper quantize`` a model every command uses (:func:`load_quantized`).

Kept apart from :mod:`deeper.accel.quantize` (the measuring command) so that loading weights
(:func:`deeper.models.weights.model_from_weights`) can read a quantized file without importing
the command's training and evaluation machinery.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from deeper.errors import CheckpointError, ConfigError

METHODS = ("int8", "qat", "int4", "binary")


@contextlib.contextmanager
def _quiet_ao():
    """``torch.ao.quantization`` is deprecated in favour of torchao (no CPU int8 conv kernels there yet)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quant_min and quant_max.*")
        warnings.filterwarnings("ignore", message=".*reduce_range.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.ao")
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.ao")
        yield


# ------------------------------------------------------------------ int8 (FX graph mode)


def _require_traceable(model: nn.Module, example: torch.Tensor):
    from torch.fx import symbolic_trace

    try:
        symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means: this model cannot be int8-converted
        raise ConfigError(
            f"{type(model).__name__} cannot be traced for int8 quantization ({type(e).__name__}: {e})"
        ) from None


def _float_preprocessing(mapping):
    """``(qconfig mapping, prepare config)`` keeping input-preprocessing layers whole and in float.

    Such a layer (e.g. :class:`~deeper.models.preprocess.WidthNormalize`) computes
    integer positions and a sampling grid from the raw image: traced op by op, its
    integer tensors would get observers, and quantizing the image it resamples would
    only lose precision before the first convolution.
    """
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig

    from deeper.models.preprocess import PREPROCESSING

    for cls in PREPROCESSING:
        mapping = mapping.set_object_type(cls, None)
    return mapping, PrepareCustomConfig().set_non_traceable_module_classes(list(PREPROCESSING))


def int8_static(model: nn.Module, calibration: Iterable[torch.Tensor], *, backend: str = "x86") -> nn.Module:
    """Post-training static int8: observe activations on ``calibration`` batches, then convert.

    ``model`` is not modified.  Returns a CPU ``GraphModule`` in eval mode.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model = copy.deepcopy(model).cpu().float().eval()
    batches = [b.cpu().float().contiguous() for b in calibration]
    if not batches:
        raise ConfigError("int8 calibration needs at least one batch")
    _require_traceable(model, batches[0])
    torch.backends.quantized.engine = backend
    with _quiet_ao():
        mapping, custom = _float_preprocessing(get_default_qconfig_mapping(backend))
        prepared = prepare_fx(model, mapping, example_inputs=(batches[0],), prepare_custom_config=custom)
        with torch.inference_mode():
            for b in batches:
                prepared(b)
        return convert_fx(prepared).eval()


def _flatten_state(prefix: str, value, tensors: dict, meta: dict) -> None:
    if isinstance(value, torch.Tensor) and value.is_quantized:
        tensors[f"{prefix}.int"] = value.int_repr().contiguous()
        if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            tensors[f"{prefix}.scale"] = value.q_per_channel_scales().float()
            tensors[f"{prefix}.zero_point"] = value.q_per_channel_zero_points()
            meta[f"{prefix}.axis"] = str(value.q_per_channel_axis())
        else:
            tensors[f"{prefix}.scale"] = torch.tensor([value.q_scale()], dtype=torch.float32)
            tensors[f"{prefix}.zero_point"] = torch.tensor([value.q_zero_point()])
        meta[f"{prefix}.qdtype"] = str(value.dtype).removeprefix("torch.")
    elif isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().contiguous()
    elif isinstance(value, tuple | list):
        for i, v in enumerate(value):
            _flatten_state(f"{prefix}.{i}", v, tensors, meta)
    elif value is None:
        meta[f"{prefix}.none"] = "1"
    else:
        meta[f"{prefix}.value"] = repr(value)  # e.g. a torch.dtype: recorded, not needed to rebuild


def int8_state_bytes(qmodel: nn.Module, metadata: dict[str, str]) -> bytes:
    """The int8 model's state as safetensors bytes: integer tensors plus their scales and zero points."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}
    for k, v in qmodel.state_dict().items():
        _flatten_state(k, v, tensors, meta)
    return st_save(tensors, metadata={**metadata, **{f"q:{k}": v for k, v in meta.items()}})


def _unflatten_state(template: dict, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    def build(prefix: str, like):
        if isinstance(like, torch.Tensor) and like.is_quantized:
            ints = tensors[f"{prefix}.int"]
            scale, zp = tensors[f"{prefix}.scale"], tensors[f"{prefix}.zero_point"]
            if f"q:{prefix}.axis" in meta:
                return torch._make_per_channel_quantized_tensor(
                    ints, scale.double(), zp.long(), int(meta[f"q:{prefix}.axis"])
                )
            return torch._make_per_tensor_quantized_tensor(ints, float(scale[0]), int(zp[0]))
        if isinstance(like, torch.Tensor):
            return tensors[prefix]
        if isinstance(like, tuple | list):
            return type(like)(build(f"{prefix}.{i}", v) for i, v in enumerate(like))
        return like

    from collections import OrderedDict

    state = OrderedDict((k, build(k, v)) for k, v in template.items())
    state._metadata = getattr(template, "_metadata", {})  # module versions: quantized Linear needs them
    return state


def load_int8(path: str | os.PathLike, float_model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Rebuild an int8 model written by :func:`quantize_weights` around ``float_model``'s architecture."""
    tensors, meta = _read_safetensors(path)
    skeleton = int8_static(float_model, [example])  # the graph; its values are replaced below
    try:
        with _quiet_ao():
            skeleton.load_state_dict(_unflatten_state(skeleton.state_dict(), tensors, meta))
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: does not hold int8 weights for this model ({e})") from None
    return skeleton


# ------------------------------------------------------------------ 4-bit weight-only


def quantize_int4(w: torch.Tensor, group_size: int = 32) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Symmetric signed 4-bit quantization of ``w`` per output channel in groups of ``group_size``.

    Returns ``(packed uint8 (out, ceil(n/2)), float16 scales (out, groups), n)``
    where ``n`` is the number of weights per output channel.  Values are
    ``round(w / scale)`` clamped to [-8, 7], ``scale = max|w| / 7`` per group.
    """
    out = w.shape[0]
    flat = w.detach().float().reshape(out, -1)
    n = flat.shape[1]
    groups = math.ceil(n / group_size)
    padded = torch.zeros(out, groups * group_size)
    padded[:, :n] = flat
    g = padded.view(out, groups, group_size)
    scale = (g.abs().amax(2) / 7).clamp_min(1e-12).half()
    q = torch.round(g / scale.float().unsqueeze(2)).clamp(-8, 7).to(torch.int8).view(out, -1)[:, :n]
    nib = (q & 0xF).to(torch.uint8)
    if n % 2:
        nib = torch.cat([nib, torch.zeros(out, 1, dtype=torch.uint8)], 1)
    packed = nib[:, 0::2] | (nib[:, 1::2] << 4)
    return packed.contiguous(), scale, n


def dequantize_int4(
    packed: torch.Tensor, scale: torch.Tensor, n: int, shape, group_size: int = 32
) -> torch.Tensor:
    """The float32 weights of :func:`quantize_int4`'s output, reshaped to ``shape``."""
    out, groups = packed.shape[0], scale.shape[1]
    lo, hi = (packed & 0xF).to(torch.int8), (packed >> 4).to(torch.int8)
    q = torch.stack([lo, hi], 2).view(out, -1)[:, :n]
    q = torch.where(q > 7, q - 16, q).float()  # two's complement nibbles back to [-8, 7]
    full = torch.zeros(out, groups * group_size)
    full[:, :n] = q
    return (
        (full.view(out, groups, group_size) * scale.float().unsqueeze(2)).view(out, -1)[:, :n].reshape(shape)
    )


class Int4Weight(nn.Module):
    """Wraps a Conv2d or Linear: 4-bit packed weights as buffers, unpacked to float32 on each call."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, group_size: int = 32):
        super().__init__()
        packed, scale, n = quantize_int4(layer.weight, group_size)
        self.register_buffer("qweight", packed)
        self.register_buffer("scales", scale)
        self.n, self.shape, self.group_size = n, tuple(layer.weight.shape), group_size
        self.bias = (
            None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
        )
        self.layer = layer
        layer.register_parameter("weight", None)  # the float weights are gone: only the 4-bit copy remains
        layer.register_parameter("bias", None)

    def weight(self) -> torch.Tensor:
        return dequantize_int4(self.qweight, self.scales, self.n, self.shape, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight().to(x.dtype)
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.bias)
        return nn.functional.linear(x, w, self.bias)


def int4_weight_only(model: nn.Module, *, group_size: int = 32) -> nn.Module:
    """A copy of ``model`` whose Conv2d/Linear weights are 4-bit (other parameters stay float32)."""
    model = copy.deepcopy(model).cpu().float().eval()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) in (nn.Conv2d, nn.Linear):
                setattr(module, child_name, Int4Weight(child, group_size))
    return model


# ------------------------------------------------------------------ 1-bit storage


def binary_state_bytes(model: nn.Module, metadata: dict[str, str]) -> bytes:
    """A binarized model's deployable state: one bit per binary weight, float everything else."""
    from deeper.models.binary import BinaryConv2d, BinaryLinear

    tensors: dict[str, torch.Tensor] = {}
    binary = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, BinaryConv2d | BinaryLinear)}
    for k, v in model.state_dict().items():
        if k in binary:
            w = v.detach().float().cpu()
            bits = np.packbits((w >= 0).numpy().astype(np.uint8).reshape(-1))
            tensors[f"{k}.bits"] = torch.from_numpy(bits)
            tensors[f"{k}.scale"] = w.abs().flatten(1).mean(1)
            tensors[f"{k}.shape"] = torch.tensor(w.shape)
        elif v.is_floating_point():
            tensors[k] = v.detach().float().contiguous()  # BN: a few hundred floats
        else:
            tensors[k] = v.detach().contiguous()
    return st_save(tensors, metadata=metadata)


def load_binary(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Fill ``model`` (a :class:`~deeper.models.binary.BinaryConvNet`) from :func:`binary_state_bytes`."""
    tensors, _ = _read_safetensors(path)
    state = {}
    for k, v in model.state_dict().items():
        if f"{k}.bits" in tensors:
            shape = tuple(tensors[f"{k}.shape"].tolist())
            n = int(np.prod(shape))
            signs = np.unpackbits(tensors[f"{k}.bits"].numpy())[:n].astype(np.float32) * 2 - 1
            scale = tensors[f"{k}.scale"].float().view(-1, *([1] * (len(shape) - 1)))
            state[k] = (
                torch.from_numpy(signs).view(shape) * scale
            )  # binarizes back to the same signs and scales
        elif k in tensors:
            state[k] = tensors[k].to(v.dtype)
        else:
            raise CheckpointError(f"{path}: missing {k}")
    model.load_state_dict(state)
    return model.eval()


def _read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    import safetensors

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        tensors = st_load(path.read_bytes())
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a bad file
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    return tensors, meta


# ------------------------------------------------------------------ using a quantized file


#: metadata of the float weights a quantized file carries over (what rebuilding and predicting need)
CARRIED = ("task", "task_args", "dataset", "classes", "num_classes", "in_chans", "img_size", "model_kwargs")


def carried_metadata(meta: dict, method: str) -> dict[str, str]:
    """The float weights' metadata a quantized file keeps, and what it is (``quantized``: the method)."""
    out = {k: meta[k] for k in CARRIED if k in meta}
    out["quantized"] = method
    if method == "binary":  # a network of its own, trained on the data (not the float weights rounded)
        out["network"] = "binary-convnet"
        out.pop("model_kwargs", None)
    return out


def quantized_method(meta: dict) -> str | None:
    """The method of a quantized file written by ``deeper quantize`` (``None``: float weights).

    Files written before ``quantized`` was recorded are known by ``method``."""
    method = meta.get("quantized") or meta.get("method")
    return method if method in METHODS else None


class QuantizedNet(nn.Module):
    """A quantized network as every command uses one: on the CPU in its own precision, whatever it is moved to.

    Inputs are moved to the CPU as float32 and the outputs stay there; ``.to(device)``,
    ``.half()`` and the like leave it as it is (int8 kernels exist only for the CPU).
    """

    def __init__(self, net: nn.Module, method: str):
        super().__init__()
        self.net, self.method = net.eval(), method
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)  # says where it runs: the CPU

    def _apply(self, fn, recurse: bool = True):
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to("cpu", torch.float32))


def load_quantized(path: str | os.PathLike, name: str, kwargs: dict, meta: dict) -> QuantizedNet:
    """The network of a file written by ``deeper quantize`` (int8, qat, int4 or binary), ready to use.

    ``name`` and ``kwargs`` rebuild the float architecture it was quantized from (the
    registry name and constructor options recorded in the file).
    """
    from deeper.models.registry import create_model, get_model_entry

    method = quantized_method(meta)
    if method is None:
        raise CheckpointError(f"{path}: not a quantized model written by deeper quantize")
    if method == "binary":
        keep = {k: v for k, v in kwargs.items() if k in ("num_classes", "in_chans", "img_size")}
        try:
            return QuantizedNet(load_binary(path, create_model("binary-convnet", **keep)), method)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path}: does not hold a binary network ({first})") from None
    try:
        float_net = create_model(name, **kwargs).eval()
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{path}: cannot rebuild model {name!r} for its {method} weights ({e})"
        ) from None
    if method == "int4":
        tensors, _ = _read_safetensors(path)
        try:
            group = int(meta.get("group_size", 32))
            net = int4_weight_only(float_net, group_size=group)
            net.load_state_dict(tensors)
        except (KeyError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(
                f"{path}: does not hold int4 weights for model {name!r} ({first})"
            ) from None
        return QuantizedNet(net.eval(), method)
    c, h, w = get_model_entry(name).default_input
    size = kwargs.get("img_size")
    example = torch.rand(2, kwargs.get("in_chans", c), size or h, size or w)
    return QuantizedNet(load_int8(path, float_net, example), method)
