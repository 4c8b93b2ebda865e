"""Boosting (--ensemble K --boost): SAMME's update, the weighted resample, the weighted vote, end to end."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from deeper.data import load_dataset
from deeper.data.resample import weighted_resample
from deeper.errors import ConfigError
from deeper.train import TrainConfig, fit
from deeper.train.boost import samme_step, weighted_vote
from deeper.train.ensemble import combine
from tests.helpers import run

TINY = dict(data="digits", tensorboard=False, progress=False)


def test_samme_step_matches_the_formula_by_hand():
    wrong = torch.tensor([True, False, False, False])
    step = samme_step(torch.full((4,), 0.25), wrong, num_classes=10)
    # err = 1/4; alpha = log((3/4) / (1/4)) + log(10 - 1) = log 27; the wrong image's weight x 27
    assert step.error == pytest.approx(0.25) and step.alpha == pytest.approx(math.log(27))
    assert step.weights.tolist() == pytest.approx([27 / 30, 1 / 30, 1 / 30, 1 / 30])
    assert not step.stop
    half = samme_step(torch.full((4,), 0.25), wrong, num_classes=10, rate=0.5)
    assert half.alpha == pytest.approx(0.5 * math.log(27))
    assert half.weights.tolist() == pytest.approx([27**0.5 / (27**0.5 + 3), *[1 / (27**0.5 + 3)] * 3])
    # weights need not be normalised; the error is their share on the wrong images
    assert samme_step(torch.tensor([3.0, 1.0, 1.0, 1.0]), wrong, 10).error == pytest.approx(0.5)


def test_samme_stops_on_a_perfect_or_a_useless_member():
    w = torch.full((10,), 0.1)
    perfect = samme_step(w, torch.zeros(10, dtype=torch.bool), num_classes=10)
    assert perfect.stop and perfect.alpha == 1.0 and perfect.error == 0.0
    chance = samme_step(w, torch.arange(10) < 9, num_classes=10)  # 90% wrong of 10 classes
    assert chance.stop and chance.alpha == 0.0
    with pytest.raises(ConfigError, match="--boost-rate"):
        samme_step(w, torch.zeros(10, dtype=torch.bool), 10, rate=0.0)


def test_weighted_resample_draws_in_proportion_to_the_weights_and_reproducibly():
    ds = load_dataset("digits", "train")
    n = len(ds)
    w = torch.full((n,), 0.5 / (n - 1))
    w[7] = 0.5  # half of all draws
    a, b = weighted_resample(ds, w, seed=3), weighted_resample(ds, w, seed=3)
    assert len(a) == n and torch.equal(a.images, b.images)
    sevens = (a.images == ds.images[7]).flatten(1).all(1).sum().item()
    assert 0.45 * n < sevens < 0.55 * n
    only = torch.zeros(n)
    only[[1, 2]] = 1.0
    c = weighted_resample(ds, only, seed=0)
    assert set(c.labels.tolist()) <= {ds.labels[1].item(), ds.labels[2].item()}
    with pytest.raises(ConfigError, match="sample weights"):
        weighted_resample(ds, torch.ones(n - 1), seed=0)


def test_a_heavy_member_outvotes_two_light_ones():
    # member 0 says class 0; members 1 and 2 say class 1
    probs = torch.tensor([[[0.9, 0.1]], [[0.2, 0.8]], [[0.3, 0.7]]], dtype=torch.float64)
    assert combine(probs, "vote").tolist() == [1]
    assert weighted_vote(probs, torch.tensor([2.0, 0.5, 0.5])).tolist() == [0]
    assert weighted_vote(probs, torch.tensor([0.5, 0.5, 0.5])).tolist() == [1]
    # a tie of vote weights goes to the higher weighted mean probability
    assert weighted_vote(probs[:2], torch.tensor([1.0, 1.0])).tolist() == [0]


@pytest.mark.slow
def test_boosted_ensemble_reweights_the_errors_and_resumes(tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["train", "--data", "digits", "--subset", "512", "--epochs", "4", "--ensemble", "2", "--boost",
            "--boost-rate", "0.5", "--no-tensorboard", "--no-progress", "--out", str(out)]  # fmt: skip
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "boosted ensemble (SAMME" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["boost"] and len(result["boost_alphas"]) == result["ensemble"] == 2
    assert 0 <= result["boost_test_accuracy"] <= 1
    assert not (out / "member-0" / "sample_weights.safetensors").exists()  # the first sees the split itself
    w = load_file(out / "member-1" / "sample_weights.safetensors")["weights"]
    assert w.shape == (512,) and w.sum().item() == pytest.approx(1.0)
    # two values: the images member 0 got right, and those it got wrong, x exp(alpha_0)
    low, high = w.min().item(), w.max().item()
    assert high / low == pytest.approx(math.exp(result["boost_alphas"][0]))
    assert 0 < result["boost_errors"][0] < 0.9
    code, _, _ = run(capsys, "train", "--resume", str(out))
    again = json.loads((out / "result.json").read_text())
    assert code == 0 and again["boost_alphas"] == result["boost_alphas"]


def test_boost_options_are_checked(tmp_path):
    for bad, message in [
        (dict(boost=True), "--ensemble K >= 2"),
        (dict(boost=True, ensemble=3, bootstrap=True), "not --bootstrap"),
        (dict(boost_rate=0.0), "--boost-rate"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**bad).resolved()
    with pytest.raises(ConfigError, match="sample weights"):
        fit(TrainConfig(**TINY, sample_weights=str(tmp_path / "missing.safetensors"), epochs=1))
