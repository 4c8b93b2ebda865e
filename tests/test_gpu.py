"""The CUDA paths of the engine: AMP (bf16, fp16 with a grad scaler), channels-last,
torch.compile, resume, half-precision evaluation.  Skipped without a CUDA device
(CI has none); run on a GPU machine with ``pytest -m gpu``."""

from __future__ import annotations

import json

import pytest
import torch

from deeper.cli import main
from deeper.train import TrainConfig, build_run, fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def cfg(tmp_path, name, **kw) -> TrainConfig:
    base = dict(
        data="digits", device="cuda", epochs=2, batch_size=64, tensorboard=False, progress=False,
        out=str(tmp_path / name),
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_learns_and_keeps_float32_weights(tmp_path, amp):
    result = fit(cfg(tmp_path, amp, amp=amp, epochs=4))
    assert result["device"].startswith("cuda") and result["amp"] == amp
    assert result["test_accuracy"] > 0.8  # digits (chance 0.1): 4 short epochs learn it
    run = build_run(cfg(tmp_path, amp + "-b", amp=amp).resolved())
    assert all(p.dtype == torch.float32 and p.is_cuda for p in run.model.parameters())
    if amp == "fp16":
        assert run.stepper.scalers["net"].is_enabled()
    else:
        assert not run.stepper.scalers


def test_fp16_scaler_state_survives_resume(tmp_path):
    full = fit(cfg(tmp_path, "full", amp="fp16", epochs=2))
    fit(cfg(tmp_path, "part", amp="fp16", epochs=2, max_steps=30))
    resumed = fit(cfg(tmp_path, "part", amp="fp16", epochs=2), resume=True)
    # same seed, same steps, same scaler history: the same final accuracy
    assert resumed["test_accuracy"] == pytest.approx(full["test_accuracy"], abs=0.02)
    assert resumed["steps"] == full["steps"]


def test_channels_last_and_compile_give_the_same_predictions(tmp_path):
    run = build_run(cfg(tmp_path, "x").resolved())
    model = run.model.eval()
    x = torch.rand(32, 1, 28, 28, device="cuda")
    ref = model(x)
    cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, rtol=1e-3, atol=1e-3)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), ref, rtol=1e-3, atol=1e-3)


def test_cuda_run_weights_evaluate_the_same_on_cpu(tmp_path, capsys):
    result = fit(cfg(tmp_path, "w", epochs=3))
    capsys.readouterr()
    assert (
        main(["eval", "--weights", result["weights"], "--data", "digits", "--device", "cpu", "--json"]) == 0
    )
    cpu = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cpu["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-3)
    assert main(["eval", "--weights", result["weights"], "--data", "digits", "--device", "cuda",
                 "--dtype", "float16", "--json"]) == 0  # fmt: skip
    half = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(half["test_accuracy"] - cpu["test_accuracy"]) <= 0.01
