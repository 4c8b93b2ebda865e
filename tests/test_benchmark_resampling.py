"""``benchmarks/resampling.py``: seeds, bagging and boosting ensembles side by side (end to end: slow)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def rs():
    return load_benchmark("resampling")


def test_row_keeps_members_ensembles_and_the_boosting_weights(rs):
    result = {
        "members": [{"test_accuracy": 0.99, "train_seconds": 10.0}, {"test_accuracy": 0.98, "train_seconds": 30.0}],
        "test_accuracy": 0.992, "vote_test_accuracy": 0.991,
        "boost_test_accuracy": 0.993, "boost_errors": [0.01, 0.2], "boost_alphas": [6.8, 3.5],
    }  # fmt: skip
    r = rs.row("boosting", result)
    assert r["single_mean"] == pytest.approx(0.985) and r["train_seconds_per_member"] == 20.0
    assert r["boost_vote"] == 0.993 and r["boost_alphas"] == [6.8, 3.5]
    plain = rs.row("seeds", {k: v for k, v in result.items() if not k.startswith("boost")})
    assert plain["boost_vote"] is None and plain["options"] == {}


@pytest.mark.slow
def test_trains_the_four_ensembles_and_writes_the_table(rs, tmp_path, one_thread, capsys):
    output = tmp_path / "rs.json"
    code = rs.main([
        "--data", "digits", "--epochs", "1", "--members", "2",
        "--out", str(tmp_path / "runs"), "--output", str(output),
    ])  # fmt: skip
    assert code == 0
    records = json.loads(output.read_text())["results"]
    assert [r["config"] for r in records] == list(rs.CONFIGS)
    by = {r["config"]: r for r in records}
    assert by["seeds"]["boost_vote"] is None and 0 <= by["boosting"]["boost_vote"] <= 1
    assert len(by["boosting-0.3"]["boost_alphas"]) == len(by["boosting-0.3"]["members"])
    assert (tmp_path / "runs" / "digits-boosting" / "member-1" / "sample_weights.safetensors").is_file()
    assert "| bagging |" in capsys.readouterr().out
