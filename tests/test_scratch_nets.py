"""The scratch networks against their PyTorch twins: names, forward, backward, weights both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from threadpoolctl import threadpool_limits

from deeper.errors import CheckpointError, ConfigError
from deeper.models import create_model, list_models
from deeper.scratch import create_net, list_nets


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrix products are slower with several BLAS threads, badly so on a busy machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


# (name, options): options both the torch factory and the scratch builder take
VARIANTS = [
    ("deep-convnet", {}),
    ("deep-convnet", {"norm": "batch", "width": 0.5, "hidden": 20}),
    ("deep-convnet", {"width": 0.5, "width_norm": 12}),
    ("simple-convnet", {"filters": 6, "hidden": 16}),
    ("mlp", {}),
    ("mlp", {"hidden_sizes": (20, 15), "activation": "sigmoid", "batchnorm": True}),
    ("mlp", {"hidden_sizes": (12,), "activation": "tanh", "weight_init": 0.1}),
]
IDS = [f"{n}-{'-'.join(map(str, o.values())) or 'default'}" for n, o in VARIANTS]


def twins(name, options, dtype="float64", **scratch_kw):
    torch.manual_seed(0)
    tnet = create_model(name, **options).double()
    net = create_net(name, dtype=dtype, seed=1, **options, **scratch_kw)
    net.load_state_dict(tnet.state_dict())
    return tnet, net


def test_every_scratch_net_has_a_torch_twin_and_a_test_here():
    assert set(list_nets()) <= set(list_models())
    assert {n for n, _ in VARIANTS} == set(list_nets())


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_parameter_names_shapes_and_counts_are_the_torch_models(name, options):
    tnet = create_model(name, **options)
    net = create_net(name, **options)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in tnet.state_dict().items()}
    assert net.num_params() == sum(p.numel() for p in tnet.parameters())


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_forward_and_backward_equal_torch_on_the_same_weights(name, options):
    """Training mode (batch statistics), dropout off so both compute the same function; float64."""
    kw = {"dropout": 0.0} if name == "deep-convnet" else {}
    tnet, net = twins(name, {**options, **kw})
    rng = np.random.default_rng(0)
    x, t = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    loss, grads = net.gradient(x, t)
    tnet.train()
    tloss = TF.cross_entropy(tnet(torch.from_numpy(x)), torch.from_numpy(t))
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    named = dict(tnet.named_parameters())
    assert set(grads) == set(named)
    for key, p in named.items():
        np.testing.assert_allclose(grads[key], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=key)
    for key, buf in tnet.state_dict().items():  # batch-norm running statistics moved the same way
        np.testing.assert_allclose(net.state_dict()[key], buf.numpy(), rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_evaluation_logits_equal_torch(name, options):
    tnet, net = twins(name, options)
    x = np.random.default_rng(1).random((5, 1, 28, 28))
    with torch.no_grad():
        expected = tnet.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.predict(x), expected, rtol=1e-10, atol=1e-12)


def test_training_mode_dropout_is_inverted_like_torch():
    """Same weights, dropout on: the expected training output equals the evaluation output."""
    net = create_net("deep-convnet", hidden=30, img_size=16, seed=2)
    x = np.random.default_rng(2).random((2, 1, 16, 16))
    evaluated = net.predict(x)
    net.train()
    samples = net.forward(np.repeat(x, 300, axis=0)).reshape(2, 300, -1)  # 300 independent masks per image
    mean, stderr = samples.mean(axis=1), samples.std(axis=1) / np.sqrt(300)
    assert np.all(np.abs(mean - evaluated) < 5 * stderr + 1e-6)  # unbiased (5 standard errors)
    assert np.all(stderr > 0)
    assert not np.allclose(net.forward(x), evaluated)


@pytest.mark.parametrize("via", ["float32", "float64"])
def test_weights_round_trip_torch_scratch_torch_exactly(via):
    torch.manual_seed(3)
    tnet = create_model("deep-convnet")
    net = create_net("deep-convnet", dtype=via)
    net.load_state_dict(tnet.state_dict())
    from deeper.scratch.trainer import net_state_tensors

    back = create_model("deep-convnet")
    back.load_state_dict(net_state_tensors(net))
    for key, value in tnet.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_scratch_initialised_weights_run_in_torch():
    net = create_net("mlp", hidden_sizes=(30, 20), batchnorm=True, seed=5, dtype="float32")
    tnet = create_model("mlp", hidden_sizes=(30, 20), batchnorm=True).eval()
    tnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in net.state_dict().items()})
    x = np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.predict(x), tnet(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_same_seed_same_network_in_every_precision_and_different_seeds_differ():
    a = create_net("deep-convnet", seed=7, dtype="float64").state_dict()
    b = create_net("deep-convnet", seed=7, dtype="float16").state_dict()
    c = create_net("deep-convnet", seed=8, dtype="float64").state_dict()
    assert all(b[k].dtype == np.float16 for k in b)
    assert all(np.array_equal(a[k].astype(np.float16), b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])
    w = a["conv2.weight"]  # He initialisation: std sqrt(2 / fan_in), fan_in = 16 * 3 * 3
    assert w.std() == pytest.approx(np.sqrt(2 / 144), rel=0.1)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float16", 3e-2)])
def test_lower_precisions_stay_close_to_float64(dtype, tol):
    _, ref = twins("deep-convnet", {})
    net = create_net("deep-convnet", dtype=dtype)
    net.load_state_dict(ref.state_dict())
    x = np.random.default_rng(4).random((8, 1, 28, 28))
    out = net.predict(x)
    expected = ref.predict(x)
    assert out.dtype == np.dtype(dtype)
    assert np.abs(out - expected).max() <= tol * np.abs(expected).max()
    net.train()
    loss, grads = net.gradient(x, np.arange(8))
    assert np.isfinite(loss) and all(g.dtype == np.dtype(dtype) for g in grads.values())


def test_load_state_dict_names_what_does_not_fit():
    net = create_net("deep-convnet")
    state = create_model("deep-convnet").state_dict()
    with pytest.raises(CheckpointError, match="missing fc2.bias"):
        net.load_state_dict({k: v for k, v in state.items() if k != "fc2.bias"})
    with pytest.raises(CheckpointError, match="unexpected extra.weight"):
        net.load_state_dict({**state, "extra.weight": state["fc2.bias"]})
    with pytest.raises(CheckpointError, match=r"fc1.weight has shape \(50, 10\)"):
        net.load_state_dict({**state, "fc1.weight": torch.zeros(50, 10)})


def test_unknown_networks_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean deep-convnet"):
        create_net("deep-convnt")
    with pytest.raises(ConfigError, match="does not take option"):
        create_net("mlp", filters=3)
    with pytest.raises(ConfigError, match="norm 'batch' or none"):
        create_net("deep-convnet", norm="group")
