"""The ``deeper`` command: help, errors (one line, no traceback), and --json for every subcommand."""

import pickle
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.cli import build_parser, main
from deeper.models import create_model, save_weights
from tests.helpers import last_json, run
from tests.test_book import random_book_params

CORE = ["train", "eval", "predict", "misclassified", "convert-book-weights", "models", "datasets"]
COMMANDS = sorted(build_parser().subcommands)  # every registered command gets the generic checks


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.safetensors"
    save_weights(
        create_model("deep-convnet"),
        path,
        {
            "model": "deep-convnet",
            "num_classes": 10,
            "in_chans": 1,
            "img_size": 28,
            "classes": [str(i) for i in range(10)],
        },
    )
    return path


def test_the_core_commands_are_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(CORE) <= set(sub.choices) and sorted(sub.choices) == COMMANDS


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: deeper {cmd}") and "--json" in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_examples_parse(cmd):
    """Every command's --help ends with at least one example, and each example is a valid command line."""
    parser = build_parser()
    text = parser.subcommands[cmd].format_help()
    assert "example" in text
    tail = re.sub(r"\\\n\s*", " ", text.split("example", 1)[1])  # a long example continues after a backslash
    examples = [ln.strip() for ln in tail.splitlines() if ln.strip().startswith("deeper ")]
    assert examples
    for line in examples:
        parser.parse_args(shlex.split(line.split("#")[0])[1:])  # SystemExit on a bad example


