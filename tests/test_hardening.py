"""Bad input as a careless or hostile user gives it: numbers, text that should be data, files that lie.

Each class of problem is fixed at its root (one validation layer, one safe-loading path) and tested as
a class: every numeric option of every command, every field of the configuration, every weights file.
"""

from __future__ import annotations

import argparse
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeper.cli import build_parser
from deeper.errors import ConfigError
from deeper.train import TrainConfig
from deeper.validate import RANGES, Range, load_yaml, plain_data


def _numeric_options() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    out = []

    def walk(name, parser):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub_name, child in a.choices.items():
                    walk(f"{name} {sub_name}", child)
            elif hasattr(a, "range") or a.type in (int, float):
                out.append((name, parser, a))

    for name, parser in build_parser().subcommands.items():
        walk(name, parser)
    return out


OPTIONS = _numeric_options()


def _required(parser: argparse.ArgumentParser, skip: argparse.Action) -> list[str]:
    """Arguments that make ``parser`` parse (dummy values for what is required)."""
    argv: list[str] = []
    for a in parser._actions:
        if a is skip or isinstance(a, argparse._SubParsersAction):
            continue
        if a.option_strings and a.required:
            argv += [a.option_strings[0], "x.png" if a.choices is None else next(iter(a.choices))]
        elif not a.option_strings and a.nargs not in ("?", "*", argparse.SUPPRESS):
            argv.append(next(iter(a.choices)) if a.choices else "x.png")
    return argv


def test_every_numeric_option_of_every_command_has_a_documented_range():
    assert len(OPTIONS) > 40
    missing = sorted({f"{cmd} --{a.dest}" for cmd, _, a in OPTIONS if a.dest not in RANGES})
    assert not missing, f"add these options to deeper.validate.RANGES: {missing}"
    for cmd, _, a in OPTIONS:
        assert isinstance(a.range, Range) and a.range.describe() in (a.help or "") + a.range.describe(), cmd


numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["inf", "-inf", "nan", "1e9", "1e400", "0x10", "", " ", "abc", "1_000", "2.5", "-0", "١٢"]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(min_value=0, max_value=len(OPTIONS) - 1), text=numbers)
def test_any_value_of_any_numeric_option_is_accepted_in_range_or_refused_in_one_line(index, text, capsys):
    cmd, parser, action = OPTIONS[index]
    flag = action.option_strings[0]
    argv = [f"{flag}={text}", *_required(parser, action)]
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:
        err = capsys.readouterr().err
        assert e.code == 2 and len(err.strip().splitlines()) == 1, err
        assert flag in err and "Traceback" not in err
        return
    value = getattr(ns, action.dest)
    assert action.range.contains(value) or action.dest == "val_size", (cmd, flag, text, value)
    assert not (isinstance(value, float) and not math.isfinite(value))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"seed": 10**23}, "--seed must be an integer in [0, 4294967295]"),
        ({"lr": float("inf")}, "--lr must be a number in (0, 1e+06]"),
        ({"val_size": float("nan")}, "--val-size must be a number"),
        ({"epochs": 2.0}, "--epochs must be an integer"),
        ({"epochs": True}, "--epochs must be an integer or null, got True"),
        ({"lr": "0.1"}, "--lr must be a number or null, got '0.1'"),
        ({"model": ["a"]}, "model must be a string"),
        ({"tensorboard": "yes"}, "--tensorboard must be true or false"),
        ({"task_args": [1]}, "task_args must be a mapping"),
        ({"optimizer_kwargs": {"momentum": {1, 2}}}, "optimizer_kwargs.momentum: expected plain data, got set"),
    ],
)
def test_every_configuration_value_is_checked_against_its_type_and_range(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**options).resolved()


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: [1, 2", "not readable as YAML data (line 1"),
        ("!!python/object/apply:os.system ['echo hacked']", "could not determine a constructor"),
        ("a: !!binary aGk=", "expected plain data, got bytes"),
        ("when: 2024-01-01", "expected plain data, got date"),
    ],
)
def test_yaml_is_read_as_plain_data_in_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_yaml(text, "config.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("config.yaml")


def test_plain_data_passes_through():
    doc = {"a": [1, 2.5, "x", None, True], "b": {"c": {}}}
    assert plain_data(doc, "doc") is doc


@pytest.mark.parametrize(
    "document, message",
    [
        ("", "a configuration must be a mapping"),
        ("- 1\n- 2\n", "a configuration must be a mapping"),
        ("optim: {lr: abc}\n", "--lr must be a number or null, got 'abc'"),
        ("optim: [1]\n", "optim must be a OptimOptions"),
        ("optim: {lr: 0.1\n", "not readable as YAML data"),
        ("seed: !!python/name:os.system\n", "could not determine a constructor"),
        ("colour: red\n", "unknown configuration key"),
    ],
)
def test_a_hand_edited_config_yaml_is_validated_in_one_line(document, message, tmp_path, capsys):
    from tests.helpers import run

    (tmp_path / "config.yaml").write_text(document)
    code, _, err = run(capsys, "train", "--resume", str(tmp_path))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- model options and weights


@pytest.mark.parametrize(
    "options, message",
    [
        ({"width": -1}, "option width must be a number in [0, 10000], got -1"),
        ({"width": float("inf")}, "option width must be a number in [0, 10000]"),
        ({"dropout": 1.0}, "option dropout must be a number in [0, 1), got 1.0"),
        ({"width": 5000}, "parameters; the limit is 1,000,000,000"),
    ],
)
def test_model_options_have_documented_ranges_and_no_model_outgrows_the_limit(options, message):
    from deeper.models import create_model

    with pytest.raises(ConfigError, match=re.escape(message)):
        create_model("deep-convnet", **options)


def test_every_numeric_model_option_has_a_range():
    import inspect

    from deeper.models import get_model_entry, list_models
    from deeper.models.registry import option_range

    for name in list_models():
        for key, p in inspect.signature(get_model_entry(name).factory).parameters.items():
            if isinstance(p.default, int | float) and not isinstance(p.default, bool):
                kind, low, high, _ = option_range(key, p.default)
                assert low <= p.default <= high, (name, key)  # the default itself is allowed


def _weights(path, state, meta):
    from deeper.models import save_weights

    save_weights(state, path, meta)
    return path


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"model": "deep-convnet", "num_classes": 2_000_000_000}, "num_classes=2000000000 is outside [1, 100000]"),
        ({"model": "deep-convnet", "in_chans": "three"}, "in_chans='three' is not an integer"),
        ({"model": "deep-convnet", "img_size": -28}, "img_size=-28 is outside [1, 4096]"),
        ({"model": "deep-convnet", "model_kwargs": "{width: 2"}, "unreadable model_kwargs"),
        ({"model": "deep-convnet", "model_kwargs": "[1, 2]"}, "model_kwargs in the file's metadata is not a mapping"),
        ({"model": "deep-convnet", "model_kwargs": '{"width": 1e9}'}, "option width must be a number in [0, 10000]"),
    ],
)
def test_weights_whose_metadata_lies_are_refused_naming_the_file(meta, message, tmp_path):
    import torch

    from deeper.errors import CheckpointError
    from deeper.models import create_model, model_from_weights

    state = create_model("deep-convnet").state_dict()
    path = _weights(tmp_path / "w.safetensors", state, meta)
    with pytest.raises((CheckpointError, ConfigError), match=re.escape(message)):
        model_from_weights(path)
    del torch


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_holding_nan_or_inf_are_refused_by_every_command(bad, tmp_path, capsys):
    import torch

    from deeper.models import create_model
    from tests.helpers import run

    state = create_model("deep-convnet").state_dict()
    state["fc2.bias"] = state["fc2.bias"].clone()
    state["fc2.bias"][3] = bad
    path = _weights(tmp_path / "w.safetensors", state, {"model": "deep-convnet", "num_classes": 10})
    img = tmp_path / "d.png"
    from PIL import Image

    Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(img)
    for argv in (
        ["predict", "--weights", str(path), str(img)],
        ["eval", "--weights", str(path), "--data", "digits"],
        ["quantize", "--weights", str(path), "--data", "digits", "--method", "int4", "-o", str(tmp_path / "q.safetensors")],
        ["export", "--weights", str(path), "--data", "digits", "-o", str(tmp_path / "m.onnx")],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "tensor fc2.bias holds 1 NaN or infinite value(s)" in err, (argv, err)
        assert len(err.strip().splitlines()) == 1


def test_the_book_converter_refuses_nan_parameters(tmp_path):
    from deeper.errors import CheckpointError
    from deeper.models.book import book_to_state_dict
    from tests.test_book import random_book_params

    params = random_book_params()
    params["W3"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="tensor W3 holds 1 NaN"):
        book_to_state_dict(params, "book.pkl")
