"""Networks: an ordered stack of named layers, and the book's three networks built from it.

:class:`Sequential` is the book's ``MultiLayerNet``/``DeepConvNet`` class made
general: ``loss(x, t)`` runs the layers forward and the softmax-with-loss on top,
``backward()`` runs them in reverse, ``params``/``grads`` are dicts keyed
``"<layer name>.<parameter>"``, which are exactly the keys of the matching
PyTorch model's ``state_dict``:

=================  ==========================================================
``deep-convnet``   ``conv1`` ... ``conv6``, ``fc1``, ``fc2``
                   (:mod:`deeper.models.deep_convnet`)
``simple-convnet`` ``conv1``, ``fc1``, ``fc2`` (:mod:`deeper.models.simple_convnet`)
``mlp``            ``hidden.<i>.fc``, ``hidden.<i>.bn``, ``head`` (:mod:`deeper.models.mlp`)
=================  ==========================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType

import numpy as np

from deeper.errors import CheckpointError, ConfigError, unknown_name
from deeper.scratch import layers as L
from deeper.scratch.backend import get_xp, parse_dtype, to_numpy
from deeper.scratch.init import init_weight


class Sequential:
    """Named layers applied in order, with a softmax cross-entropy loss on top.

    ``xp`` is the array module (NumPy or CuPy) and ``dtype`` the precision of
    every parameter and activation; inputs are converted to both by
    :meth:`asarray`.  Dropout layers draw their masks from ``self.rng``.
    """

    def __init__(
        self,
        layers: list[tuple[str, L.Layer]],
        *,
        xp: ModuleType = np,
        dtype=np.float32,
        seed: int = 0,
        label_smoothing: float = 0.0,
    ):
        self.layers: dict[str, L.Layer] = {}
        for name, layer in layers:
            if name in self.layers:
                raise ValueError(f"two layers are named {name!r}")
            self.layers[name] = layer
        self.xp = xp
        self.dtype = parse_dtype(dtype)
        self.rng = np.random.default_rng(seed)
        self.loss_layer = L.SoftmaxWithLoss(label_smoothing)
        for layer in self.layers.values():
            if isinstance(layer, L.Dropout):
                layer.rng = self.rng
        first = next((layer for layer in self.layers.values() if layer.params), None)
        if isinstance(first, L.Conv2d):  # its input is the data: no gradient needed
            first.need_input_grad = False
        self.training = True

    # ---- arrays -------------------------------------------------------------------------------
    def asarray(self, x, dtype=None):
        """``x`` as an array of this network's module and precision (CuPy and NumPy are never mixed)."""
        if type(x).__module__.startswith("torch"):
            x = x.detach().cpu().numpy()
        if get_xp(x) is not self.xp and self.xp is np:
            raise ConfigError("this network runs on NumPy; convert CuPy arrays with .get() first")
        return self.xp.asarray(x, dtype=self.dtype if dtype is None else dtype)

    # ---- modes --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers.values():
            layer.training = mode
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # ---- forward and backward -----------------------------------------------------------------
    def forward(self, x):
        """Logits (N, num_classes) for a batch ``x`` (N, C, H, W), in the current mode."""
        x = self.asarray(x)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    __call__ = forward

    def loss(self, x, t) -> float:
        """Mean cross-entropy of the batch; remembers what :meth:`backward` needs."""
        self.logits = self.forward(x)
        return self.loss_layer.forward(self.logits, self.xp.asarray(t))

    def backward(self) -> dict:
        """Back-propagate the last :meth:`loss`; returns :attr:`grads`."""
        dout = self.loss_layer.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
            if dout is None:  # the first convolution needs no input gradient
                break
        return self.grads

    def gradient(self, x, t) -> tuple[float, dict]:
        """``(loss, grads)``: the book's ``gradient(x, t)``."""
        loss = self.loss(x, t)
        return loss, self.backward()

    def predict(self, x, batch_size: int = 250):
        """Logits in evaluation mode (dropout off, batch-norm running statistics), ``batch_size`` at a time."""
        was = self.training
        self.eval()
        try:
            x = self.asarray(x)
            return self.xp.concatenate(
                [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
            )
        finally:
            self.train(was)

    def accuracy(self, x, t, batch_size: int = 250) -> float:
        pred = self.predict(x, batch_size).argmax(axis=1)
        return float((pred == self.xp.asarray(t)).mean())

    # ---- parameters ---------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        """The learnable arrays, ``{"conv1.weight": array, ...}`` (the same objects the layers use)."""
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.params.items()}

    @property
    def grads(self) -> dict:
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.grads.items()}

    def num_params(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def state_dict(self) -> dict:
        """Parameters and buffers by their PyTorch names (the arrays themselves, not copies)."""
        out = {}
        for n, layer in self.layers.items():
            for k, v in {**layer.params, **layer.buffers}.items():
                out[f"{n}.{k}"] = v
        return out

    def load_state_dict(self, state: dict, source: str = "state dict") -> None:
        """Copy arrays or tensors (any precision) into this network; names and shapes must match."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing[:5])}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected[:5])}")
            raise CheckpointError(f"{source} does not fit this network: {'; '.join(parts)}")
        for key, target in own.items():
            value = state[key]
            if type(value).__module__.startswith("torch"):
                value = value.detach().cpu().numpy()
            value = to_numpy(value) if self.xp is np else value
            if tuple(value.shape) != tuple(target.shape):
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(value.shape)}, the network expects {tuple(target.shape)}"
                )
            target[...] = self.xp.asarray(value, dtype=target.dtype)

    def __repr__(self) -> str:
        rows = "\n".join(f"  {n}: {layer!r}" for n, layer in self.layers.items())
        return f"Sequential({self.dtype.name}, {self.xp.__name__}, {self.num_params():,} parameters)\n{rows}"


# ---- the registry ----------------------------------------------------------------------------

_NETS: dict[str, Callable[..., Sequential]] = {}


def register_net(name: str):
    """Register a builder of a scratch network under the name of its PyTorch twin."""

    def deco(fn):
        if name in _NETS:
            raise ValueError(f"scratch network {name!r} is already registered")
        _NETS[name] = fn
        return fn

    return deco


def list_nets() -> list[str]:
    return sorted(_NETS)


def create_net(
    name: str,
    *,
    num_classes: int = 10,
    in_chans: int = 1,
    dtype="float32",
    xp: ModuleType = np,
    seed: int = 0,
    **kwargs,
) -> Sequential:
    """Build a registered network; unknown names and options are :class:`ConfigError`."""
    if name not in _NETS:
        raise unknown_name("scratch-engine network", name, _NETS)
    fn = _NETS[name]
    unknown = [k for k in kwargs if k not in inspect.signature(fn).parameters]
    if unknown:
        raise ConfigError(f"scratch network {name!r} does not take option(s) {', '.join(unknown)}")
    return fn(
        num_classes=num_classes, in_chans=in_chans, dtype=parse_dtype(dtype), xp=xp, seed=seed, **kwargs
    )


def _affine(rng, xp, dtype, n_in, n_out, init="he"):
    w = init_weight(rng, (n_out, n_in), init, dtype) if init is not None else None
    return L.Affine(xp.asarray(w), xp.zeros(n_out, dtype))


def _conv(rng, xp, dtype, c_in, c_out, k, *, padding=0, init="he"):
    w = init_weight(rng, (c_out, c_in, k, k), init, dtype)
    return L.Conv2d(xp.asarray(w), xp.zeros(c_out, dtype), padding=padding)


#: (out channels, padding) of the six convolutions, as in the torch model
DEEP_CONVS = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))


def _check_norm(norm, model: str) -> bool:
    """Whether to add batch norm; the scratch engine has no layer/instance/group norm."""
    if norm in (None, "none"):
        return False
    if norm == "batch":
        return True
    raise ConfigError(f"the scratch {model} supports norm 'batch' or none, not {norm!r}; use --engine torch")


@register_net("deep-convnet")
def deep_convnet(
    *, num_classes=10, in_chans=1, img_size=28, hidden=50, dropout=0.5, norm=None, width=1.0,
    width_norm=0.0, dtype=np.float32, xp=np, seed=0,
) -> Sequential:  # fmt: skip
    """The chapter's DeepConvNet: six 3x3 convolutions (16-16-32-32-64-64, ReLU, max-pool after every
    second), affine 50, ReLU, dropout, affine, dropout; He initialisation.  ``norm="batch"`` adds
    batch norm (``norm<i>``) between each convolution and its ReLU; ``width`` scales the channels;
    ``width_norm`` stretches each digit's ink to that many pixels wide first."""
    batchnorm = _check_norm(norm, "deep-convnet")
    rng = np.random.default_rng(seed)
    h = img_size
    layers: list[tuple[str, L.Layer]] = []
    if width_norm:
        try:
            layers.append(("width_norm", L.WidthNormalize(width_norm)))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    c = in_chans
    for i, (out, pad) in enumerate(DEEP_CONVS, start=1):
        out = max(1, round(out * width))
        layers.append((f"conv{i}", _conv(rng, xp, dtype, c, out, 3, padding=pad)))
        if batchnorm:
            layers.append((f"norm{i}", L.BatchNorm(out, xp=xp, dtype=dtype)))
        layers.append((f"relu{i}", L.ReLU()))
        c, h = out, h + 2 * pad - 2
        if i % 2 == 0:
            layers.append((f"pool{i // 2}", L.MaxPool2d(2)))
            h //= 2
    if h < 1:
        raise ConfigError(f"input of size {img_size} is too small for DeepConvNet")
    layers += [
        ("flatten", L.Flatten()),
        ("fc1", _affine(rng, xp, dtype, c * h * h, hidden)),
        ("relu7", L.ReLU()),
        ("drop1", L.Dropout(dropout)),
        ("fc2", _affine(rng, xp, dtype, hidden, num_classes)),
        ("drop2", L.Dropout(dropout)),  # on the logits, as in the book
    ]
    return Sequential(layers, xp=xp, dtype=dtype, seed=seed)


