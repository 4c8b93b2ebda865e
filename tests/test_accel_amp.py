"""Mixed precision (autocast + grad scaler in the Updater) and torch.compile's fallback."""

import pytest
import torch
from torch import nn

from deeper.errors import ConfigError
from deeper.tasks.classify import ClassificationTask
from deeper.train import LoopState, TrainConfig, fit
from deeper.train.amp import AmpPolicy, amp_policy
from deeper.train.compile import compile_model, compile_unavailable_reason
from deeper.train.stepper import Stepper


def test_amp_policy_choices(capsys):
    assert not amp_policy("off", "cpu").enabled
    bf = amp_policy("bf16", "cpu")
    assert bf.dtype == torch.bfloat16 and not bf.needs_scaler and bf.make_scaler() is None
    fp = amp_policy("fp16", "cpu")  # float16 kernels on CPUs are very slow: float32 with a notice
    assert not fp.enabled
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fp16" in err and "bf16" in err
    with pytest.raises(ConfigError, match="bf16"):
        amp_policy("int3", "cpu")
    with pytest.raises(ConfigError, match="--amp"):
        TrainConfig(amp="fp8").resolved()


def _linear_problem():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    return model, (x, y)


def test_bf16_autocast_runs_forward_in_bfloat16_and_keeps_float32_weights():
    model, batch = _linear_problem()
    up = Stepper.single(torch.optim.SGD(model.parameters(), lr=0.1), amp=amp_policy("bf16", "cpu"))
    out = up.step(ClassificationTask(), {"net": model}, batch, LoopState())
    assert out.outputs.dtype == torch.bfloat16
    assert model.weight.dtype == torch.float32 and model.weight.grad.dtype == torch.float32


def test_fp16_grad_scaler_step_equals_the_float32_step():
    """The scaler multiplies the loss and divides the gradients back: the SGD step is the true one."""
    model, batch = _linear_problem()
    ref = nn.Linear(6, 3)
    ref.load_state_dict(model.state_dict())
    policy = AmpPolicy(torch.float16, "cpu")  # built by hand: amp_policy refuses fp16 on CPUs for speed
    up = Stepper.single(torch.optim.SGD(model.parameters(), lr=0.1), amp=policy)
    assert up.scalers["net"].get_scale() == 65536.0
    up.step(ClassificationTask(), {"net": model}, batch, LoopState())
    Stepper.single(torch.optim.SGD(ref.parameters(), lr=0.1)).step(
        ClassificationTask(), {"net": ref}, batch, LoopState()
    )
    # float16 forward: the step agrees to float16 precision, and the update is not scaled by 65536
    assert torch.allclose(model.weight, ref.weight, atol=2e-3)
    assert model.weight.grad.abs().max() < 10


def test_fp16_overflow_skips_the_step_and_lowers_the_scale():
    model, batch = _linear_problem()
    before = model.weight.detach().clone()
    up = Stepper.single(torch.optim.SGD(model.parameters(), lr=0.1), amp=AmpPolicy(torch.float16, "cpu"))
    model.weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    up.step(ClassificationTask(), {"net": model}, batch, LoopState())
    assert torch.equal(model.weight, before)  # skipped, not corrupted
    assert up.scalers["net"].get_scale() == 32768.0
    state = up.state_dict()
    fresh = Stepper.single(torch.optim.SGD(model.parameters(), lr=0.1), amp=AmpPolicy(torch.float16, "cpu"))
    fresh.load_state_dict(state)
    assert fresh.scalers["net"].get_scale() == 32768.0  # the scale travels in checkpoints


def test_fit_with_bf16_records_amp_and_learns(tmp_path):
    r = fit(
        TrainConfig(
            data="digits", amp="bf16", epochs=2, out=str(tmp_path / "run"), tensorboard=False, progress=False
        )
    )
    assert r["amp"] == "bf16" and r["steps"] > 0
    assert r["test_accuracy"] > 0.2  # chance is 0.1: bf16 training moves the weights the right way


def test_compile_falls_back_with_one_notice(monkeypatch, capsys):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "C++ compiler" in compile_unavailable_reason("cpu")
    model = nn.Linear(3, 2)
    assert compile_model(model, "cpu") is model
    assert "running eagerly" in capsys.readouterr().err
    assert model(torch.zeros(1, 3)).shape == (1, 2)


@pytest.mark.slow
def test_compile_in_place_matches_eager_and_keeps_state_dict_keys():
    if compile_unavailable_reason("cpu"):
        pytest.skip(compile_unavailable_reason("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(4, 5)
    eager = model(x)
    keys = list(model.state_dict())
    compiled = compile_model(model, "cpu")
    assert compiled is model and list(model.state_dict()) == keys
    assert torch.allclose(model(x), eager, atol=1e-6)
