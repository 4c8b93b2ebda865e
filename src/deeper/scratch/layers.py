"""Layers with an explicit ``forward`` and ``backward``, as in the book.

A layer's ``forward(x)`` returns its output and remembers what its ``backward``
needs; ``backward(dout)`` takes the gradient of the loss with respect to that
output and returns the gradient with respect to the input, after storing the
gradients of its parameters in ``grads`` (same keys as ``params``).
``backward`` always refers to the most recent ``forward``.

Parameter names and layouts are PyTorch's (``weight`` (out, in) for affine
layers, (out, in, kh, kw) for convolutions, ``bias``; batch norm's
``running_mean``/``running_var``/``num_batches_tracked`` buffers), so a state
dict moves between this engine and ``torch.nn`` without a transpose.
"""

from __future__ import annotations

import numpy as np

from deeper.scratch import functions as F
from deeper.scratch.backend import compute_dtype, get_xp, matmul


class Layer:
    """Base class: no parameters, identity ``train``/``eval`` switch."""

    def __init__(self):
        self.params: dict = {}  # learnable arrays, updated in place by the optimizers
        self.grads: dict = {}  # their gradients after backward()
        self.buffers: dict = {}  # state that is saved but not learned
        self.training = True

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Affine(Layer):
    """``y = x W^T + b`` with ``W`` of shape (out, in); inputs of more than 2 dims are flattened."""

    def __init__(self, weight, bias):
        super().__init__()
        self.params = {"weight": weight, "bias": bias}

    def forward(self, x):
        self.x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return matmul(x, self.params["weight"].T) + self.params["bias"]

    def backward(self, dout):
        acc = compute_dtype(dout.dtype)
        self.grads["weight"] = matmul(dout.T, self.x)
        self.grads["bias"] = dout.sum(axis=0, dtype=acc).astype(dout.dtype)
        return matmul(dout, self.params["weight"]).reshape(self.x_shape)


class ReLU(Layer):
    def forward(self, x):
        xp = get_xp(x)
        out = xp.maximum(x, 0)
        self.mask = out > 0
        return out

    def backward(self, dout):
        return dout * self.mask


