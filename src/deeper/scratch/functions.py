"""The arithmetic of the layers, as plain functions on arrays (NumPy or CuPy).

Convolution comes twice:

- :func:`conv2d_naive` / :func:`conv2d_naive_backward` follow the definition
  (a loop over output positions, one dot product each): slow, and obviously right;
- :func:`im2col` / :func:`col2im` turn the convolution into *one* matrix product,
  which is how the book (and every fast CPU implementation) does it; the input
  gradient is then one more convolution (:func:`conv2d_input_grad`).  The tests
  check that both give the same numbers.

Layout.  Arrays are NCHW, as in PyTorch and the book.  Internally im2col works
*channels-last*: it copies the padded input once into NHWC memory, takes every
receptive field as a strided **view** (no copy, :func:`sliding_windows`), and lays
out each row of the column matrix as ``(kernel row, kernel column, channel)``, so
the copy that builds the matrix moves whole runs of channels instead of single
numbers.  The product then comes out in NHWC memory, and is returned as an NCHW
*view* of it (exactly what ``torch.channels_last`` is): every other function
works on logical NCHW indices, so the layout is invisible to them.
"""

from __future__ import annotations

import numpy as np

from deeper.scratch.backend import compute_dtype, get_xp


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _as_strided(xp, a, shape, strides):
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


def pad_channels_last(x, padding: int):
    """``x`` (N, C, H, W) zero-padded on H and W, as a C-contiguous (N, H+2p, W+2p, C) array."""
    xp = get_xp(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=x.dtype)
    padded[:, padding : padding + h, padding : padding + w, :] = x.transpose(0, 2, 3, 1)
    return padded


def sliding_windows(padded, kh: int, kw: int, stride: int = 1):
    """Every ``kh x kw`` window of a channels-last array, as a read-only view (N, Ho, Wo, kh, kw, C).

    The stride trick: window ``(i, j)`` starts ``i * stride`` rows and ``j * stride``
    columns further into the same memory, so the view is built by choosing strides,
    without copying a single number.
    """
    xp = get_xp(padded)
    n, hp, wp, c = padded.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    sn, sh, sw, sc = padded.strides
    return _as_strided(xp, padded, (n, ho, wo, kh, kw, c), (sn, sh * stride, sw * stride, sh, sw, sc))


def im2col(x, kh: int, kw: int, stride: int = 1, padding: int = 0, *, out=None):
    """The (N*Ho*Wo, kh*kw*C) matrix whose rows are the receptive fields of the output pixels.

    Row ``(n, y, x)`` holds the window under output pixel ``(y, x)`` of image ``n``,
    ordered (kernel row, kernel column, channel); multiply by :func:`weight_matrix`
    to convolve.  ``out`` may be a preallocated array of that shape.
    """
    xp = get_xp(x)
    n, c, h, w = x.shape
    win = sliding_windows(pad_channels_last(x, padding), kh, kw, stride)
    _, ho, wo, *_ = win.shape
    if out is None:
        out = xp.empty((n * ho * wo, kh * kw * c), dtype=x.dtype)
    out.reshape(n, ho, wo, kh, kw, c)[...] = win  # the one copy
    return out


def weight_matrix(weight):
    """A PyTorch-layout conv weight (F, C, kh, kw) as the (F, kh*kw*C) matrix matching :func:`im2col`."""
    f = weight.shape[0]
    return weight.transpose(0, 2, 3, 1).reshape(f, -1)


def col2im(dcol, x_shape, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """The adjoint of :func:`im2col`: add every row's window back onto the input it came from.

    Loops over the ``kh * kw`` kernel positions only; each pass adds one shifted,
    strided slice of the whole batch.  Returns an (N, C, H, W) view of NHWC memory.
    """
    xp = get_xp(dcol)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    windows = dcol.reshape(n, ho, wo, kh, kw, c)
    dpad = xp.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=dcol.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + stride * ho, stride), slice(j, j + stride * wo, stride)
            dpad[:, rows, cols, :] += windows[:, :, :, i, j, :]
    return dpad[:, padding : padding + h, padding : padding + w, :].transpose(0, 3, 1, 2)


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0, *, col_out=None):
    """Cross-correlation (PyTorch's and the book's "convolution") by im2col: ``(out, col)``.

    ``col`` is what :func:`conv2d_backward` needs.  ``out`` is (N, F, Ho, Wo) in
    channels-last memory.  float16 inputs are widened to float32 *before* im2col
    (exactly), so the products are summed in float32 and the large column matrix
    is never converted; only the output is rounded back to float16.
    """
    n, c, h, w = x.shape
    f, c_w, kh, kw = weight.shape
    if c != c_w:
        raise ValueError(f"conv2d: input has {c} channels but the weight expects {c_w}")
    acc = compute_dtype(x.dtype)
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    col = im2col(x.astype(acc, copy=False), kh, kw, stride, padding, out=col_out)
    out = col @ weight_matrix(weight).astype(acc, copy=False).T  # (N*Ho*Wo, F): NHWC
    if bias is not None:
        out += bias
    return out.astype(x.dtype, copy=False).reshape(n, ho, wo, f).transpose(0, 3, 1, 2), col