@register_net("simple-convnet")
def simple_convnet(
    *, num_classes=10, in_chans=1, img_size=28, filters=30, kernel_size=5, hidden=100, weight_init=0.01,
    dtype=np.float32, xp=np, seed=0,
) -> Sequential:  # fmt: skip
    """The book's SimpleConvNet (chapter 7): conv 30x5x5 - ReLU - max-pool 2 - affine 100 - ReLU - affine."""
    rng = np.random.default_rng(seed)
    h = (img_size - kernel_size + 1) // 2
    layers = [
        ("conv1", _conv(rng, xp, dtype, in_chans, filters, kernel_size, init=weight_init)),
        ("relu1", L.ReLU()),
        ("pool1", L.MaxPool2d(2)),
        ("flatten", L.Flatten()),
        ("fc1", _affine(rng, xp, dtype, filters * h * h, hidden, weight_init)),
        ("relu2", L.ReLU()),
        ("fc2", _affine(rng, xp, dtype, hidden, num_classes, weight_init)),
    ]
    return Sequential(layers, xp=xp, dtype=dtype, seed=seed)


ACTIVATIONS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}


@register_net("mlp")
def mlp(
    *, num_classes=10, in_chans=1, img_size=28, hidden_sizes=(100, 100, 100, 100, 100), activation="relu",
    weight_init="auto", batchnorm=False, dropout=0.0, norm=None, dtype=np.float32, xp=np, seed=0,
) -> Sequential:  # fmt: skip
    """The book's multi-layer net (``MultiLayerNetExtend``): affine - [batch norm] - activation - [dropout]
    per hidden layer, then an affine head."""
    batchnorm = _check_norm(norm, "mlp") or batchnorm
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    if weight_init == "auto":
        weight_init = "he" if activation == "relu" else "xavier"
    rng = np.random.default_rng(seed)
    sizes = [in_chans * img_size * img_size, *hidden_sizes]
    layers: list[tuple[str, L.Layer]] = [("flatten", L.Flatten())]
    for i in range(len(hidden_sizes)):
        layers.append((f"hidden.{i}.fc", _affine(rng, xp, dtype, sizes[i], sizes[i + 1], weight_init)))
        if batchnorm:
            layers.append((f"hidden.{i}.bn", L.BatchNorm(sizes[i + 1], xp=xp, dtype=dtype)))
        layers.append((f"hidden.{i}.act", ACTIVATIONS[activation]()))
        if dropout > 0:
            layers.append((f"hidden.{i}.drop", L.Dropout(dropout)))
    layers.append(("head", _affine(rng, xp, dtype, sizes[-1], num_classes, weight_init)))
    return Sequential(layers, xp=xp, dtype=dtype, seed=seed)


__all__ = ["Sequential", "create_net", "deep_convnet", "list_nets", "mlp", "register_net", "simple_convnet"]
