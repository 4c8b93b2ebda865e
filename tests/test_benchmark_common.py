"""``benchmarks/_common.py``: results of a partial benchmark run merge into the earlier file."""

from __future__ import annotations

import json
import sys

from tests.helpers import load_benchmark


def test_a_partial_run_keeps_the_other_configurations_and_names_each_rows_cpu(tmp_path, monkeypatch):
    common = load_benchmark("_common")
    monkeypatch.setattr(common, "machine", lambda: "New CPU, 2 cores, 1 threads, no GPU")
    monkeypatch.setattr(common, "cpu_name", lambda: "New CPU")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "machine": "Old CPU, 2 cores, 1 threads, no GPU",
        "rows": [{"config": "a", "x": 1}, {"config": "b", "x": 2}],
        "results": {"a": {"x": 1}, "b": {"x": 2}}, "classical": {"y": 1}, "budget_s": 60,
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
    assert (
        merged["classical"] == {"y": 1} and merged["budget_s"] == 60
    )  # what the partial run did not make stays
    assert (
        common.merge_runs(path, {"rows": [], "budget_s": 90}, ["a"])["budget_s"] == 90
    )  # and the fresh wins
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


def test_generation_keeps_the_rows_references_and_text_run_it_did_not_measure_again(tmp_path, monkeypatch):
    gen = load_benchmark("generation")
    common = sys.modules["_common"]  # the module generation.py merges with
    monkeypatch.setattr(common, "machine", lambda: "New CPU, 2 cores, 2 threads, no GPU")
    monkeypatch.setattr(common, "cpu_name", lambda: "New CPU")
    path = tmp_path / "generation.json"
    path.write_text(json.dumps({
        "machine": "Old CPU, 2 cores, 2 threads, no GPU",
        "classifiers": {"mnist": {"test_accuracy": 0.97}, "fashion-mnist": {"test_accuracy": 0.85}},
        "references": [{"dataset": "mnist", "fid": 1.0}, {"dataset": "fashion-mnist", "fid": 2.0}],
        "rows": [{"dataset": "mnist", "model": "dcgan", "fid": 5.0}, {"dataset": "fashion-mnist", "model": "ddpm"}],
        "text_to_image": {"prompt_match": 0.1},
    }))  # fmt: skip
    fresh = {"classifiers": {"mnist": {"test_accuracy": 0.98}}, "references": [{"dataset": "mnist", "fid": 0.5}],
             "rows": [{"config": "mnist-wgan-gp", "dataset": "mnist", "model": "wgan-gp"}]}  # fmt: skip
    out = gen.merged(path, fresh, ["mnist"])
    assert [(r["config"], r["CPU"]) for r in out["rows"]] == [
        ("mnist-dcgan", "Old CPU"), ("mnist-wgan-gp", "New CPU"), ("fashion-mnist-ddpm", "Old CPU")
    ]  # fmt: skip
    assert out["references"] == [{"dataset": "mnist", "fid": 0.5}, {"dataset": "fashion-mnist", "fid": 2.0}]
    assert out["classifiers"]["mnist"]["test_accuracy"] == 0.98 and "fashion-mnist" in out["classifiers"]
    assert out["text_to_image"] == {"prompt_match": 0.1} and "results" not in out
