"""The layer table: shapes, parameters, MACs, receptive field and stride of every layer.

:func:`summarize` runs one forward pass of a batch of one image and records a
row per call of each leaf module (a module called three times gives three rows;
its parameters are counted at the first call):

- ``output_shape``: the output without the batch dimension;
- ``params``: the module's own parameters;
- ``macs``: multiply-accumulates of the call, from :mod:`torch.utils.flop_counter`
  (its FLOPs / 2).  They cover convolutions, affine layers and the matrix
  products of attention; element-wise work (activations, normalisation,
  pooling, additions) is not counted, as is usual;
- ``receptive_field``: the side of the input window one output position
  depends on, and ``stride``: how many input pixels one step on the output map
  moves (the product of the strides so far).  Both follow every operation
  of the forward pass (convolutions and pools exactly, concatenations and sums as
  the widest of their inputs); ``None`` once the map has been flattened or
  globally pooled, when every output depends on the whole image;
- ``exact``: for convolutions and pools, whether (H + 2P - FH) / S + 1 was an
  integer (``False``: PyTorch dropped the last rows/columns, see
  :func:`conv_output_size`);
- ``param_share`` and ``mac_share``: the row's fraction of the model's totals.

``by_type`` adds the rows up per layer type (``Conv2d``, ``Linear``, ...).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from torch.utils.weak import WeakIdKeyDictionary

from deeper.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# the convolution arithmetic of the notes


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, *, dilation: int = 1) -> int:
    """Output side of a convolution or pooling: (H + 2P - FH) / S + 1.

    Raises :class:`ConfigError` when the division is not exact (the filter does not
    tile the padded input) or the output would be empty.  PyTorch silently floors
    instead, dropping the input's last rows and columns.
    """
    for name, v, low in (
        ("size", size, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if v < low:
            raise ConfigError(f"{name} must be at least {low}, got {v}")
    span = dilation * (kernel - 1) + 1
    covered = size + 2 * padding - span
    if covered < 0:
        raise ConfigError(
            f"a filter of {span} does not fit an input of {size} with padding {padding}: (H + 2P - FH) = {covered} < 0"
        )
    if covered % stride:
        raise ConfigError(
            f"(H + 2P - FH) / S + 1 = ({size} + 2*{padding} - {span}) / {stride} + 1 = "
            f"{covered / stride + 1:g} is not an integer: the filter does not tile the input "
            f"(PyTorch would floor it to {covered // stride + 1})"
        )
    return covered // stride + 1


# ---------------------------------------------------------------------------------------------
# receptive field tracking


@dataclass(frozen=True)
class _Field:
    """Receptive field and jump (stride product) per axis; ``rf is None``: the whole input."""

    rf: tuple[float, float] | None
    jump: tuple[float, float] | None

    @staticmethod
    def merge(fields: list[_Field]) -> _Field:
        if any(f.rf is None for f in fields):
            return GLOBAL
        rf = tuple(max(f.rf[i] for f in fields) for i in range(2))
        jump = tuple(max(f.jump[i] for f in fields) for i in range(2))
        return _Field(rf, jump)  # type: ignore[arg-type]

    def through(self, kernel, stride, dilation=(1, 1)) -> _Field:
        if self.rf is None:
            return self
        rf = tuple(self.rf[i] + (dilation[i] * (kernel[i] - 1)) * self.jump[i] for i in range(2))
        jump = tuple(self.jump[i] * stride[i] for i in range(2))
        return _Field(rf, jump)  # type: ignore[arg-type]


GLOBAL = _Field(None, None)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (int(v[0]), int(v[1]))


class _FieldTracker(TorchFunctionMode):
    """Propagates a :class:`_Field` from the input image through every torch function."""

    def __init__(self):
        super().__init__()
        self.fields = WeakIdKeyDictionary()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t in self.fields]
        if not inputs:
            return out
        merged = _Field.merge([self.fields[t] for t in inputs])
        ref = next((t for t in inputs if t.ndim == 4), None)
        for o in tree_leaves(out):
            if not isinstance(o, torch.Tensor):
                continue
            if merged.rf is None or ref is None:
                self.fields[o] = merged
            elif o.ndim != 4:  # flattened, pooled over space, or turned into tokens
                self.fields[o] = GLOBAL
            elif o.shape[-2:] == ref.shape[-2:]:
                self.fields[o] = merged
            else:  # an unknown resampling (e.g. strided slicing): a 1x1 kernel with the size ratio as stride
                ratio = tuple(ref.shape[-2 + i] / max(1, o.shape[-2 + i]) for i in range(2))
                self.fields[o] = _Field(merged.rf, tuple(merged.jump[i] * ratio[i] for i in range(2)))
        return out

    def module_rule(self, module: nn.Module, inp, out) -> None:
        """Exact rules for the modules whose kernel and stride we know."""
        if not (isinstance(inp, torch.Tensor) and isinstance(out, torch.Tensor)) or inp not in self.fields:
            return
        f = self.fields[inp]
        if f.rf is None or inp.ndim != 4:
            return
        if isinstance(module, nn.Conv2d):
            self.fields[out] = f.through(module.kernel_size, module.stride, module.dilation)
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            stride = module.stride if module.stride is not None else module.kernel_size
            dilation = getattr(module, "dilation", 1)
            self.fields[out] = f.through(_pair(module.kernel_size), _pair(stride), _pair(dilation))
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            i_hw, o_hw = inp.shape[-2:], out.shape[-2:]
            if tuple(o_hw) == (1, 1):
                self.fields[out] = GLOBAL
            elif i_hw != o_hw:
                kernel = tuple(math.ceil(i_hw[k] / o_hw[k]) for k in range(2))
                stride = tuple(max(1, i_hw[k] // o_hw[k]) for k in range(2))
                self.fields[out] = f.through(kernel, stride)


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _flop_counter() -> FlopCounterMode:
    """torch's FLOP counter, also counting the CPU kernel of scaled dot-product attention."""
    extra = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        extra[op] = _cpu_sdpa_flops
    return FlopCounterMode(display=False, custom_mapping=extra)


