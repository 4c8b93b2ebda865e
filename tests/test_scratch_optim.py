"""The scratch optimizers: each step equals torch.optim's for the same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from deeper.errors import ConfigError
from deeper.scratch.optim import OPTIMIZERS, create_optimizer


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrix products are slower with several BLAS threads, badly so on a busy machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


# scratch name -> (options, the torch.optim equivalent)
TWINS = {
    "sgd": ({}, lambda p, lr, wd: torch.optim.SGD(p, lr=lr, weight_decay=wd)),
    "momentum": (
        {"momentum": 0.8},
        lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.8, weight_decay=wd),
    ),
    "nesterov": (
        {"momentum": 0.9},
        lambda p, lr, wd: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
    ),
    "adagrad": ({"eps": 1e-10}, lambda p, lr, wd: torch.optim.Adagrad(p, lr=lr, eps=1e-10, weight_decay=wd)),
    "adadelta": (
        {"rho": 0.9, "eps": 1e-6},
        lambda p, lr, wd: torch.optim.Adadelta(p, lr=lr, rho=0.9, eps=1e-6, weight_decay=wd),
    ),
    "rmsprop": (
        {"alpha": 0.95, "eps": 1e-8},
        lambda p, lr, wd: torch.optim.RMSprop(p, lr=lr, alpha=0.95, eps=1e-8, weight_decay=wd),
    ),
    "adam": (
        {"beta1": 0.85, "beta2": 0.99, "eps": 1e-8},
        lambda p, lr, wd: torch.optim.Adam(p, lr=lr, betas=(0.85, 0.99), eps=1e-8, weight_decay=wd),
    ),
}


def test_every_scratch_optimizer_has_a_twin_here():
    assert set(TWINS) == set(OPTIMIZERS)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("name", sorted(TWINS))
def test_steps_match_torch_optim(name, weight_decay):
    rng = np.random.default_rng(0)
    options, make_torch = TWINS[name]
    lr = 0.5 if name == "adadelta" else 0.03
    params = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ours = create_optimizer(name, lr=lr, weight_decay=weight_decay, **options)
    theirs = make_torch(list(tparams.values()), lr, weight_decay)
    for _ in range(4):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        for k, p in tparams.items():
            p.grad = torch.from_numpy(grads[k].copy())
        theirs.step()
        ours.update(params, grads)
        for k in params:
            np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_one_adam_step_equals_torch_adam():
    """The issue's check, in float32 as training runs: one step from fresh state, the same gradients."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((50, 20)).astype(np.float32)
    g = (rng.standard_normal((50, 20)) * 1e-2).astype(np.float32)
    t = torch.tensor(w, requires_grad=True)
    t.grad = torch.from_numpy(g.copy())
    torch.optim.Adam([t], lr=1e-3).step()
    params = {"w": w.copy()}
    create_optimizer("adam", lr=1e-3).update(params, {"w": g})
    # equal to the last bit of float32, up to rounding order (the formula is the notes', torch's op order differs)
    np.testing.assert_array_max_ulp(params["w"], t.detach().numpy(), maxulp=1)
    np.testing.assert_allclose(params["w"] - w, t.detach().numpy() - w, rtol=1e-3, atol=2e-7)
    assert np.abs(params["w"] - w).min() > 5e-4  # it did move (by about lr per weight)


def test_updates_are_in_place_so_the_network_sees_them():
    p = np.ones(3)
    params = {"w": p}
    create_optimizer("momentum", lr=0.1).update(params, {"w": np.ones(3)})
    assert params["w"] is p and np.allclose(p, 0.9)


def test_float16_parameters_keep_a_float32_master_copy():
    """1000 steps of 1e-4 on a weight of 1.0: float16 alone cannot represent 1.0001 (its step is 1e-3)."""
    params = {"w": np.ones(4, np.float16)}
    opt = create_optimizer("sgd", lr=1e-4)
    for _ in range(1000):
        opt.update(params, {"w": np.ones(4, np.float16)})
    assert params["w"].dtype == np.float16
    assert float(params["w"][0]) == pytest.approx(0.9, abs=1e-3)  # naive float16 updates would stay at 1.0


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    grads = [{"w": rng.standard_normal(5)} for _ in range(6)]
    a, b = {"w": np.zeros(5)}, None
    opt = create_optimizer("adam", lr=0.01)
    for g in grads[:3]:
        opt.update(a, g)
    b = {"w": a["w"].copy()}
    opt2 = create_optimizer("adam", lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    for g in grads[3:]:
        opt.update(a, g)
        opt2.update(b, g)
    np.testing.assert_array_equal(a["w"], b["w"])


def test_bad_names_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean adam"):
        create_optimizer("adamm")
    with pytest.raises(ConfigError, match="has no option beta1 .*momentum"):
        create_optimizer("momentum", beta1=0.9)
    with pytest.raises(ConfigError, match="learning rate must be positive"):
        create_optimizer("sgd", lr=0)
