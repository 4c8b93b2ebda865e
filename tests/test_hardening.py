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
        (
            {"optimizer_kwargs": {"momentum": {1, 2}}},
            "optimizer_kwargs.momentum: expected plain data, got set",
        ),
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
        (
            {"model": "deep-convnet", "num_classes": 2_000_000_000},
            "num_classes=2000000000 is outside [1, 100000]",
        ),
        ({"model": "deep-convnet", "in_chans": "three"}, "in_chans='three' is not an integer"),
        ({"model": "deep-convnet", "img_size": -28}, "img_size=-28 is outside [1, 4096]"),
        ({"model": "deep-convnet", "model_kwargs": "{width: 2"}, "unreadable model_kwargs"),
        (
            {"model": "deep-convnet", "model_kwargs": "[1, 2]"},
            "model_kwargs in the file's metadata is not a mapping",
        ),
        (
            {"model": "deep-convnet", "model_kwargs": '{"width": 1e9}'},
            "option width must be a number in [0, 10000]",
        ),
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
        [
            "quantize",
            "--weights",
            str(path),
            "--data",
            "digits",
            "--method",
            "int4",
            "-o",
            str(tmp_path / "q.safetensors"),
        ],
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


# ----------------------------------------------------------------------------- resource bombs


BOMB_CHILD = """
import resource, sys
from deeper.errors import DataError
from deeper.data import load_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_dataset("mnist", "test", data_dir=sys.argv[1])
    print("loaded")
except DataError as e:
    print("refused:", e)
print("peak-kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _load_in_child(folder) -> tuple[str, int]:
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, str(folder)], capture_output=True, text=True, timeout=300
    )
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and lines, p.stderr[-2000:]
    return lines[0], int(lines[-1].split()[1])


@pytest.mark.slow
def test_a_sparse_file_claiming_40_gb_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "mnist").mkdir()
    with open(tmp_path / "mnist" / "t10k-images-idx3-ubyte", "wb") as fh:
        fh.truncate(40 * 10**9)  # sparse: no disk used
    message, peak_kb = _load_in_child(tmp_path)
    assert (
        message.startswith("refused:") and "40,000,000,000 bytes, more than the 7,840,016 expected" in message
    )
    assert peak_kb < 50_000  # nothing of it was read


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    import gzip

    (tmp_path / "mnist").mkdir()
    with gzip.open(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", "wb", compresslevel=9) as fh:
        zeros = bytes(1 << 24)
        for _ in range(120):  # 2 GB of zeros in about 2 MB
            fh.write(zeros)
    assert (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").stat().st_size < 5 * 10**6
    message, peak_kb = _load_in_child(tmp_path)
    assert message.startswith("refused:") and "inflates to more than the 7,840,016 bytes expected" in message
    assert peak_kb < 100_000  # the expected size (7.8 MB) and a chunk, never the 2 GB


def test_a_huge_image_is_refused_before_its_pixels_are_decoded(tmp_path, capsys):
    import struct
    import zlib

    from deeper.models import create_model, save_weights
    from tests.helpers import run

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a 20000x20000 grey PNG header with a tiny (truncated) body: only the header may be read
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "big.png").write_bytes(png)
    w = tmp_path / "w.safetensors"
    save_weights(create_model("deep-convnet"), w, {"model": "deep-convnet", "num_classes": 10})
    code, _, err = run(capsys, "predict", "--weights", str(w), str(tmp_path / "big.png"))
    assert code == 1 and "400,000,000 pixels, more than the 40,000,000" in err and len(err.splitlines()) == 1


def test_summary_refuses_an_input_it_cannot_hold(capsys):
    from tests.helpers import run

    code, _, err = run(capsys, "summary", "lenet5", "--input", "1x100000x100000")
    assert code == 1 and "at most 64 channels and 4096x4096 pixels" in err


# ----------------------------------------------------------------------------- runs: writers, pointers, leftovers


QUIET = dict(
    data="digits", subset=64, batch_size=32, epochs=1, tensorboard=False, progress=False, device="cpu"
)


def test_a_second_writer_of_a_run_folder_is_refused_and_nothing_is_mixed(tmp_path):
    from deeper.fileio import RunLock
    from deeper.train import fit

    out = tmp_path / "run"
    with RunLock(out):  # a training holds the folder (in this process: flock locks are per open file)
        with pytest.raises(ConfigError, match=f"{out} is being written by process \\d+; wait for it"):
            fit(TrainConfig(**QUIET, out=str(out)))
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    result = fit(TrainConfig(**QUIET, out=str(out)))  # released: a dead holder never blocks
    assert result["steps"] == 2


@pytest.mark.slow
def test_two_trainings_started_together_on_one_folder(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deeper", "train", "--data", "digits", "--epochs", "2", "--subset", "256",
           "--no-tensorboard", "--out", str(out), "--json"]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[2] == 1)
    assert "is being written by process" in loser[1] and len(loser[1].strip().splitlines()) == 1
    import json

    config = (out / "config.yaml").read_text()
    assert json.loads((out / "result.json").read_text())["steps"] == 4 and config.count("task:") == 1


@pytest.mark.parametrize(
    "pointer", ["../../outside", "/etc", "step-00000001/../../x", "step-1", "", "step-00000002"]
)
def test_a_latest_pointer_outside_the_run_is_refused(pointer, tmp_path):
    import torch

    from deeper.errors import CheckpointError
    from deeper.train.checkpoint import latest_checkpoint, save_checkpoint

    save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, {})
    (tmp_path / "checkpoints" / "latest").write_text(pointer + "\n")
    with pytest.raises(CheckpointError, match="latest (names|points at)"):
        latest_checkpoint(tmp_path)


def test_a_refused_pickle_in_state_pt_is_one_line(tmp_path):
    import io
    import pickle

    import torch

    from deeper.errors import CheckpointError
    from deeper.train.checkpoint import load_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, {})
    buf = io.BytesIO()
    torch.save({"format": 1, "evil": pickle.loads(pickle.dumps(print))}, buf)  # a global: refused
    (path / "state.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert "refused to load: not a plain-data checkpoint" in str(e.value) and "\n" not in str(e.value)


def test_written_files_follow_the_umask_and_stale_partials_are_cleaned(tmp_path):
    import os

    from deeper.fileio import NEW_FILE_MODE, write_text_atomic

    stale = tmp_path / ".result.json.999999999.abc.partial"  # left by a killed writer (no such process)
    stale.write_text("x")
    write_text_atomic(tmp_path / "result.json", "{}")
    assert not stale.exists()
    assert os.stat(tmp_path / "result.json").st_mode & 0o777 == NEW_FILE_MODE
    assert NEW_FILE_MODE & 0o044  # others may read, as with any file the user creates


def test_a_write_error_names_the_users_file_not_a_temporary_one(tmp_path, monkeypatch):
    import errno
    import os

    from deeper.fileio import write_bytes_atomic

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e:
        write_bytes_atomic(tmp_path / "model.safetensors", b"x")
    assert (
        e.value.filename == str(tmp_path / "model.safetensors")
        and e.value.strerror == "No space left on device"
    )
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    import deeper.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_load_command_modules", interrupted)
    assert cli.main(["models"]) == 130
    assert capsys.readouterr().err == "deeper: interrupted\n"


@pytest.mark.slow
def test_export_refuses_an_opset_it_cannot_write(digits_weights_path, tmp_path, capsys):
    from tests.helpers import run

    code, _, err = run(capsys, "export", "--weights", digits_weights_path, "--data", "digits", "--opset", "13",
                       "-o", str(tmp_path / "m.onnx"))  # fmt: skip
    assert (
        code == 1 and "could not convert this model to opset 13" in err and len(err.strip().splitlines()) == 1
    )
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*partial"))


@pytest.fixture
def digits_weights_path(tmp_path):
    from deeper.models import create_model, save_weights

    path = tmp_path / "w" / "w.safetensors"
    save_weights(create_model("deep-convnet"), path, {"model": "deep-convnet", "num_classes": 10})
    return str(path)


# ----------------------------------------------------------------------------- signals


@pytest.mark.slow
@pytest.mark.multiproc
def test_runs_killed_or_interrupted_at_random_moments_resume_to_the_uninterrupted_result(tmp_path):
    """SIGKILL and SIGINT at random moments (checkpoints every two steps, so some land while one is
    written); each time the run resumes (or starts again when no checkpoint exists yet), and the end is
    the uninterrupted run's, bit for bit."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    base = [sys.executable, "-m", "deeper", "train", "--data", "digits", "--model", "lenet5", "--epochs", "3",
            "--subset", "384", "--batch-size", "32", "--checkpoint-every", "2", "--no-tensorboard"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([*base, "--out", str(tmp_path / "straight")], check=True, env=env, capture_output=True)
    whole = time.perf_counter() - t0  # start-up included: the kills fall anywhere in a run's life
    out = tmp_path / "killed"
    rng = random.Random(4)
    signals = []
    for attempt in range(7):  # six interruptions at random moments, then the run may finish
        resume = (out / "checkpoints" / "latest").is_file()
        cmd = [*base[:4], "--resume", str(out)] if resume else [*base, "--out", str(out)]
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt < 6:
            time.sleep(rng.uniform(0.3, 1.0) * whole)
        if attempt == 6 or p.poll() is not None:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
            break
        sig = rng.choice([signal.SIGKILL, signal.SIGINT])
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        signals.append(sig.name)
        if sig == signal.SIGINT:
            # 130: stopped with a checkpoint; 0 or -2: the signal came as the finished run shut down
            assert p.returncode in (130, 0, -2) and "Traceback" not in err, err[-2000:]
    assert signals, "no signal reached the run: lengthen it"
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a), signals
    assert not list(
        (out / "checkpoints").glob(".*partial*")
    )  # a kill mid-save left one: later saves cleared it


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(loop="not a loop"),
        lambda s: s.pop("optimizers"),
        lambda s: s.update(optimizers={"net": [1, 2]}),
        lambda s: s.update(rng={"torch": "no"}),
        lambda s: s["loop"].update(epoch="three"),
    ],
)
def test_a_malformed_state_pt_on_resume_is_one_line(change, tmp_path, capsys):
    import io

    import torch

    from deeper.train import fit
    from deeper.train.checkpoint import latest_checkpoint
    from tests.helpers import run

    out = tmp_path / "run"
    fit(TrainConfig(**QUIET, max_steps=1, out=str(out)))
    path = latest_checkpoint(out) / "state.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    path.write_bytes(buf.getvalue())
    capsys.readouterr()
    code, _, err = run(capsys, "train", "--resume", str(out))
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "checkpoint" in err or "state.pt" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("&a [*a]", "nested more than 32 levels deep"),
        (
            "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
            "more than 100,000 items",
        ),
    ],
)
def test_recursive_or_exploding_yaml_is_refused(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_yaml(text, "x")


def test_a_run_refused_before_it_wrote_anything_leaves_no_folder(tmp_path, monkeypatch, capsys):
    from tests.helpers import run

    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        capsys, "train", "--data", "digits", "--model-arg", "width=-1"
    )  # default folder runs/...
    assert code == 1 and "option width must be" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "grid, message",
    [("lr=0.1,[1", "--grid lr: not readable as YAML data"), ("lr=0.1,-1", "--lr must be a number in (0, 1e+06]")],
)
def test_cv_grid_values_are_data_in_range(grid, message, capsys, tmp_path, monkeypatch):
    from tests.helpers import run

    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "cv", "--data", "digits", "--grid", grid)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