def conv2d_backward(
    dout, col, x_shape, weight, stride: int = 1, padding: int = 0, *, need_dx: bool = True, dcol_out=None
):
    """Gradients ``(dx, dweight, dbias)`` of :func:`conv2d` (``dx`` is None when not needed).

    ``dcol_out`` may be a preallocated column matrix for :func:`conv2d_input_grad`.
    """
    xp = get_xp(dout)
    f, c, kh, kw = weight.shape
    acc = col.dtype
    # the output gradient as an (N*Ho*Wo, F) matrix: a free reshape when dout is channels-last
    d = dout.transpose(0, 2, 3, 1).reshape(-1, f).astype(acc, copy=False)
    dbias = xp.einsum("mf->f", d).astype(dout.dtype, copy=False)  # column sums (einsum: ~7x .sum(axis=0))
    # col^T d rather than d^T col: the same numbers, but OpenBLAS runs the latter (a transposed
    # (F, N*Ho*Wo) left operand) up to 70x slower on two threads in float64
    dweight = (col.T @ d).T.reshape(f, kh, kw, c).transpose(0, 3, 1, 2)
    dweight = xp.ascontiguousarray(dweight, dtype=weight.dtype)
    if not need_dx:
        return None, dweight, dbias
    n, _, ho, wo = dout.shape
    d4 = d.reshape(n, ho, wo, f).transpose(0, 3, 1, 2)
    dx = conv2d_input_grad(d4, weight.astype(acc, copy=False), x_shape, stride, padding, col_out=dcol_out)
    return dx.astype(dout.dtype, copy=False), dweight, dbias


def conv2d_input_grad(dout, weight, x_shape, stride: int = 1, padding: int = 0, *, col_out=None):
    """The gradient of a convolution with respect to its input.

    Output pixel ``(y, x)`` read input pixels ``(y + i - p, x + j - p)`` through kernel
    tap ``(i, j)``, so with stride 1 the input gradient is itself a convolution: the
    output gradient, zero-padded by ``k - 1 - p``, correlated with the kernel flipped
    in both directions and with its input/output channels swapped (a "transposed
    convolution").  That is one im2col and one matrix product, like the forward pass.
    Other strides take the book's way, ``col2im(dout @ W)`` (the two are tested equal).
    """
    f, c, kh, kw = weight.shape
    if stride == 1 and kh == kw and padding <= kh - 1:
        flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw)
        dx, _ = conv2d(dout, flipped, None, 1, kh - 1 - padding, col_out=col_out)
        return dx
    d = dout.transpose(0, 2, 3, 1).reshape(-1, f)
    return col2im(d @ weight_matrix(weight), x_shape, kh, kw, stride, padding)


