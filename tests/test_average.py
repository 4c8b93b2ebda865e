"""--ema: the moving average of the weights follows its formula, is what a run evaluates and saves,
and survives a resume."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from deeper.errors import ConfigError
from deeper.models import model_from_weights
from deeper.scratch.trainer import fit_scratch
from deeper.train import TrainConfig, build_run, evaluate, fit
from deeper.train.average import ema_decay, load_ema, make_ema, update_ema
from deeper.train.checkpoint import latest_checkpoint, load_checkpoint
from tests.helpers import assert_resumes_bit_for_bit

TINY = dict(data="digits", tensorboard=False, progress=False)


def test_ema_follows_the_warm_up_formula_step_by_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = make_ema(model, 0.9)
    expected = None
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(8, 3))  # moves the batch-norm running statistics and its counter
        current = {k: v.clone() for k, v in model.state_dict().items()}
        if expected is None:  # the first update copies
            expected = {k: v.clone() for k, v in current.items()}
        else:
            d = min(0.9, (1 + step) / (10 + step))
            for k, v in current.items():
                expected[k] = v.clone() if not v.is_floating_point() else d * expected[k] + (1 - d) * v
        update_ema(ema, model)
    got = ema.module.state_dict()
    for k, v in expected.items():
        assert torch.allclose(got[k], v, atol=1e-6), k
    assert got["1.num_batches_tracked"].item() == 30  # an integer buffer is copied, not averaged
    assert ema_decay(0.9, 0) == pytest.approx(0.1) and ema_decay(0.9, 1000) == 0.9


def test_ema_lags_behind_the_raw_weights_and_smooths_their_noise():
    # raw weights = a fixed target + noise; the average is much closer to the target than any iterate
    torch.manual_seed(1)
    model = nn.Linear(50, 50, bias=False)
    target = torch.randn(50, 50)
    ema = make_ema(model, 0.99)
    for _ in range(2000):
        with torch.no_grad():
            model.weight.copy_(target + torch.randn(50, 50))
        update_ema(ema, model)
    raw_err = (model.weight - target).pow(2).mean().item()
    ema_err = (ema.module.weight - target).pow(2).mean().item()
    assert raw_err == pytest.approx(1.0, rel=0.1)
    assert ema_err < raw_err / 50  # the steady state variance is (1 - d) / (1 + d) = 1/199 of the noise


def test_ema_state_round_trips_with_its_step_count():
    model = nn.Linear(2, 2)
    a = make_ema(model, 0.5)
    for _ in range(5):
        update_ema(a, model)
    b = make_ema(nn.Linear(2, 2), 0.5)
    load_ema(b, a.state_dict())
    assert b.multi_avg_fn.steps == 5
    assert torch.equal(b.module.weight, a.module.weight)


def test_a_run_with_ema_saves_the_average_and_reports_the_raw_weights(tmp_path):
    cfg = TrainConfig(**TINY, epochs=2, subset=256, ema=0.8, out=str(tmp_path / "r"))
    result = fit(cfg)
    assert result["test_accuracy_raw"] is not None
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_raw_accuracy" in header
    model, _ = model_from_weights(result["weights"])
    raw, _ = load_checkpoint(latest_checkpoint(tmp_path / "r"))  # checkpoints keep the raw weights
    saved = load_file(result["weights"])
    raw = {k.removeprefix("net."): v for k, v in raw.items()}  # checkpoints name each part
    assert not torch.equal(saved["conv1.weight"], raw["conv1.weight"])
    run = build_run(cfg.resolved())
    # the saved weights are the average: they score the reported test accuracy
    assert evaluate(model, run.task, run.test_loader)["accuracy"] == pytest.approx(result["test_accuracy"])
    model.load_state_dict(raw)
    assert evaluate(model, run.task, run.test_loader)["accuracy"] == pytest.approx(
        result["test_accuracy_raw"]
    )


@pytest.mark.slow
def test_a_run_with_ema_resumes_bit_for_bit(tmp_path):
    # the saved weights are the average, so equal files mean the average was resumed exactly
    assert_resumes_bit_for_bit(tmp_path, dict(TINY, epochs=2, subset=256, ema=0.9, norm="batch"))


def test_ema_options_are_checked():
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ConfigError, match="--ema"):
            TrainConfig(ema=bad).resolved()
    with pytest.raises(ConfigError, match="--ema"):
        make_ema(nn.Linear(1, 1), 0.0)
    with pytest.raises(ConfigError, match="--ema"):
        fit_scratch(TrainConfig(**TINY, engine="numpy", ema=0.99, epochs=1))