class Sigmoid(Layer):
    def forward(self, x):
        xp = get_xp(x)
        self.out = 0.5 * (1 + xp.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class Tanh(Layer):
    def forward(self, x):
        self.out = get_xp(x).tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order (PyTorch's ``flatten(x, 1)``)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.x_shape)


class WidthNormalize(Layer):
    """Stretch each image horizontally so its ink spans ``width`` pixels, centred (MCDNN's input
    normalisation; :class:`deeper.models.preprocess.WidthNormalize` is the PyTorch twin).

    Row by row the output is a linear interpolation of the input's columns, a different
    one per image: a (W, W) matrix per image, so forward and backward are one batched
    matrix product each.  The ink is the columns whose brightest pixel exceeds
    ``threshold``; a blank image passes unchanged.
    """

    def __init__(self, width: float, threshold: float = 0.1):
        super().__init__()
        if not width > 0:
            raise ValueError(f"width_norm must be a positive width in pixels, got {width}")
        self.width, self.threshold = float(width), float(threshold)

    def __repr__(self) -> str:
        return f"WidthNormalize(width={self.width:g})"

    def forward(self, x):
        xp = get_xp(x)
        n, w = x.shape[0], x.shape[3]
        ink = x.max(axis=(1, 2)) > self.threshold  # (N, W)
        cols = xp.arange(w)
        first = xp.where(ink, cols, w).min(axis=1)
        last = xp.where(ink, cols, -1).max(axis=1)
        blank = ~ink.any(axis=1)
        scale = xp.where(blank, 1.0, xp.maximum(last - first + 1, 1) / self.width)
        centre = xp.where(blank, w / 2, (first + last + 1) / 2)
        # output column j reads input position centre + (j + 1/2 - W/2) * scale - 1/2 (pixel indices)
        pos = centre[:, None] + (cols[None, :] + 0.5 - w / 2) * scale[:, None] - 0.5
        left = xp.floor(pos).astype(np.int64)
        frac = pos - left
        rows, outs = xp.arange(n)[:, None], cols[None, :]
        m = xp.zeros((n, w, w), dtype=np.float64)  # m[i, j, k]: weight of input column k in output j
        for k, weight in ((left, 1 - frac), (left + 1, frac)):
            inside = (k >= 0) & (k < w)  # zeros outside the image
            m[rows, outs, xp.clip(k, 0, w - 1)] += xp.where(inside, weight, 0.0)
        self.m = m.astype(x.dtype)
        return xp.einsum("nchk,njk->nchj", x, self.m)

    def backward(self, dout):
        return get_xp(dout).einsum("nchj,njk->nchk", dout, self.m)


class Conv2d(Layer):
    """2-D cross-correlation, weight (F, C, kh, kw), by im2col (``impl="im2col"``) or the definition (``"naive"``).

    ``need_input_grad=False`` skips the input gradient (for the first layer of a
    network, whose input is data).  The column matrices (of the forward pass and of
    the input gradient) live in buffers kept between calls, reallocated only when the
    batch shape changes, so the largest arrays of a step are not allocated anew each time.
    """

    def __init__(self, weight, bias=None, *, stride: int = 1, padding: int = 0, impl: str = "im2col"):
        super().__init__()
        if impl not in ("im2col", "naive"):
            raise ValueError(f"impl must be 'im2col' or 'naive', not {impl!r}")
        self.params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
        self.stride, self.padding, self.impl = stride, padding, impl
        self.need_input_grad = True
        self._buffers: dict[str, object] = {}

    def _buffer(self, name: str, like, rows: int, cols: int):
        """A (rows, cols) work array kept between calls, reallocated only when its shape changes."""
        xp, dtype = get_xp(like), compute_dtype(like.dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.shape != (rows, cols) or buf.dtype != dtype or get_xp(buf) is not xp:
            self._buffers[name] = None  # let the old one go first
            self._buffers[name] = buf = xp.empty((rows, cols), dtype=dtype)
        return buf

    def forward(self, x):
        w, b = self.params["weight"], self.params.get("bias")
        self.x_shape = x.shape
        if self.impl == "naive":
            self.x = x
            return F.conv2d_naive(x, w, b, self.stride, self.padding)
        f, c, kh, kw = w.shape
        n, _, h, wd = x.shape
        ho = F.conv_output_size(h, kh, self.stride, self.padding)
        wo = F.conv_output_size(wd, kw, self.stride, self.padding)
        col = self._buffer("col", x, n * ho * wo, kh * kw * c)
        out, self.col = F.conv2d(x, w, b, self.stride, self.padding, col_out=col)
        return out

    def backward(self, dout):
        w = self.params["weight"]
        if self.impl == "naive":
            dx, dw, db = F.conv2d_naive_backward(dout, self.x, w, self.stride, self.padding)
        else:
            n, c, h, wd = self.x_shape
            f, _, kh, kw = w.shape
            transposed = self.need_input_grad and self.stride == 1  # see F.conv2d_input_grad
            dcol = self._buffer("dcol", dout, n * h * wd, kh * kw * f) if transposed else None
            dx, dw, db = F.conv2d_backward(
                dout, self.col, self.x_shape, w, self.stride, self.padding,
                need_dx=self.need_input_grad, dcol_out=dcol,
            )  # fmt: skip
        self.grads["weight"] = dw
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx


class _Pool(Layer):
    mode = "max"

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def forward(self, x):
        self.x_shape = x.shape
        out, self.xpad = F.pool2d(x, self.kernel, self.stride, self.padding, self.mode)
        self.out = out
        return out

    def backward(self, dout):
        return F.pool2d_backward(
            dout, self.out, self.xpad, self.x_shape, self.kernel, self.stride, self.padding, self.mode
        )


class MaxPool2d(_Pool):
    """Max over each ``kernel x kernel`` window (stride defaults to the kernel size)."""

    mode = "max"


class AvgPool2d(_Pool):
    """Mean over each ``kernel x kernel`` window (zero padding counted, as in PyTorch)."""

    mode = "avg"


class Dropout(Layer):
    """Drops each unit with probability ``p`` during training.

    ``inverted=True`` (PyTorch's, and the default): kept units are scaled by
    ``1/(1-p)`` in training and inference is the identity.  ``inverted=False`` is
    the book's: training keeps units unscaled and inference multiplies by ``1-p``.
    Both have the same expected output.  ``rng`` is a NumPy ``Generator`` (the
    network shares its own); a mask may also be given explicitly to ``forward``.
    """

    def __init__(self, p: float = 0.5, *, inverted: bool = True, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p, self.inverted = p, inverted
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x, mask=None):
        if not self.training or self.p == 0:
            self.scale = None
            return x if self.training or self.inverted else x * (1 - self.p)
        xp = get_xp(x)
        if mask is None:
            mask = xp.asarray(self.rng.random(x.shape, dtype=np.float32) >= self.p)
        keep = 1.0 / (1 - self.p) if self.inverted and self.p < 1 else (0.0 if self.p == 1 else 1.0)
        self.scale = mask.astype(x.dtype) * x.dtype.type(keep)
        return x * self.scale

    def backward(self, dout):
        if self.scale is None:
            return dout if self.training or self.inverted else dout * (1 - self.p)
        return dout * self.scale


class BatchNorm(Layer):
    """Batch normalisation over the batch (and, for 4-D inputs, the spatial positions).

    Matches ``torch.nn.BatchNorm1d``/``2d``: training normalises with the batch's
    biased variance and updates ``running_mean``/``running_var`` (unbiased) with
    ``momentum``; evaluation uses the running statistics.
    """

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1, xp=np, dtype=np.float32
    ):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.params = {"weight": xp.ones(num_features, dtype), "bias": xp.zeros(num_features, dtype)}
        self.buffers = {
            "running_mean": xp.zeros(num_features, dtype),
            "running_var": xp.ones(num_features, dtype),
            "num_batches_tracked": xp.zeros((), np.int64),
        }

    def _shape(self, x):
        return (1, -1) if x.ndim == 2 else (1, -1, 1, 1)

    def forward(self, x):
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = self._shape(x)
        acc = compute_dtype(x.dtype)
        xf = x.astype(acc, copy=False)
        if self.training:
            mean = xf.mean(axis=axes)
            xc = xf - mean.reshape(shape)
            var = (xc * xc).mean(axis=axes)
            n = x.size // x.shape[1]
            m, b = self.momentum, self.buffers
            b["running_mean"][...] = (1 - m) * b["running_mean"] + m * mean
            b["running_var"][...] = (1 - m) * b["running_var"] + m * var * n / max(n - 1, 1)
            b["num_batches_tracked"] += 1
        else:
            mean = self.buffers["running_mean"].astype(acc)
            var = self.buffers["running_var"].astype(acc)
            xc = xf - mean.reshape(shape)
        self.inv_std = 1.0 / get_xp(x).sqrt(var + self.eps)
        self.xhat = xc * self.inv_std.reshape(shape)
        out = self.xhat * self.params["weight"].reshape(shape) + self.params["bias"].reshape(shape)
        return out.astype(x.dtype, copy=False)

    def backward(self, dout):
        axes = (0,) if dout.ndim == 2 else (0, 2, 3)
        shape = self._shape(dout)
        d = dout.astype(self.xhat.dtype, copy=False)
        self.grads["weight"] = (d * self.xhat).sum(axis=axes).astype(dout.dtype)
        self.grads["bias"] = d.sum(axis=axes).astype(dout.dtype)
        dxhat = d * self.params["weight"].reshape(shape)
        if not self.training:  # the statistics are constants
            return (dxhat * self.inv_std.reshape(shape)).astype(dout.dtype)
        n = dout.size // dout.shape[1]
        dx = (
            self.inv_std.reshape(shape)
            / n
            * (
                n * dxhat
                - dxhat.sum(axis=axes).reshape(shape)
                - self.xhat * (dxhat * self.xhat).sum(axis=axes).reshape(shape)
            )
        )
        return dx.astype(dout.dtype)


class SoftmaxWithLoss:
    """Softmax and mean cross-entropy in one layer; ``backward`` is ``(softmax - target) / N``.

    Targets are class indices (N,) or class probabilities (N, K);
    ``label_smoothing`` mixes the uniform distribution into them.
    """

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def forward(self, x, t):
        xp = get_xp(x)
        logp = F.log_softmax(x)
        self.y = xp.exp(logp)
        self.t = F.target_distribution(t, x.shape[1], logp.dtype, self.label_smoothing)
        self.dtype = x.dtype
        return float(-(self.t * logp).sum() / x.shape[0])

    def backward(self, dout=1.0):
        n = self.y.shape[0]
        return ((self.y - self.t) * (dout / n)).astype(self.dtype)
