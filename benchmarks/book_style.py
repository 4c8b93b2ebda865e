"""The book's DeepConvNet training step, re-typed from its algorithms, as the timing baseline.

"Deep Learning from Scratch" (chapters 7-8) implements the network in float64
NumPy: im2col fills a (N, C, kh, kw, Ho, Wo) array one kernel tap at a time and
transposes it to (N*Ho*Wo, C*kh*kw); col2im is the reverse loop; pooling runs
im2col too and keeps the argmax; ReLU masks with boolean indexing; Dropout is
not inverted; Adam folds the bias corrections into the learning rate.  This
module reproduces those algorithms (not the code) so that
``benchmarks/scratch_speed.py`` can time the book's approach on the same
machine, in the same run, as deeper's scratch engine and torch.
"""

from __future__ import annotations

import numpy as np


def im2col(x, fh, fw, stride=1, pad=0):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow))
    for y in range(fh):
        for x_ in range(fw):
            col[:, :, y, x_, :, :] = img[:, :, y : y + stride * oh : stride, x_ : x_ + stride * ow : stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1))
    for y in range(fh):
        for x_ in range(fw):
            img[:, :, y : y + stride * oh : stride, x_ : x_ + stride * ow : stride] += col[:, :, y, x_, :, :]
    return img[:, :, pad : h + pad, pad : w + pad]


class Conv:
    def __init__(self, W, b, pad):
        self.W, self.b, self.pad = W, b, pad

    def forward(self, x):
        fn, c, fh, fw = self.W.shape
        n, _, h, w = x.shape
        oh, ow = h + 2 * self.pad - fh + 1, w + 2 * self.pad - fw + 1
        self.x, self.col = x, im2col(x, fh, fw, 1, self.pad)
        self.col_W = self.W.reshape(fn, -1).T
        out = self.col @ self.col_W + self.b
        return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        fn, c, fh, fw = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
        self.db = dout.sum(axis=0)
        self.dW = (self.col.T @ dout).transpose(1, 0).reshape(fn, c, fh, fw)
        return col2im(dout @ self.col_W.T, self.x.shape, fh, fw, 1, self.pad)


class Pool:
    def forward(self, x):
        n, c, h, w = x.shape
        oh, ow = h // 2, w // 2
        col = im2col(x, 2, 2, 2, 0).reshape(-1, 4)
        self.x, self.arg_max = x, col.argmax(axis=1)
        return col.max(axis=1).reshape(n, oh, ow, c).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        dmax = np.zeros((dout.size, 4))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dcol = dmax.reshape(dout.shape + (4,)).reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return col2im(dcol, self.x.shape, 2, 2, 2, 0)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW, self.db = self.x.T @ dout, dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.shape)


class Dropout:
    def __init__(self, rng):
        self.rng = rng

    def forward(self, x):
        self.mask = self.rng.random(x.shape) > 0.5
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class BookDeepConvNet:
    """float64 throughout, W7/W8 stored (in, out) as in the book."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        chans = [1, 16, 16, 32, 32, 64, 64]
        self.layers = []
        for i, pad in enumerate((1, 1, 1, 2, 1, 1)):
            w = rng.standard_normal((chans[i + 1], chans[i], 3, 3)) * np.sqrt(2.0 / (chans[i] * 9))
            self.layers += [Conv(w, np.zeros(chans[i + 1]), pad), Relu()]
            if i % 2 == 1:
                self.layers.append(Pool())
        self.layers += [
            Affine(rng.standard_normal((1024, 50)) * np.sqrt(2.0 / 1024), np.zeros(50)),
            Relu(),
            Dropout(rng),
            Affine(rng.standard_normal((50, 10)) * np.sqrt(2.0 / 50), np.zeros(10)),
            Dropout(rng),
        ]
        self.params = [(layer, k) for layer in self.layers if hasattr(layer, "W") for k in ("W", "b")]
        self.m = [np.zeros_like(getattr(layer, k)) for layer, k in self.params]
        self.v = [np.zeros_like(getattr(layer, k)) for layer, k in self.params]
        self.iter = 0

    def train_step(self, x, t, lr=0.001, beta1=0.9, beta2=0.999):
        for layer in self.layers:
            x = layer.forward(x)
        y = np.exp(x - x.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
        loss = -np.log(y[np.arange(len(t)), t] + 1e-7).mean()
        dout = y.copy()
        dout[np.arange(len(t)), t] -= 1
        dout /= len(t)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        self.iter += 1
        lr_t = lr * np.sqrt(1.0 - beta2**self.iter) / (1.0 - beta1**self.iter)
        for i, (layer, k) in enumerate(self.params):
            g = getattr(layer, "d" + k)
            self.m[i] += (1 - beta1) * (g - self.m[i])
            self.v[i] += (1 - beta2) * (g**2 - self.v[i])
            getattr(layer, k)[...] -= lr_t * self.m[i] / (np.sqrt(self.v[i]) + 1e-7)
        return float(loss)
