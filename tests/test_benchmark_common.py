"""``benchmarks/_common.py``: results of a partial benchmark run merge into the earlier file."""

from __future__ import annotations

import json

from tests.helpers import load_benchmark


def test_a_partial_run_keeps_the_other_configurations_and_names_each_rows_cpu(tmp_path, monkeypatch):
    common = load_benchmark("_common")
    monkeypatch.setattr(common, "machine", lambda: "New CPU, 2 cores, 1 threads, no GPU")
    monkeypatch.setattr(common, "cpu_name", lambda: "New CPU")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "machine": "Old CPU, 2 cores, 1 threads, no GPU",
        "rows": [{"config": "a", "x": 1}, {"config": "b", "x": 2}],
        "results": {"a": {"x": 1}, "b": {"x": 2}},
    }))  # fmt: skip
    merged = common.merge_runs(path, {"rows": [{"config": "b", "x": 3}, {"config": "c", "x": 4}],
                                      "results": {"c": {"x": 4}, "b": {"x": 3}}}, ["c", "b", "a"])  # fmt: skip
    assert [(r["config"], r["x"], r["CPU"]) for r in merged["rows"]] == [
        ("c", 4, "New CPU"), ("b", 3, "New CPU"), ("a", 1, "Old CPU")
    ]  # fmt: skip
    assert list(merged["results"]) == ["c", "b", "a"] and merged["results"]["b"] == {"x": 3}
    assert merged["machines"] == [
        "Old CPU, 2 cores, 1 threads, no GPU",
        "New CPU, 2 cores, 1 threads, no GPU",
    ]
    assert merged["machine"] == "; ".join(merged["machines"])
    # a run that replaces every configuration names only its own machine
    again = common.merge_runs(
        path, {"rows": [{"config": "a", "x": 5}, {"config": "b", "x": 6}], "results": {}}, ["a", "b"]
    )
    assert again["machines"] == ["New CPU, 2 cores, 1 threads, no GPU"] and len(again["rows"]) == 2
    # no earlier file: the fresh rows alone
    assert [
        r["config"]
        for r in common.merge_runs(tmp_path / "none.json", {"rows": [{"config": "a"}]}, ["a"])["rows"]
    ] == ["a"]
