"""The optimizer registry against the update rules of the notes (004, "optimizer")."""

import math

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.train import TrainConfig, build_run
from deeper.train.optim import create_optimizer, get_optimizer_entry, list_optimizers

W0 = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
G1 = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
G2 = torch.tensor([-0.3, 0.4, 1.5], dtype=torch.float64)


def steps(name, grads, lr, **opts):
    """Apply ``grads`` one after the other; return the weights after each step."""
    w = nn.Parameter(W0.clone())
    opt = create_optimizer(name, [w], lr=lr, **opts)
    out = []
    for g in grads:
        w.grad = g.clone()
        opt.step()
        out.append(w.detach().clone())
    return out


def test_all_optimizers_of_the_notes_are_registered():
    assert set(list_optimizers()) >= {
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
    }


@pytest.mark.parametrize("name", list_optimizers())
def test_each_optimizer_reduces_a_convex_quadratic(name):
    a = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)  # positive definite

    def f(w):
        return 0.5 * w @ a @ w

    w = nn.Parameter(torch.tensor([2.0, -3.0], dtype=torch.float64))
    start = f(w).item()
    opt = create_optimizer(name, [w], lr=0.05 if name != "adadelta" else 1.0, weight_decay=0.0)
    for _ in range(200):
        opt.zero_grad()
        f(w).backward()
        opt.step()
    assert f(w).item() < 0.5 * start, name
    assert math.isfinite(f(w).item())


def test_sgd_is_w_minus_lr_g():
    (w,) = steps("sgd", [G1], 0.1)
    assert torch.allclose(w, W0 - 0.1 * G1)


def test_momentum_matches_the_notes():
    # a_{t+1} = beta a_t + g_t ;  W_{t+1} = W_t - lr a_{t+1}
    w1, w2 = steps("momentum", [G1, G2], 0.1, momentum=0.8)
    a1 = G1
    a2 = 0.8 * a1 + G2
    assert torch.allclose(w1, W0 - 0.1 * a1)
    assert torch.allclose(w2, W0 - 0.1 * a1 - 0.1 * a2)


def test_nesterov_matches_the_notes_look_ahead_formula():
    """The notes: a_{t+1} = beta a_t + grad L(W_t - lr beta a_t); W_{t+1} = W_t - lr a_{t+1}.

    torch stores the look-ahead point V_t = W_t - lr beta a_t instead of W_t; both
    describe the same trajectory, so V from torch must equal W - lr beta a from the notes
    at every step (here on a quadratic, where the gradient depends on the point).
    """
    lr, beta = 0.05, 0.9
    a_mat = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=torch.float64)

    def grad(w):
        return a_mat @ w

    w_notes, a = W0.clone(), torch.zeros(3, dtype=torch.float64)
    v = nn.Parameter(W0.clone())
    opt = create_optimizer("nesterov", [v], lr=lr, momentum=beta)
    for _ in range(10):
        a = beta * a + grad(w_notes - lr * beta * a)
        w_notes = w_notes - lr * a
        v.grad = grad(v.detach())
        opt.step()
        assert torch.allclose(v.detach(), w_notes - lr * beta * a)
    # one hand-computed step from rest: V_1 = W_0 - lr (1 + beta) g
    (v1,) = steps("nesterov", [G1], 0.1, momentum=0.9)
    assert torch.allclose(v1, W0 - 0.1 * 1.9 * G1)


def test_adagrad_matches_the_notes():
    # G_t = sum of squared gradients; W_{t+1} = W_t - lr / sqrt(G_t + eps) g_t
    w1, w2 = steps("adagrad", [G1, G2], 0.1, eps=1e-10)
    g_sum1, g_sum2 = G1**2, G1**2 + G2**2
    assert torch.allclose(w1, W0 - 0.1 * G1 / torch.sqrt(g_sum1), atol=1e-8)  # = W0 - lr sign(g)
    assert torch.allclose(w2, w1 - 0.1 * G2 / torch.sqrt(g_sum2), atol=1e-8)


def test_adadelta_matches_the_notes_exactly():
    # G_t = gamma G + (1-gamma) g^2 ; dW = -sqrt(H_{t-1} + eps) / sqrt(G_t + eps) g ; H_t = gamma H + (1-gamma) dW^2
    gamma, eps = 0.9, 1e-6
    w1, w2 = steps("adadelta", [G1, G2], 1.0, rho=gamma, eps=eps)
    w, big_g, big_h = W0.clone(), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    expected = []
    for g in (G1, G2):
        big_g = gamma * big_g + (1 - gamma) * g**2
        dw = -torch.sqrt(big_h + eps) / torch.sqrt(big_g + eps) * g
        big_h = gamma * big_h + (1 - gamma) * dw**2
        w = w + dw
        expected.append(w)
    assert torch.allclose(w1, expected[0], rtol=0, atol=1e-12)
    assert torch.allclose(w2, expected[1], rtol=0, atol=1e-12)