@pytest.mark.parametrize("cmd", COMMANDS)
def test_unknown_option_fails_clearly(cmd, capsys):
    assert main([cmd, "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    # commands with required arguments report those first; either way argparse names the problem
    assert f"deeper {cmd}: error:" in err
    assert "unrecognized arguments: --no-such-option" in err or "are required" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "nope"], "unknown model 'nope'"),
        (["train", "--data", "mnits"], "did you mean mnist"),
        (["train", "--optimizer", "adamm", "--data", "digits"], "did you mean adam"),
        (["train", "--resume", "no/such/run"], "not a run folder"),
        (["eval", "--weights", "missing.safetensors"], "weights file not found"),
        (["predict", "--weights", "missing.safetensors", "x.png"], "no such run folder or weights file"),
        (["convert-book-weights", "x.pkl", "-o", "y.safetensors"], "--trust-pickle"),
        (["datasets", "--data-dir", "no/such/dir"], "does not exist"),
        (["train", "--data", "mnist", "--data-dir", "no/such/dir"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--batch-size", "0"],
            "argument --batch-size: must be an integer in [1, 1000000], got '0'",
        ),
        (["train", "--seed", "1" * 23], "argument --seed: must be an integer in [0, 4294967295]"),
        (["train", "--val-size", "inf"], "argument --val-size: must be a number in [0, 1e9], got 'inf'"),
        (["train", "--lr", "nan"], "argument --lr: must be a number in (0, 1e+06]"),
        (["train", "--mixup", "-1"], "argument --mixup: must be a number in [0, 1000]"),
        (["scenes", "preview", "--n", "0", "-o", "x.png"], "argument --n: must be an integer in [1, 32]"),
        (
            ["summary", "lenet5", "--num-classes", "0"],
            "argument --num-classes: must be an integer in [1, 100000]",
        ),
        (["train", "--epochs", "2.5"], "argument --epochs: must be an integer"),
        (["train", "--model-arg", "width"], "expected KEY=VALUE"),
        (["train", "--model-arg", "width=[1, 2"], "width: not readable as YAML data (line 1"),
        (
            ["train", "--task-arg", "x=!!python/object/apply:os.system [echo]"],
            "could not determine a constructor",
        ),
        (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_usage_errors_are_one_line_naming_the_option(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"deeper {argv[0]}") and ": error: " in err
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_eval_json_and_dtype(weights, capsys):
    code, out, _ = run(capsys, "eval", "--weights", str(weights), "--data", "digits", "--json")
    r32 = last_json(out)
    assert code == 0 and r32["images"] == 360 and 0 <= r32["test_accuracy"] <= 1 and r32["seconds"] > 0
    code, out, _ = run(
        capsys, "eval", "--weights", str(weights), "--data", "digits", "--dtype", "float64", "--json"
    )
    assert last_json(out)["test_accuracy"] == r32["test_accuracy"] and last_json(out)["dtype"] == "float64"


def test_eval_rejects_a_pickle_and_a_mismatched_dataset(weights, tmp_path, capsys):
    pkl = tmp_path / "w.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    code, _, err = run(capsys, "eval", "--weights", str(pkl), "--data", "digits")
    assert code == 1 and "convert-book-weights" in err
    code, _, err = run(capsys, "eval", "--weights", str(weights), "--data", "cifar10")
    assert code == 1 and "expects 1-channel images but cifar10 has 3" in err
    code, _, err = run(capsys, "eval", "--weights", str(weights), "--model", "mlp", "--data", "digits")
    assert code == 1 and "holds weights for model 'deep-convnet'" in err


def test_predict_prints_class_and_probabilities(weights, tmp_path, capsys):
    img = np.full((64, 64), 255, np.uint8)
    img[10:54, 30:36] = 0
    Image.fromarray(img).save(tmp_path / "one.png")
    Image.fromarray(255 - img).convert("RGB").save(tmp_path / "one.jpg")
    code, out, _ = run(
        capsys,
        "predict",
        "--weights",
        str(weights),
        str(tmp_path / "one.png"),
        str(tmp_path / "one.jpg"),
        "--json",
    )
    preds = last_json(out)["predictions"]
    assert code == 0 and len(preds) == 2
    for p in preds:
        assert sum(p["probabilities"]) == pytest.approx(1.0, abs=1e-5) and p["label"] == int(
            np.argmax(p["probabilities"])
        )
    assert preds[0]["label"] == preds[1]["label"]  # polarity does not matter
    (tmp_path / "bad.png").write_text("nope")
    code, _, err = run(capsys, "predict", "--weights", str(weights), str(tmp_path / "bad.png"))
    assert code == 1 and "bad.png: not a readable image" in err


def test_misclassified_gallery(weights, tmp_path, capsys):
    out_png = tmp_path / "wrong.png"
    code, out, _ = run(
        capsys,
        "misclassified",
        "--weights",
        str(weights),
        "--data",
        "digits",
        "-o",
        str(out_png),
        "--max",
        "20",
        "--json",
    )
    r = last_json(out)
    assert code == 0 and out_png.stat().st_size > 1000
    assert r["misclassified"] == len(r["indices"]) and all(t != p for t, p in zip(r["true"], r["predicted"]))
    assert r["test_accuracy"] == pytest.approx(1 - r["misclassified"] / 360)
    code, _, err = run(capsys, "misclassified", "--weights", str(weights), "--data", "digits", "-o", "x.jpg")
    assert code == 1 and ".png" in err


def test_convert_book_weights(tmp_path, capsys):
    pkl = tmp_path / "params.pkl"
    pkl.write_bytes(pickle.dumps(random_book_params()))
    out_file = tmp_path / "book.safetensors"
    code, out, err = run(capsys, "convert-book-weights", str(pkl), "-o", str(out_file))
    assert code == 1 and not out_file.exists()
    code, out, _ = run(
        capsys, "convert-book-weights", str(pkl), "--trust-pickle", "-o", str(out_file), "--json"
    )
    assert code == 0 and last_json(out)["params"] == 123_552 and out_file.is_file()
    code, out, _ = run(capsys, "eval", "--weights", str(out_file), "--data", "digits", "--json")
    assert code == 0 and last_json(out)["model"] == "deep-convnet"


def test_models_and_datasets_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    models = {m["name"]: m for m in last_json(out)["models"]}
    assert code == 0 and models["deep-convnet"]["params"] == 123_552
    code, out, _ = run(capsys, "datasets", "--json")
    data = {d["name"]: d for d in last_json(out)["datasets"]}
    assert (
        code == 0
        and data["digits"]["location"].startswith("bundled")
        and data["mnist"]["shape"] == [1, 28, 28]
    )


def test_train_json_reports_accuracy_and_seconds(tmp_path, capsys):
    code, out, err = run(
        capsys,
        "train",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--no-tensorboard",
        "--out",
        str(tmp_path / "r"),
        "--json",
    )
    r = last_json(out)
    assert code == 0 and r["steps"] == 3 and 0 <= r["test_accuracy"] <= 1 and r["seconds"] > 0
    assert "epoch" in err or "training" in err  # human text goes to stderr when --json owns stdout
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "r"), "--lr", "0.1")
    assert code == 1 and "cannot change --lr when resuming" in err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "deeper", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("deeper ")


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "--model", "lenet5", "-o", "chart.jpg"],
        ["augment-preview", "--data", "digits", "-o", "grid.jpg"],
        ["summary", "lenet5", "--plot", "bars.jpg"],
    ],
)
def test_png_outputs_are_checked_the_same_way(argv, capsys):
    code, _, err = run(capsys, *argv)
    assert code == 1 and "must be a .png file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
