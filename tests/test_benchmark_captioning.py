"""``benchmarks/captioning.py``: a target is met only where the whole test split agrees with the table's first
scenes, and every configuration is a valid caption run."""

from __future__ import annotations

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def captioning():
    return load_benchmark("captioning")


def test_the_meaning_target_needs_the_whole_test_split_too(captioning):
    target = {"bleu4": 0.90, "meaning_accuracy": 0.95}
    scores = {
        "beam1": {"bleu4": 0.84, "meaning_accuracy": 0.93},
        "beam5": {"bleu4": 0.96, "meaning_accuracy": 0.952},
    }
    assert captioning.targets_met(target, scores) == {"bleu4": True, "meaning_accuracy": True}
    whole = {"beam": 5, "scenes": 2000, "bleu4": 0.95, "meaning_accuracy": 0.925}
    assert captioning.targets_met(target, scores, whole) == {"bleu4": True, "meaning_accuracy": False}
    assert captioning.targets_met(None, scores, whole) is None


def test_every_targeted_configuration_is_a_nic_run_on_scenes_cap(captioning):
    from deeper.models import get_model_entry

    for name in captioning.TARGETS:
        model, data, kwargs, options, _ = captioning.CONFIGS[name]
        assert (model, data) == ("nic", "scenes-cap"), name
        assert get_model_entry(model).family == "caption"
        assert options["epochs"] * options.get("subset", 10_000) <= 280_000, name  # nic-every's 28 x 10,000
