"""The scratch engine's layers: gradients against float64 central differences, and against PyTorch.

Every layer is checked twice:

- its backward pass against numerical differentiation of its own forward pass
  (``f = sum(forward(x) * R)`` for a fixed random ``R``; relative error < 1e-6);
- its forward and backward passes against PyTorch's on identical inputs and weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_limits

from deeper.scratch import functions as F
from deeper.scratch import layers as L
from deeper.scratch.functions import numerical_gradient


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrix products are slower with several BLAS threads, badly so on a busy machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


RNG = np.random.default_rng(1234)


def rel_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def away_from_zero(shape, gap=0.05):
    """Random values with |x| >= gap, so that ReLU's kink is far from any finite-difference step."""
    x = RNG.uniform(gap, 1.5, shape)
    return x * RNG.choice([-1.0, 1.0], shape)


def distinct(shape):
    """Values all different by far more than the finite-difference step (max pooling has no ties)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n) / n * 4 - 2).reshape(shape)


def grad_check(layer, x, *, params=True):
    """Compare ``layer.backward`` with central differences for the input and every parameter."""
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)

    def f():
        return float((layer.forward(x) * R).sum())

    layer.forward(x)
    dx = layer.backward(R.copy())
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    numeric = {"x": numerical_gradient(f, x)}
    if params:
        for k, p in layer.params.items():
            numeric[k] = numerical_gradient(f, p)
    for k, num in numeric.items():
        err = rel_error(analytic[k], num)
        assert err < 1e-6, f"{type(layer).__name__}: gradient of {k} off by {err:.2e}"
    return analytic


# ---- gradient checks (float64 central differences) -----------------------------------------------


def test_affine_gradients_including_flattened_4d_inputs():
    grad_check(L.Affine(RNG.standard_normal((4, 6)), RNG.standard_normal(4)), RNG.standard_normal((3, 6)))
    layer = L.Affine(RNG.standard_normal((5, 12)), RNG.standard_normal(5))
    g = grad_check(layer, RNG.standard_normal((2, 3, 2, 2)))
    assert g["x"].shape == (2, 3, 2, 2)


@pytest.mark.parametrize(
    "layer", [L.ReLU(), L.Sigmoid(), L.Tanh(), L.Flatten()], ids=lambda layer: type(layer).__name__
)
def test_activation_gradients(layer):
    grad_check(layer, away_from_zero((3, 2, 4, 4)))


@pytest.mark.parametrize(
    "cfg",
    [
        dict(c=2, f=3, k=3, stride=1, padding=1, hw=(6, 6)),
        dict(c=3, f=2, k=3, stride=2, padding=0, hw=(7, 6)),
        dict(c=1, f=4, k=5, stride=1, padding=2, hw=(5, 5)),
        dict(c=2, f=2, k=2, stride=3, padding=1, hw=(8, 7)),
    ],
    ids=lambda c: f"k{c['k']}s{c['stride']}p{c['padding']}",
)
@pytest.mark.parametrize("impl", ["im2col", "naive"])
def test_conv_gradients(cfg, impl):
    w = RNG.standard_normal((cfg["f"], cfg["c"], cfg["k"], cfg["k"]))
    layer = L.Conv2d(
        w, RNG.standard_normal(cfg["f"]), stride=cfg["stride"], padding=cfg["padding"], impl=impl
    )
    grad_check(layer, RNG.standard_normal((2, cfg["c"], *cfg["hw"])))


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1)])
@pytest.mark.parametrize("cls", [L.MaxPool2d, L.AvgPool2d])
def test_pool_gradients(cls, kernel, stride, padding):
    grad_check(cls(kernel, stride, padding), distinct((2, 3, 7, 6)))


def test_dropout_gradient_with_a_fixed_mask():
    layer = L.Dropout(0.4, rng=np.random.default_rng(0))
    x = RNG.standard_normal((6, 5))
    mask = RNG.random((6, 5)) >= 0.4
    layer.forward = lambda x, _f=layer.forward: _f(x, mask=mask)  # the same mask in every evaluation
    g = grad_check(layer, x, params=False)
    assert np.all(g["x"][~mask] == 0) and np.all(g["x"][mask] != 0)  # dropped units get no gradient


@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 3, 2)], ids=["1d", "2d"])
def test_batchnorm_gradients_in_training_mode(shape):
    layer = L.BatchNorm(shape[1], dtype=np.float64)
    layer.params["weight"][...] = RNG.uniform(0.5, 1.5, shape[1])
    layer.params["bias"][...] = RNG.standard_normal(shape[1])
    grad_check(layer, RNG.standard_normal(shape) * 2 + 1)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_softmax_with_loss_gradient(targets, smoothing):
    layer = L.SoftmaxWithLoss(smoothing)
    x = RNG.standard_normal((5, 4)) * 3
    t = RNG.integers(0, 4, 5) if targets == "indices" else RNG.dirichlet(np.ones(4), 5)
    layer.forward(x, t)
    analytic = layer.backward()
    numeric = numerical_gradient(lambda: layer.forward(x, t), x)
    assert rel_error(analytic, numeric) < 1e-6


# ---- against PyTorch, identical inputs and weights -------------------------------------------------


def torch_grads(fn, x, *params, R):
    """Forward of ``fn`` in torch (float64) and the gradients of ``sum(out * R)``."""
    tx = torch.tensor(x, requires_grad=True)
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    out = fn(tx, *tp)
    (out * torch.from_numpy(R)).sum().backward()
    return out.detach().numpy(), tx.grad.numpy(), [p.grad.numpy() for p in tp]


def assert_close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def test_affine_matches_torch_linear():
    x, w, b = RNG.standard_normal((7, 5)), RNG.standard_normal((3, 5)), RNG.standard_normal(3)
    layer = L.Affine(w.copy(), b.copy())
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)
    t_out, t_dx, (t_dw, t_db) = torch_grads(TF.linear, x, w, b, R=R)
    assert_close(out, t_out)
    assert_close(layer.backward(R), t_dx)
    assert_close(layer.grads["weight"], t_dw)
    assert_close(layer.grads["bias"], t_db)


@pytest.mark.parametrize(
    "layer, fn",
    [(L.ReLU(), torch.relu), (L.Sigmoid(), torch.sigmoid), (L.Tanh(), torch.tanh)],
    ids=["relu", "sigmoid", "tanh"],
)
def test_activations_match_torch(layer, fn):
    x = RNG.standard_normal((4, 3, 5, 5)) * 4
    x[0, 0, 0, :3] = 0.0  # ReLU's gradient at 0 is 0 in both
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)
    t_out, t_dx, _ = torch_grads(fn, x, R=R)
    assert_close(out, t_out, 1e-10)
    assert_close(layer.backward(R), t_dx, 1e-10)


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("impl", ["im2col", "naive"])
def test_conv_matches_torch(stride, padding, impl):
    x, w, b = RNG.standard_normal((3, 4, 9, 8)), RNG.standard_normal((5, 4, 3, 3)), RNG.standard_normal(5)
    layer = L.Conv2d(w.copy(), b.copy(), stride=stride, padding=padding, impl=impl)
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)
    t_out, t_dx, (t_dw, t_db) = torch_grads(
        lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=padding), x, w, b, R=R
    )
    assert_close(out, t_out, 1e-11)
    assert_close(layer.backward(R), t_dx, 1e-11)
    assert_close(layer.grads["weight"], t_dw, 1e-11)
    assert_close(layer.grads["bias"], t_db, 1e-11)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_matches_torch_even_with_ties(kernel, stride, padding):
    x = RNG.integers(-2, 3, (3, 2, 8, 7)).astype(np.float64)  # few distinct values: ties everywhere
    x[0, 0] = 0.0  # a whole plane of ties (what ReLU leaves behind)
    layer = L.MaxPool2d(kernel, stride, padding)
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)
    t_out, t_dx, _ = torch_grads(lambda x: TF.max_pool2d(x, kernel, stride, padding), x, R=R)
    assert_close(out, t_out, 0)
    assert_close(layer.backward(R), t_dx, 1e-14)  # each gradient goes to the first maximum, as in torch


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_avg_pool_matches_torch(kernel, stride, padding):
    x = RNG.standard_normal((2, 3, 7, 8))
    layer = L.AvgPool2d(kernel, stride, padding)
    out = layer.forward(x)
    R = RNG.standard_normal(out.shape)
    t_out, t_dx, _ = torch_grads(lambda x: TF.avg_pool2d(x, kernel, stride, padding), x, R=R)
    assert_close(out, t_out)
    assert_close(layer.backward(R), t_dx)


def test_dropout_matches_torch_given_the_same_mask():
    x = RNG.uniform(0.5, 1.5, (50, 40))
    tx = torch.tensor(x, requires_grad=True)
    t_out = TF.dropout(tx, 0.3, training=True)
    R = RNG.standard_normal(x.shape)
    (t_out * torch.from_numpy(R)).sum().backward()
    mask = t_out.detach().numpy() != 0  # x > 0, so the kept units are exactly the non-zero outputs
    layer = L.Dropout(0.3)
    assert_close(layer.forward(x, mask=mask), t_out.detach().numpy())
    assert_close(layer.backward(R), tx.grad.numpy())
    layer.training = False
    assert layer.forward(x) is x  # inverted dropout: identity at inference


def test_dropout_masks_drop_the_right_share_and_the_books_variant_scales_at_test_time():
    x = np.ones((200, 500))
    inverted = L.Dropout(0.5, rng=np.random.default_rng(0))
    kept = inverted.forward(x) != 0
    assert abs(kept.mean() - 0.5) < 0.01
    book = L.Dropout(0.5, inverted=False, rng=np.random.default_rng(0))
    assert set(np.unique(book.forward(x))) == {0.0, 1.0}
    book.training = False
    assert_close(book.forward(x), 0.5 * x)  # same expected value as in training


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 5)], ids=["1d", "2d"])
def test_batchnorm_matches_torch_in_training_and_evaluation(shape):
    x = RNG.standard_normal(shape) * 3 + 2
    w, b = RNG.uniform(0.5, 2, shape[1]), RNG.standard_normal(shape[1])
    tbn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(shape[1]).double()
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(w))
        tbn.bias.copy_(torch.from_numpy(b))
    layer = L.BatchNorm(shape[1], dtype=np.float64)
    layer.params["weight"][...], layer.params["bias"][...] = w, b
    for _ in range(3):  # running statistics evolve the same way
        tx = torch.tensor(x, requires_grad=True)
        t_out = tbn(tx)
        R = RNG.standard_normal(shape)
        (t_out * torch.from_numpy(R)).sum().backward()
        assert_close(layer.forward(x), t_out.detach().numpy(), 1e-10)
        assert_close(layer.backward(R), tx.grad.numpy(), 1e-10)
        assert_close(layer.grads["weight"], tbn.weight.grad.numpy(), 1e-10)
        assert_close(layer.grads["bias"], tbn.bias.grad.numpy(), 1e-10)
        tbn.weight.grad = tbn.bias.grad = None
        x = x * 1.1 + 0.3
    for key in ("running_mean", "running_var"):
        assert_close(layer.buffers[key], getattr(tbn, key).numpy(), 1e-12)
    assert int(layer.buffers["num_batches_tracked"]) == int(tbn.num_batches_tracked) == 3
    tbn.eval()
    layer.training = False
    assert_close(layer.forward(x), tbn(torch.from_numpy(x)).detach().numpy(), 1e-10)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_softmax_with_loss_matches_torch_cross_entropy(targets, smoothing):
    x = RNG.standard_normal((6, 5)) * 4
    t = RNG.integers(0, 5, 6) if targets == "indices" else RNG.dirichlet(np.ones(5), 6)
    layer = L.SoftmaxWithLoss(smoothing)
    loss = layer.forward(x, t)
    tx = torch.tensor(x, requires_grad=True)
    t_loss = TF.cross_entropy(tx, torch.from_numpy(t), label_smoothing=smoothing)
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    assert_close(layer.backward(), tx.grad.numpy())


# ---- naive vs im2col convolution ------------------------------------------------------------------


@pytest.mark.parametrize("stride, padding, k", [(1, 0, 3), (1, 1, 3), (2, 2, 5), (3, 1, 2)])
def test_naive_and_im2col_convolution_agree(stride, padding, k):
    x, w, b = RNG.standard_normal((2, 3, 10, 9)), RNG.standard_normal((4, 3, k, k)), RNG.standard_normal(4)
    out, col = F.conv2d(x, w, b, stride, padding)
    naive = F.conv2d_naive(x, w, b, stride, padding)
    assert_close(out, naive, 1e-12)
    d = RNG.standard_normal(out.shape)
    fast = F.conv2d_backward(d, col, x.shape, w, stride, padding)
    slow = F.conv2d_naive_backward(d, x, w, stride, padding)
    for a, s in zip(fast, slow):
        assert_close(a, s, 1e-12)


def test_col2im_is_the_adjoint_of_im2col():
    x = RNG.standard_normal((2, 3, 7, 8))
    col = F.im2col(x, 3, 3, stride=2, padding=1)
    C = RNG.standard_normal(col.shape)
    back = F.col2im(C, x.shape, 3, 3, stride=2, padding=1)
    assert (col * C).sum() == pytest.approx((x * back).sum(), rel=1e-12)  # <im2col x, C> = <x, col2im C>


@pytest.mark.parametrize("k, padding", [(3, 0), (3, 1), (3, 2), (5, 2), (5, 4)])
def test_the_transposed_convolution_input_gradient_equals_col2im(k, padding):
    x_shape = (2, 3, 9, 8)
    w = RNG.standard_normal((4, 3, k, k))
    ho, wo = 9 + 2 * padding - k + 1, 8 + 2 * padding - k + 1
    dout = RNG.standard_normal((2, 4, ho, wo))
    d = dout.transpose(0, 2, 3, 1).reshape(-1, 4)
    book = F.col2im(d @ F.weight_matrix(w), x_shape, k, k, 1, padding)
    assert_close(F.conv2d_input_grad(dout, w, x_shape, 1, padding), book, 1e-12)


def test_im2col_rows_are_the_receptive_fields():
    x = np.arange(2 * 2 * 4 * 4, dtype=np.float64).reshape(2, 2, 4, 4)
    col = F.im2col(x, 3, 3, stride=1, padding=0)
    assert col.shape == (2 * 2 * 2, 3 * 3 * 2)
    # row (image 1, y 1, x 0) holds x[1, :, 1:4, 0:3], laid out (kernel row, kernel column, channel)
    np.testing.assert_array_equal(col[4 + 2].reshape(3, 3, 2), x[1, :, 1:4, 0:3].transpose(1, 2, 0))


# ---- precisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float16, 2e-2)])
def test_conv_pool_affine_keep_their_precision_and_stay_close_to_float64(dtype, tol):
    x, w, b = (
        RNG.random((4, 3, 12, 12)),
        RNG.standard_normal((6, 3, 3, 3)) * 0.3,
        RNG.standard_normal(6) * 0.1,
    )
    ref = L.MaxPool2d(2).forward(L.Conv2d(w, b, padding=1).forward(x))
    conv = L.Conv2d(w.astype(dtype), b.astype(dtype), padding=1)
    out = L.MaxPool2d(2).forward(conv.forward(x.astype(dtype)))
    assert out.dtype == dtype
    assert rel_error(out, ref) < tol
    dx = conv.backward(np.ones((4, 6, 12, 12), dtype))
    assert dx.dtype == dtype and conv.grads["weight"].dtype == dtype
    ref_dx = L.Conv2d(w, b, padding=1)
    ref_dx.forward(x)
    assert rel_error(dx, ref_dx.backward(np.ones((4, 6, 12, 12)))) < tol
