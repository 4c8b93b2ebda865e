"""The from-scratch engine: the book's layers in NumPy (or CuPy), checked against PyTorch.

"Deep Learning from Scratch" builds its networks from layers that each know their
``forward`` and ``backward``; this package does the same, for the very networks
the PyTorch side trains, with the same parameter names and layouts, so weights
move between the engines unchanged (see ``docs/scratch.md``).

>>> from deeper.scratch import create_net, create_optimizer
>>> net = create_net("deep-convnet", dtype="float64")
>>> opt = create_optimizer("adam", lr=0.001)
>>> loss = net.loss(x, t); net.backward(); opt.update(net.params, net.grads)   # doctest: +SKIP

Modules: :mod:`~deeper.scratch.backend` (NumPy/CuPy, precisions),
:mod:`~deeper.scratch.functions` (im2col, convolution, pooling, softmax, numerical
gradients), :mod:`~deeper.scratch.layers`, :mod:`~deeper.scratch.init`,
:mod:`~deeper.scratch.optim`, :mod:`~deeper.scratch.nets`,
:mod:`~deeper.scratch.trainer` (``deeper train/eval --engine numpy``).
"""

from deeper.scratch.backend import DTYPES, ENGINES, EngineUnavailable, array_module, cupy_available
from deeper.scratch.layers import (
    Affine,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    MaxPool2d,
    ReLU,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)
from deeper.scratch.nets import Sequential, create_net, list_nets, register_net
from deeper.scratch.optim import OPTIMIZERS, Optimizer, create_optimizer, list_optimizers

__all__ = [
    "DTYPES",
    "ENGINES",
    "OPTIMIZERS",
    "Affine",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "EngineUnavailable",
    "Flatten",
    "Layer",
    "MaxPool2d",
    "Optimizer",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Tanh",
    "array_module",
    "create_net",
    "create_optimizer",
    "cupy_available",
    "list_nets",
    "list_optimizers",
    "register_net",
]