def conv2d_naive(x, weight, bias=None, stride: int = 1, padding: int = 0):
    """The definition: each output pixel is the dot product of the kernel with the window under it."""
    xp = get_xp(x)
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = xp.zeros((n, f, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = xpad[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]  # (N, C, kh, kw)
            out[:, :, i, j] = xp.tensordot(window, weight, axes=([1, 2, 3], [1, 2, 3]))  # (N, F)
    if bias is not None:
        out += bias.reshape(1, f, 1, 1)
    return out


def conv2d_naive_backward(dout, x, weight, stride: int = 1, padding: int = 0):
    """Gradients ``(dx, dweight, dbias)`` of :func:`conv2d_naive`, by the same loop run backwards."""
    xp = get_xp(x)
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    ho, wo = dout.shape[2:]
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxpad = xp.zeros_like(xpad)
    dweight = xp.zeros_like(weight)
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * stride, i * stride + kh)
            cols = slice(j * stride, j * stride + kw)
            g = dout[:, :, i, j]  # (N, F): how much the loss wants each output to move
            dweight += xp.tensordot(g, xpad[:, :, rows, cols], axes=([0], [0]))
            dxpad[:, :, rows, cols] += xp.tensordot(g, weight, axes=([1], [0]))
    dx = dxpad[:, :, padding : padding + h, padding : padding + w]
    return dx, dweight, dout.sum(axis=(0, 2, 3))


def pool2d(x, kernel: int, stride: int, padding: int = 0, mode: str = "max"):
    """Max or average pooling: ``(out, padded input)``.

    A loop over the ``kernel x kernel`` window positions, each a strided view of
    the whole batch.  Max pooling pads with -inf; average pooling pads with zeros
    and divides by the full window size (PyTorch's default ``count_include_pad``).
    """
    xp = get_xp(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    if padding:
        fill = -np.inf if mode == "max" else 0
        xpad = xp.full((n, c, h + 2 * padding, w + 2 * padding), fill, dtype=x.dtype)
        xpad[:, :, padding : padding + h, padding : padding + w] = x
    else:
        xpad = x
    out = None
    for i in range(kernel):
        for j in range(kernel):
            view = xpad[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
            if out is None:
                out = view.astype(compute_dtype(x.dtype) if mode == "avg" else x.dtype, order="K", copy=True)
            elif mode == "max":
                xp.maximum(out, view, out=out)
            else:
                out += view
    if mode == "avg":
        out = (out / (kernel * kernel)).astype(x.dtype)
    return out, xpad


def pool2d_backward(dout, out, xpad, x_shape, kernel: int, stride: int, padding: int = 0, mode: str = "max"):
    """Gradient of :func:`pool2d` w.r.t. its input.

    Max pooling sends each output's gradient to the *first* position (in row-major
    window order) that holds the maximum, as PyTorch does, so ties never double it.
    """
    xp = get_xp(dout)
    n, c, h, w = x_shape
    ho, wo = out.shape[2:]
    dxpad = xp.zeros_like(xpad, dtype=dout.dtype)  # same memory layout as the input
    claimed = xp.zeros_like(out, dtype=bool) if mode == "max" else None
    share = dout / (kernel * kernel) if mode == "avg" else None
    for i in range(kernel):
        for j in range(kernel):
            rows, cols = slice(i, i + stride * ho, stride), slice(j, j + stride * wo, stride)
            sl = (slice(None), slice(None), rows, cols)
            if mode == "max":
                hit = (xpad[sl] == out) > claimed  # a maximum here, and none at an earlier position
                dxpad[sl] += dout * hit
                claimed |= hit
            else:
                dxpad[sl] += share
    return dxpad[:, :, padding : padding + h, padding : padding + w]


def softmax(x, axis: int = -1):
    """Softmax along ``axis`` (computed in at least float32, shifted by the maximum for stability)."""
    xp = get_xp(x)
    z = x.astype(compute_dtype(x.dtype), copy=False)
    z = z - z.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def target_distribution(t, num_classes: int, dtype, label_smoothing: float = 0.0):
    """Targets as class probabilities (N, K): one-hot for class indices, smoothed by ``label_smoothing``.

    Smoothing mixes in the uniform distribution: ``(1 - eps) * target + eps / K``
    (what ``torch.nn.functional.cross_entropy(label_smoothing=eps)`` does).
    """
    xp = get_xp(t)
    if t.ndim == 1:
        q = xp.zeros((t.shape[0], num_classes), dtype=dtype)
        q[xp.arange(t.shape[0]), t] = 1
    else:
        q = t.astype(dtype, copy=True)
    if label_smoothing:
        q = q * (1 - label_smoothing) + label_smoothing / num_classes
    return q


def log_softmax(x, axis: int = -1):
    """``log(softmax(x))`` without forming the softmax (in at least float32)."""
    xp = get_xp(x)
    z = x.astype(compute_dtype(x.dtype), copy=False)
    z = z - z.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def cross_entropy(logits, t, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy of ``logits`` (N, K) against class indices or probabilities."""
    logp = log_softmax(logits, axis=1)
    q = target_distribution(t, logits.shape[1], logp.dtype, label_smoothing)
    return -(q * logp).sum() / logits.shape[0]


def numerical_gradient(f, x, eps: float = 1e-6):
    """``df/dx`` by central differences, one element at a time (the book's check; use float64).

    ``f`` takes no argument and reads ``x``, which is perturbed in place and restored.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = saved + eps
        plus = float(f())
        x[idx] = saved - eps
        minus = float(f())
        x[idx] = saved
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
