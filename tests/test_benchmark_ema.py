"""``benchmarks/ema.py``: its runs are valid ``deeper train --ema`` commands, and a small end-to-end run (slow)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def ema():
    return load_benchmark("ema")


def test_every_configuration_is_a_valid_deeper_train_command_with_ema(ema, tmp_path):
    from deeper.cli import build_parser

    args = SimpleNamespace(epochs=None, device="cpu", amp="off", data_dir=None, cuda_graphs=False)
    for options, seeds in ema.CONFIGS.values():
        argv = ema.train_argv("mnist", options, seeds[0], tmp_path / "r", args)
        ns = build_parser().parse_args(argv[3:])  # SystemExit on an unknown option
        assert ns.ema == 0.999 and ns.seed == seeds[0]


def test_summary_pairs_each_run_with_its_raw_weights(ema):
    runs = [
        {"test_accuracy": 0.9960, "test_accuracy_raw": 0.9955, "train_seconds": 60.0},
        {"test_accuracy": 0.9950, "test_accuracy_raw": 0.9952, "train_seconds": 120.0},
    ]
    s = ema.summarize("x", runs)
    assert s["raw"] == [0.9955, 0.9952] and s["ema"] == [0.9960, 0.9950]
    assert s["gain_mean"] == pytest.approx((0.0005 - 0.0002) / 2)


@pytest.mark.slow
def test_trains_both_configurations_and_writes_the_table(ema, tmp_path, one_thread, capsys):
    output = tmp_path / "ema.json"
    code = ema.main([
        "--data", "digits", "--epochs", "1", "--device", "cpu", "--jobs", "2",
        "--out", str(tmp_path / "runs"), "--output", str(output),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(output.read_text())
    assert [r["config"] for r in result["results"]] == list(ema.CONFIGS)
    for r in result["results"]:
        assert r["runs"] == 2 and all(0 <= a <= 1 for a in r["raw"] + r["ema"])
    assert "| digits-member | 2 |" in capsys.readouterr().out
