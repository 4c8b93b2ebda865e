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