def _fits(module: nn.Module, inp: torch.Tensor) -> bool | None:
    """Whether (H + 2P - FH) / S is an integer for this conv/pool call (None: not such a layer)."""
    if not isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) or inp.ndim != 4:
        return None
    if isinstance(module.padding, str):
        return True
    k, p = _pair(module.kernel_size), _pair(module.padding)
    s = _pair(module.stride if module.stride is not None else module.kernel_size)
    d = _pair(getattr(module, "dilation", 1))
    return all((inp.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) % s[i] == 0 for i in range(2))


# ---------------------------------------------------------------------------------------------
# the table


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: list[int] | None
    params: int
    macs: int
    receptive_field: int | list[int] | None
    stride: int | float | list[float] | None
    exact: bool | None = None
    param_share: float = 0.0
    mac_share: float = 0.0
    note: str = ""


@dataclass
class ModelSummary:
    model: str
    input_shape: list[int]
    output_shape: list[int]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    by_type: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = d.pop("rows")
        return d

    def table(self) -> str:
        """The rows, the per-type totals and the totals as plain text."""
        head = ("#", "layer", "type", "output", "params", "MACs", "RF", "stride", "%params", "%MACs")
        lines = []
        for i, r in enumerate(self.rows):
            shape = "x".join(map(str, r.output_shape)) if r.output_shape else "-"
            if r.exact is False:
                shape += "*"
            lines.append(
                (
                    str(i),
                    r.name,
                    r.type,
                    shape,
                    f"{r.params:,}",
                    human(r.macs),
                    _fmt_field(r.receptive_field),
                    _fmt_field(r.stride),
                    f"{100 * r.param_share:.1f}",
                    f"{100 * r.mac_share:.1f}",
                )  # fmt: skip
            )
        out = [_columns([head, *lines], right={0, 4, 5, 6, 7, 8, 9})]
        if any(r.exact is False for r in self.rows):
            out.append("* (H + 2P - FH) / S is not an integer here: PyTorch drops the last rows/columns")
        out.append("")
        type_rows = [("type", "layers", "params", "%params", "MACs", "%MACs")]
        for t, v in sorted(self.by_type.items(), key=lambda kv: (-kv[1]["macs"], -kv[1]["params"])):
            type_rows.append(
                (
                    t,
                    str(v["layers"]),
                    f"{v['params']:,}",
                    f"{100 * v['param_share']:.1f}",
                    human(v["macs"]),
                    f"{100 * v['mac_share']:.1f}",
                )
            )
        out.append(_columns(type_rows, right={1, 2, 3, 4, 5}))
        out.append("")
        out.append(
            f"{self.model}: input {'x'.join(map(str, self.input_shape))} -> output {'x'.join(map(str, self.output_shape))}; "
            f"{self.total_params:,} parameters ({self.trainable_params:,} trainable), "
            f"{self.total_macs:,} MACs ({human(self.total_macs)}) per image"
        )
        return "\n".join(out)


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def _fmt_field(v) -> str:
    if v is None:
        return "all"
    if isinstance(v, list):
        return "x".join(_fmt_field(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _columns(rows: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()
        for r in rows
    )


def _field_value(axis_values: tuple[float, float] | None) -> int | float | list | None:
    if axis_values is None:
        return None
    vals = [int(v) if float(v).is_integer() else round(v, 3) for v in axis_values]
    return vals[0] if vals[0] == vals[1] else vals


def summarize(
    model: nn.Module, input_shape: tuple[int, int, int] | list[int], *, name: str | None = None
) -> ModelSummary:
    """The layer table of ``model`` for one input of shape ``(C, H, W)`` (evaluation mode, on the CPU)."""
    if len(input_shape) != 3 or any(int(v) < 1 for v in input_shape):
        raise ConfigError(f"input shape must be C x H x W with positive sizes, got {tuple(input_shape)}")
    name = name or type(model).__name__
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    x = torch.zeros(1, *map(int, input_shape), device=device)

    names = {m: n for n, m in model.named_modules()}
    tracker = _FieldTracker()
    counter = _flop_counter()
    stack: list[dict] = []
    rows: list[LayerRow] = []
    seen_params: set[nn.Module] = set()
    calls: dict[nn.Module, int] = defaultdict(int)

    def pre_hook(module, args):
        stack.append({"start": counter.get_total_flops(), "children": 0})

    def post_hook(module, args, output):
        frame = stack.pop()
        total = counter.get_total_flops() - frame["start"]
        own = total - frame["children"]
        if stack:
            stack[-1]["children"] += total
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        out = output if isinstance(output, torch.Tensor) else None
        if inp is not None and out is not None:
            tracker.module_rule(module, inp, out)
        leaf = next(module.children(), None) is None
        direct = 0
        if module not in seen_params:
            direct = sum(p.numel() for p in module.parameters(recurse=False))
        if not (leaf or own > 0 or direct > 0):
            return
        seen_params.add(module)
        calls[module] += 1
        label = names.get(module, "?") or name
        if calls[module] > 1:
            label += f" #{calls[module]}"
        f = tracker.fields.get(out) if out is not None else None
        rows.append(
            LayerRow(
                name=label,
                type=type(module).__name__,
                output_shape=list(out.shape[1:]) if out is not None else None,
                params=direct,
                macs=own // 2,
                receptive_field=_field_value(f.rf) if f is not None else None,
                stride=_field_value(f.jump) if f is not None else None,
                exact=_fits(module, inp) if inp is not None else None,
            )
        )

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    try:
        with torch.no_grad(), counter, tracker:
            tracker.fields[x] = _Field((1, 1), (1, 1))
            y = model(x)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{name} cannot take an input of {'x'.join(map(str, input_shape))}: {first}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    for n, m in model.named_modules():  # modules the forward pass never called (e.g. auxiliary heads)
        if m not in seen_params and (p := sum(q.numel() for q in m.parameters(recurse=False))):
            rows.append(
                LayerRow(n, type(m).__name__, None, p, 0, None, None, note="not called in evaluation mode")
            )

    total_params = sum(p.numel() for p in model.parameters())
    total_macs = counter.get_total_flops() // 2
    by_type: dict[str, dict] = {}
    for r in rows:
        r.param_share = r.params / total_params if total_params else 0.0
        r.mac_share = r.macs / total_macs if total_macs else 0.0
        t = by_type.setdefault(r.type, {"layers": 0, "params": 0, "macs": 0})
        t["layers"] += 1
        t["params"] += r.params
        t["macs"] += r.macs
    for t in by_type.values():
        t["param_share"] = t["params"] / total_params if total_params else 0.0
        t["mac_share"] = t["macs"] / total_macs if total_macs else 0.0
    y0 = y[0] if isinstance(y, tuple | list) else y
    return ModelSummary(
        model=name,
        input_shape=[int(v) for v in input_shape],
        output_shape=list(y0.shape[1:]),
        rows=rows,
        total_params=total_params,
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_macs=total_macs,
        by_type=by_type,
    )


def default_num_classes(input_shape: tuple[int, int, int]) -> int:
    """1000 (ImageNet) for inputs of 224 pixels or more, else 10."""
    return 1000 if min(input_shape[1:]) >= 224 else 10


def summarize_registered(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    *,
    num_classes: int | None = None,
    **model_kwargs,
) -> ModelSummary:
    """:func:`summarize` a registered model built for ``input_shape`` (default: its design input)."""
    from deeper.models import create_model, get_model_entry

    entry = get_model_entry(name)
    shape = tuple(input_shape) if input_shape is not None else entry.default_input
    c, h, w = shape
    classes = num_classes if num_classes is not None else default_num_classes(shape)
    kwargs = dict(model_kwargs)
    kwargs.setdefault("img_size", h if h == w else (h, w))
    model = create_model(name, num_classes=classes, in_chans=c, **kwargs)
    return summarize(model, shape, name=name)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"1x28x28"`` -> ``(1, 28, 28)``, with a clear error."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"input shape must look like CxHxW, e.g. 1x28x28 or 3x224x224, got {text!r}")
    c, h, w = shape
    if c > 64 or h > 4096 or w > 4096:
        raise ConfigError(f"input shape {text!r}: at most 64 channels and 4096x4096 pixels")
    return shape  # type: ignore[return-value]


def plot_summary(summary: ModelSummary, path: str | os.PathLike, *, max_bars: int = 60) -> None:
    """Bar charts of each layer's share of the parameters and of the MACs, as a PNG.

    Models with more than ``max_bars`` weighted layers are shown per block (the first
    two parts of the layer names) instead of per layer.
    """
    from deeper.analysis.plots import plt, save_figure

    weighted = [r for r in summary.rows if r.params or r.macs]
    labels = [r.name for r in weighted]
    params = [r.param_share for r in weighted]
    macs = [r.mac_share for r in weighted]
    grouped = len(weighted) > max_bars
    if grouped:
        groups: dict[str, list[float]] = {}
        for r in weighted:
            key = ".".join(r.name.split(" ")[0].split(".")[:2])
            g = groups.setdefault(key, [0.0, 0.0])
            g[0] += r.param_share
            g[1] += r.mac_share
        labels = list(groups)
        params = [g[0] for g in groups.values()]
        macs = [g[1] for g in groups.values()]
    n = len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(11, max(3.0, 0.22 * n + 1.2)), sharey=True)
    ys = list(range(n))
    for ax, values, title, color in (
        (axes[0], params, f"parameters ({summary.total_params:,})", "tab:blue"),
        (axes[1], macs, f"MACs per image ({human(summary.total_macs)})", "tab:orange"),
    ):
        ax.barh(ys, [100 * v for v in values], color=color)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("% of the model")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].invert_yaxis()
    shape = "x".join(map(str, summary.input_shape))
    fig.suptitle(f"{summary.model} on {shape} inputs{' (per block)' if grouped else ''}", fontsize=11)
    save_figure(fig, path)