def test_rmsprop_matches_the_notes():
    # G_t = gamma G + (1-gamma) g^2 ; W_{t+1} = W_t - lr / sqrt(G_t + eps) g
    gamma = 0.9
    w1, w2 = steps("rmsprop", [G1, G2], 0.01, alpha=gamma, eps=1e-12)
    g1 = (1 - gamma) * G1**2
    g2 = gamma * g1 + (1 - gamma) * G2**2
    assert torch.allclose(w1, W0 - 0.01 * G1 / torch.sqrt(g1), atol=1e-9)
    assert torch.allclose(w2, w1 - 0.01 * G2 / torch.sqrt(g2), atol=1e-9)


def adam_reference(grads, lr, b1, b2, eps, decoupled=0.0):
    """The notes' Adam: m, v as EMAs; W -= lr sqrt(1-b2^t)/(1-b1^t) m / sqrt(v) (eps -> 0)."""
    w, m, v, out = W0.clone(), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), []
    for t, g in enumerate(grads, 1):
        w = w - lr * decoupled * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        w = w - lr / (torch.sqrt(v) + eps * math.sqrt(1 - b2**t)) * math.sqrt(1 - b2**t) / (1 - b1**t) * m
        out.append(w)
    return out


def test_adam_matches_the_notes():
    got = steps("adam", [G1, G2], 0.01, beta1=0.8, beta2=0.95, eps=1e-8)
    for a, b in zip(got, adam_reference([G1, G2], 0.01, 0.8, 0.95, 1e-8)):
        assert torch.allclose(a, b, atol=1e-12)


def test_adamw_decays_the_weights_outside_the_adaptive_step():
    got = steps("adamw", [G1, G2], 0.01, weight_decay=0.1)
    for a, b in zip(got, adam_reference([G1, G2], 0.01, 0.9, 0.999, 1e-8, decoupled=0.1)):
        assert torch.allclose(a, b, atol=1e-12)


def test_l2_weight_decay_is_the_gradient_of_the_norm_penalty():
    # total cost = loss + alpha/2 ||W||^2  ->  gradient g + alpha W
    (w,) = steps("sgd", [G1], 0.1, weight_decay=0.01)
    assert torch.allclose(w, W0 - 0.1 * (G1 + 0.01 * W0))


def test_coupled_and_decoupled_decay_differ_under_adam():
    """With a zero loss gradient, L2 decay through Adam moves every weight by lr (Adam normalises the
    penalty's gradient away), while AdamW shrinks each weight in proportion to it."""
    zero = torch.zeros(3, dtype=torch.float64)
    (l2,) = steps("adam", [zero], 0.01, weight_decay=0.1)
    (dec,) = steps("adamw", [zero], 0.01, weight_decay=0.1)
    assert torch.allclose(W0 - l2, 0.01 * torch.sign(W0), atol=1e-6)
    assert torch.allclose(dec, W0 * (1 - 0.01 * 0.1))


def test_adamw_has_its_own_default_decay_and_the_config_records_it():
    assert get_optimizer_entry("adamw").default_weight_decay == 0.01
    assert TrainConfig(optimizer="adamw").resolved().optim.weight_decay == 0.01
    assert TrainConfig(optimizer="adam").resolved().optim.weight_decay == 0.0
    assert TrainConfig(optimizer="adamw", weight_decay=0.05).resolved().optim.weight_decay == 0.05


def test_optimizer_options_reach_the_optimizer_through_the_config():
    cfg = TrainConfig(
        data="digits",
        optimizer="rmsprop",
        optimizer_kwargs={"alpha": 0.8, "centered": True},
        schedule="constant",
    ).resolved()
    run = build_run(cfg)
    group = run.optimizer.param_groups[0]
    assert isinstance(run.optimizer, torch.optim.RMSprop)
    assert group["alpha"] == 0.8 and group["centered"] is True and group["lr"] == 0.004


def test_optimizer_option_errors_are_one_line_config_errors():
    p = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="its options: rho, eps"):
        create_optimizer("adadelta", p, momentum=0.9)
    with pytest.raises(ConfigError, match="must be a number"):
        create_optimizer("rmsprop", p, alpha="high")
    with pytest.raises(ConfigError, match="must be true or false"):
        create_optimizer("rmsprop", p, centered=1)
    with pytest.raises(ConfigError, match="Invalid beta"):
        create_optimizer("adamw", p, beta1=1.5)
    with pytest.raises(ConfigError, match="did you mean nesterov"):
        create_optimizer("nesterv", p)
