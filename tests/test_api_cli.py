"""One consistent command line: `deeper` alone, grouped --help, a quick --version, one default per help
text, --config / --print-config, resuming past --max-steps, and weights that say what they were trained on."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

import pytest
import yaml
from safetensors.torch import load_file

import deeper.api
from tests.conftest import REPO
from tests.helpers import last_json, run


def test_deeper_alone_prints_the_grouped_help(capsys):
    code, out, err = run(capsys)
    assert code == 0 and not err
    assert out.startswith("usage: deeper") and "train and tune:" in out and "use trained models:" in out


def test_help_lists_every_command_once_under_what_it_is_for(capsys):
    from deeper.cli import build_parser, command_groups

    names = set(build_parser().subcommands)
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    listed = [name for cmds in command_groups().values() for name, _ in cmds]
    assert sorted(listed) == sorted(names)  # each once
    headings = [line[:-1] for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[: len(command_groups())] == list(command_groups())
    for name in names:
        assert re.search(rf"^  {re.escape(name)}(\s|$)", out, re.M), name


def test_version_answers_in_well_under_a_second():
    times = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "deeper", "--version"], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        assert done.returncode == 0 and done.stdout.strip().startswith("deeper ")
    assert min(times) < 0.5, times


def _options():
    from deeper.cli import build_parser

    def walk(name, parser):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub, child in a.choices.items():
                    yield from walk(f"{name} {sub}", child)
            elif a.help and a.help != argparse.SUPPRESS:
                yield name, parser, a

    for name, parser in build_parser().subcommands.items():
        yield from walk(name, parser)


def test_no_help_text_shows_two_defaults():
    """An option's default is shown once: by argparse's "(default: X)" or by its own text ("[fast]",
    "default: ..."), never both; and never "(default: None)"."""
    from deeper.cli import build_parser, says_default

    for name, parser in build_parser().subcommands.items():
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
    seen = 0
    for cmd, parser, action in _options():
        seen += 1
        added = (
            "%(default)" in parser._get_formatter()._get_help_string(action)
            and "%(default)" not in action.help
        )
        assert not (added and says_default(action.help)), f"{cmd} {action.option_strings}: {action.help}"
    assert seen > 100
    assert says_default("fast recipe [fast]") and says_default("(default: the weights')")
    assert not says_default("an integer in [1, 1000]")


# ---------------------------------------------------------------------------------- configs

TINY = ["--model", "lenet5", "--data", "digits", "--subset", "120", "--epochs", "1", "--batch-size", "40",
        "--no-tensorboard", "--no-progress"]  # fmt: skip


def test_print_config_is_the_resolved_configuration(capsys):
    from deeper.train import TrainConfig

    code, out, _ = run(capsys, "train", *TINY, "--lr", "0.01", "--print-config")
    assert code == 0 and "optim:" in out
    document = yaml.safe_load(out)
    expected = TrainConfig(model="lenet5", data="digits", subset=120, epochs=1, batch_size=40, lr=0.01,
                           tensorboard=False, progress=False).resolved()  # fmt: skip
    assert document == expected.to_dict()
    assert (
        document["optim"]["optimizer"] == "adam" and document["regularize"]["label_smoothing"] == 0.1
    )  # the recipe


def test_a_runs_config_yaml_reruns_it_into_a_new_folder(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    code, _, err = run(capsys, "train", *TINY, "--out", str(first))
    assert code == 0, err
    code, _, err = run(capsys, "train", "--config", str(first / "config.yaml"), "--out", str(second))
    assert code == 0, err
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # the same run, bit for bit
    assert yaml.safe_load((second / "config.yaml").read_text())["run"]["out"] == str(second)


def test_config_takes_flat_options_and_the_command_line_wins(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: lenet5\ndata: digits\nlr: 0.02\nepochs: 3\n")
    code, out, _ = run(capsys, "train", "--config", str(cfg), "--epochs", "2", "--print-config")
    document = yaml.safe_load(out)
    assert code == 0 and document["optim"]["lr"] == 0.02 and document["optim"]["epochs"] == 2
    assert document["model"] == "lenet5"


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("- a\n- b\n", "expected a mapping of options"),
        ("lr: [1, 2\n", "not readable as YAML"),
        ("nonsense_key: 1\n", "unknown configuration key(s): nonsense_key"),
        ("lr: .inf\n", "--lr must be a number"),
    ],
)
def test_a_bad_config_file_is_one_line(content, message, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    if content is not None:
        cfg.write_text(content)
    code, _, err = run(capsys, "train", "--config", str(cfg), "--print-config")
    assert code == 1 and message in err and err.count("\n") == 1, err


def test_config_and_resume_do_not_mix(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--config", "x.yaml", "--resume", str(tmp_path))
    assert code == 1 and "--config starts a new run" in err


# ---------------------------------------------------------------------------------- resume


def test_a_run_stopped_by_max_steps_says_so_and_resumes_to_its_epochs(tmp_path, capsys):
    out_dir = tmp_path / "r"
    code, out, err = run(capsys, "train", *TINY, "--max-steps", "2", "--out", str(out_dir), "--json")
    assert code == 0, err
    first = last_json(out)
    assert first["epochs"] == 0 and first["steps"] == 2
    assert "after 0 epochs" not in err and "2 steps (inside epoch 1; stopped by max-steps 2)" in err
    # TINY: 1 epoch of 120 images in batches of 40 (3 steps); resumed with --epochs 2: on to 6 steps
    code, out, err = run(capsys, "train", "--resume", str(out_dir), "--epochs", "2", "--json")
    assert code == 0, err
    done = last_json(out)
    assert done["epochs"] == 2 and done["stopped"] == "completed" and done["steps"] == 6
    assert "after 2 epochs" in err
    # the one-cycle schedule is the 2-epoch run's: its last learning rate is a straight 2-epoch run's
    straight = tmp_path / "straight"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", str(straight))
    assert code == 0, err
    lr = [r["lr"] for r in deeper.api.read_history(out_dir / "metrics.csv")]
    assert lr[-1] == pytest.approx(deeper.api.read_history(straight / "metrics.csv")[-1]["lr"], rel=1e-12)


# ---------------------------------------------------------------------------------- weights know their data


@pytest.fixture
def digits_weights(tmp_path):
    from deeper.models import create_model, save_weights

    path = tmp_path / "w.safetensors"
    meta = {"model": "lenet5", "num_classes": 10, "in_chans": 1, "img_size": 28, "dataset": "digits"}
    save_weights(create_model("lenet5", num_classes=10, in_chans=1), path, meta)
    return path


def test_eval_scores_weights_on_the_dataset_they_record(digits_weights, capsys):
    code, out, err = run(capsys, "eval", "--weights", str(digits_weights), "--json")
    assert code == 0, err
    r = last_json(out)
    assert r["data"] == "digits" and r["images"] == 360 and "on digits/test" in err


def test_misclassified_draws_the_dataset_the_weights_record(digits_weights, tmp_path, capsys):
    code, out, err = run(
        capsys, "misclassified", "--weights", str(digits_weights), "-o", str(tmp_path / "w.png"), "--json"
    )
    assert code == 0, err
    assert last_json(out)["images"] == 360


def test_weights_that_record_no_dataset_ask_for_data(tmp_path, capsys):
    from deeper.models import create_model, save_weights

    path = tmp_path / "bare.safetensors"
    save_weights(create_model("lenet5", num_classes=10, in_chans=1), path, {"model": "lenet5"})
    code, _, err = run(capsys, "eval", "--weights", str(path))
    assert code == 1 and "do not record their dataset; pass --data" in err and err.count("\n") == 1


def test_every_command_that_loads_weights_takes_a_run_folder(digits_weights, tmp_path, capsys):
    """The one loading path (``load_weights``) reads a run folder's model.safetensors, so every command does."""
    from deeper.models import model_from_weights

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.safetensors").write_bytes(digits_weights.read_bytes())
    net, meta = model_from_weights(run_dir)
    assert meta["dataset"] == "digits"
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    code, out, err = run(
        capsys,
        "export",
        "--weights",
        str(run_dir),
        "-o",
        str(tmp_path / "m.onnx"),
        "--data",
        "digits",
        "--json",
    )
    assert code == 0, err
    assert (tmp_path / "m.onnx").is_file()


def test_config_yaml_records_what_the_run_resolved_and_the_versions(tmp_path, capsys):
    import torch

    import deeper

    out_dir = tmp_path / "r"
    code, _, err = run(capsys, "train", *TINY, "--out", str(out_dir))
    assert code == 0, err
    document = yaml.safe_load((out_dir / "config.yaml").read_text())
    resolved, versions = document["resolved"], document["versions"]
    assert (
        document["run"]["device"] == "auto" and resolved["device"] == "cpu"
    )  # the option, and what it became
    assert document["sampling"]["val_size"] is None and resolved["val_size"] == 143  # 10% of digits' 1,437
    assert resolved["train_size"] == 120 and resolved["world_size"] == 1
    assert isinstance(resolved["channels_last"], bool)
    assert versions["deeper"] == deeper.__version__ and versions["torch"] == torch.__version__
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert versions["git_commit"].split("+")[0] == head.stdout.strip()
    # the record is no option: the file still resumes and reruns
    code, _, err = run(capsys, "train", "--resume", str(out_dir), "--epochs", "2")
    assert code == 0, err
    code, out, err = run(capsys, "train", "--config", str(out_dir / "config.yaml"), "--print-config")
    assert code == 0 and "resolved" not in yaml.safe_load(out)
