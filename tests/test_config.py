"""TrainConfig: options grouped by concern, flat names, the saved document and its checks."""

import pytest
import yaml

from deeper.errors import ConfigError
from deeper.train.config import FLAT, GROUPS, TrainConfig


def test_flat_names_land_in_their_groups():
    cfg = TrainConfig(model="lenet5", lr=0.01, val_size=0.2, ensemble=3, amp="bf16", out="x", ema=0.99)
    assert cfg.model == "lenet5" and cfg.optim.lr == 0.01 and cfg.sampling.val_size == 0.2
    assert cfg.ensemble.members == 3 and cfg.speed.amp == "bf16" and cfg.run.out == "x"
    assert cfg.regularize.ema == 0.99
    flat = cfg.flat()
    assert flat["ensemble"] == 3 and flat["lr"] == 0.01 and flat["model"] == "lenet5"
    assert set(flat) == set(FLAT) | {
        "task",
        "model",
        "data",
        "recipe",
        "seed",
        "engine",
        "task_args",
        "model_kwargs",
    }


def test_every_flat_name_is_unique_and_names_one_field():
    where = list(FLAT.values())
    assert len(where) == len(set(where))
    for group, attr in where:
        assert hasattr(GROUPS[group](), attr)


def test_replace_copies_and_leaves_the_original():
    cfg = TrainConfig(epochs=2, optimizer_kwargs={"momentum": 0.9})
    other = cfg.replace(epochs=5, seed=3, ensemble=2)
    assert (other.optim.epochs, other.seed, other.ensemble.members) == (5, 3, 2)
    assert (cfg.optim.epochs, cfg.seed, cfg.ensemble.members) == (2, 0, 1)
    other.optim.lr = 1.0
    assert cfg.optim.lr is None  # groups are copied, not shared


def test_the_saved_document_is_nested_and_round_trips_through_yaml():
    cfg = TrainConfig(recipe="book", ensemble=2, weight_noise=0.1, task_args={"k": 1}).resolved()
    doc = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    assert doc["optim"]["lr"] == 0.001 and doc["ensemble"]["members"] == 2 and doc["task_args"] == {"k": 1}
    assert TrainConfig.from_dict(doc) == cfg
    assert TrainConfig.from_dict({"model": "mlp", "lr": 0.5}).optim.lr == 0.5  # a flat document too


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"optim": {"lr": 0.1, "speed": 3}}, "unknown configuration key.*in optim: speed"),
        ({"colour": "red"}, "unknown configuration key.*colour"),
        ([1, 2], "must be a mapping"),
        ("text", "must be a mapping"),
        ({"optim": 3}, "optim must be a OptimOptions"),
    ],
)
def test_bad_documents_are_one_line_config_errors(doc, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(doc)


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"lr": float("inf")}, "--lr"),
        ({"clip_grad": float("nan")}, "--clip-grad"),
        ({"subset": 0}, "--subset"),
    ],
)
def test_numbers_out_of_range_are_refused(options, flag):
    with pytest.raises(ConfigError, match=flag):
        TrainConfig(**options).resolved()


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"optim": {"epochs": "3"}}, "--epochs must be an integer or null, got '3'"),
        ({"optim": {"lr": True}}, "--lr must be a number or null, got True"),
        ({"speed": {"channels_last": 1}}, "--channels-last must be true or false or null, got 1"),
        ({"ensemble": {"members": 2.5}}, "--ensemble must be an integer, got 2.5"),
        ({"seed": "0"}, "seed must be an integer, got '0'"),
    ],
)
def test_a_document_of_the_wrong_types_is_refused_not_coerced(doc, message):
    """config.yaml is validated strictly (pydantic over the dataclasses): a quoted number is not a number."""
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(doc).resolved()
    assert str(e.value) == message
    assert TrainConfig.from_dict({"optim": {"lr": 1}}).resolved().optim.lr == 1  # an int is a number
