"""``deeper experiment``: the statistics that decide a verdict, running and recording an experiment, the
report, the command line, the committed results, and (slow) every quick profile end to end."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from deeper.errors import ConfigError
from deeper.experiments import (
    PROFILES,
    VERDICTS,
    Experiment,
    Outcome,
    Profile,
    Source,
    get_experiment,
    list_experiments,
    run_experiment,
    stats,
)
from deeper.experiments import base as base_module
from deeper.experiments.report import default_markdown, markdown, render_html, write_report
from deeper.experiments.results import load_result
from tests.helpers import last_json, run

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "experiments"
SUP, NOT, INC = stats.SUPPORTED, stats.NOT_SUPPORTED, stats.INCONCLUSIVE

#: the claims issue 27 lists, each an experiment
CLAIMS = {
    "conv3x3-vs-5x5", "depth-fewer-params", "depth-less-data", "skip-connections", "conv1x1", "conv-time-share",
    "fp16-inference", "fewer-bits", "batch-size-sharpness", "regularization", "early-stopping", "bias-variance",
    "bagging-vs-boosting", "gd-variants", "optimizers", "accuracy-tricks", "transfer", "gpu-vs-cpu", "data-parallel",
    "robustness",
}  # fmt: skip


# ------------------------------------------------------------------------------------- statistics


def test_paired_supports_a_clear_gain_and_refutes_a_clear_loss():
    a = [0.90, 0.91, 0.89, 0.90, 0.92]
    up = [x + d for x, d in zip(a, [0.03, 0.02, 0.04, 0.03, 0.025])]
    down = [x - d for x, d in zip(a, [0.03, 0.02, 0.04, 0.03, 0.025])]
    t = stats.paired(a, up, claim="greater")
    assert t["verdict"] == SUP and t["ci"][0] > 0 and t["p_greater"] < 0.05 and t["df"] == 4
    assert math.isclose(t["mean_diff"], 0.029, abs_tol=1e-12)
    assert stats.paired(a, down, claim="greater")["verdict"] == NOT
    assert stats.paired(a, down, claim="less")["verdict"] == SUP


def test_paired_is_inconclusive_on_noise_and_on_one_pair():
    a = [0.90, 0.91, 0.89]
    b = [0.92, 0.89, 0.90]  # differences +0.02, -0.02, +0.01: no direction
    t = stats.paired(a, b, claim="greater")
    assert t["verdict"] == INC and t["ci"][0] < 0 < t["ci"][1]
    one = stats.paired([0.5], [0.9])
    assert one["verdict"] == INC and one["reason"] == "fewer than two pairs"
    with pytest.raises(ValueError, match="same length"):
        stats.paired([1, 2], [1])
    with pytest.raises(ValueError, match="claim must be"):
        stats.paired([1, 2], [1, 2], claim="bigger")


def test_paired_greater_is_refuted_when_an_effect_of_delta_is_ruled_out():
    a = [0.5, 0.6, 0.7, 0.8]
    b = [x + d for x, d in zip(a, [0.001, -0.001, 0.002, -0.002])]  # no gain, tightly
    assert stats.paired(a, b, claim="greater", delta=0.0)["verdict"] == INC
    assert stats.paired(a, b, claim="greater", delta=0.05)["verdict"] == NOT  # a gain of 0.05 is ruled out
    tight = [x + d for x, d in zip(a, [0.001, 0.002, 0.001, 0.0015])]
    assert stats.paired(a, tight, claim="greater", delta=0.05)["verdict"] == SUP  # shown, however small


def test_noninferiority_uses_the_margin():
    a = [0.95, 0.96, 0.94, 0.95]
    b = [x - d for x, d in zip(a, [0.002, 0.003, 0.001, 0.002])]  # slightly worse, tightly
    assert stats.paired(a, b, claim="noninferior", delta=0.01)["verdict"] == SUP
    assert stats.paired(a, b, claim="noninferior", delta=0.0005)["verdict"] == NOT


def test_paired_with_identical_differences_has_a_zero_width_interval():
    t = stats.paired([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], claim="greater")
    assert t["ci"] == [0.5, 0.5] and t["p_greater"] == 0.0 and t["verdict"] == SUP


def test_wilcoxon_is_given_from_six_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=6).tolist()
    b = [x + 1 + 0.1 * i for i, x in enumerate(a)]
    assert "wilcoxon_p_two_sided" in stats.paired(a, b)
    assert "wilcoxon_p_two_sided" not in stats.paired(a[:5], b[:5])


def test_mcnemar_on_paired_predictions():
    same = [True] * 900 + [False] * 100
    t = stats.paired_predictions(same, same, claim="noninferior", delta=0.001)
    assert t["mean_diff"] == 0 and t["p_two_sided"] == 1.0 and t["verdict"] == SUP
    worse = [True] * 890 + [False] * 110  # ten images lost, none gained
    t = stats.paired_predictions(same, worse, claim="noninferior", delta=0.001)
    assert t["only_a_right"] == 10 and t["only_b_right"] == 0
    assert math.isclose(t["p_two_sided"], 2 * 0.5**10)
    assert t["verdict"] == NOT and t["ci"][1] < -0.001
    with pytest.raises(ValueError, match="same, non-empty"):
        stats.paired_predictions([True], [True, False])


def test_two_proportions_are_conservative():
    t = stats.accuracies(0.99, 0.90, 10_000, claim="less")
    assert t["verdict"] == SUP and t["ci"][1] < 0
    assert stats.accuracies(0.99, 0.989, 1000, claim="less")["verdict"] == INC


def test_trend_reads_a_monotone_relation_either_way():
    x = [1, 2, 3, 4, 5, 6]
    assert stats.trend(x, [1, 3, 2, 5, 6, 8])["verdict"] == SUP
    assert stats.trend(x, [8, 6, 5, 2, 3, 1])["verdict"] == NOT
    assert stats.trend(x, [8, 6, 5, 2, 3, 1], claim="decreasing")["verdict"] == SUP
    flat = stats.trend(x, [1] * 6)
    assert flat["verdict"] == INC and flat["rho"] is None
    assert stats.trend([1, 2], [1, 2])["verdict"] == INC


def test_samples_compare_two_sets_of_timings():
    slow, fast = [10.0, 11, 12, 10.5, 11.5], [5.0, 5.5, 6, 5.2, 5.8]
    t = stats.samples(slow, fast, claim="less")
    assert t["verdict"] == SUP and math.isclose(t["ratio_b_over_a"], 5.5 / 11)
    assert stats.samples(fast, slow, claim="less")["verdict"] == NOT
    assert stats.samples([1.0], [2.0])["verdict"] == INC


def test_one_sample_against_a_threshold():
    assert stats.one_sample([0.8, 0.82, 0.79, 0.81], 0.5, claim="greater")["verdict"] == SUP
    t = stats.one_sample([0.3, 0.32, 0.29], 0.5, claim="greater")
    assert t["verdict"] == NOT and t["threshold"] == 0.5 and math.isclose(t["mean"], 0.91 / 3)


def test_exact_and_threshold():
    assert stats.exact("fewer weights", True)["verdict"] == SUP
    assert stats.exact("fewer weights", False)["verdict"] == NOT
    assert stats.threshold("speedup", 1.2, 1.3)["verdict"] == NOT
    assert stats.threshold("latency", 1.2, 1.3, above=False)["verdict"] == SUP


@pytest.mark.parametrize(
    "verdicts, rule, expected",
    [
        ([SUP, SUP], "all", SUP),
        ([SUP, INC], "all", INC),
        ([SUP, NOT], "all", NOT),
        ([INC, NOT], "any", INC),
        ([NOT, NOT], "any", NOT),
        ([NOT, SUP], "any", SUP),
        ([SUP, SUP, NOT], "majority", SUP),
        ([SUP, NOT, INC], "majority", INC),
        ([], "all", INC),
    ],
)
def test_combine(verdicts, rule, expected):
    assert stats.combine([{"verdict": v} for v in verdicts], rule) == expected


def test_combine_refuses_an_unknown_rule():
    with pytest.raises(ValueError, match="unknown rule"):
        stats.combine([{"verdict": SUP}], "most")


def test_mean_sd():
    assert stats.mean_sd([2.0]) == (2.0, 0.0)
    m, sd = stats.mean_sd([1, 2, 3, 4])
    assert m == 2.5 and math.isclose(sd, np.std([1, 2, 3, 4], ddof=1))


# ------------------------------------------------------------------------------ measurement parts


def test_the_bias_variance_decomposition_adds_up():
    from deeper.experiments.claims.generalization import _target, bias_variance

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 40)
    t = _target(x) + 0.3 * rng.standard_normal(40)
    xt = np.linspace(0.05, 0.95, 100)
    rows = {d: bias_variance(d, x, t, xt, resamples=60, noise=0.3, rng=rng) for d in (0, 3, 9)}
    for r in rows.values():
        assert abs(r["test_mse"] - r["sum"]) / r["test_mse"] < 0.1
    assert rows[0]["bias2"] > 10 * rows[3]["bias2"]  # a constant cannot follow a sine
    assert rows[9]["variance"] > rows[3]["variance"]


def test_loss_along_directions_restores_the_weights():
    from deeper.data import ImageDataset
    from deeper.experiments.claims.generalization import _direction, loss_along
    from deeper.experiments.probe import mlp

    torch.manual_seed(0)
    model = mlp([8], in_features=16, num_classes=3)
    ds = ImageDataset("toy", torch.randint(0, 255, (20, 1, 4, 4), dtype=torch.uint8), torch.randint(0, 3, (20,)),
                      ("a", "b", "c"))  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    d = _direction(model, torch.Generator().manual_seed(0))
    assert all(
        float(di.abs().sum()) == 0 for di, p in zip(d, model.parameters()) if p.dim() == 1
    )  # biases stay
    for di, p in zip(d, model.parameters()):  # filter-normalised: each row as long as the weights' row
        if p.dim() == 2:
            assert torch.allclose(di.norm(dim=1), p.detach().norm(dim=1), rtol=1e-4)
    curves = loss_along(model, ds, [d], [-1.0, 0.0, 1.0])
    assert len(curves) == 1 and len(curves[0]) == 3 and curves[0][0] != curves[0][1]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_time_to_target_is_censored_at_the_budget():
    from deeper.experiments.claims.optimization import time_to

    curve = [{"seconds": 0.0, "loss": 2.0}, {"seconds": 0.5, "loss": 0.4}, {"seconds": 0.9, "loss": 0.2}]
    assert time_to(curve, 0.3, 5.0) == 0.9
    assert time_to(curve, 0.1, 5.0) == 5.0


def test_three_by_three_stacks_see_the_same_field_with_fewer_weights():
    from deeper.analysis.summary import summarize
    from deeper.experiments.claims.depth import _stacks

    nets = {k: summarize(b(), (1, 28, 28)) for k, b in _stacks(16, 1, 10, 28).items()}
    convs = {k: [r for r in s.rows if r.type == "Conv2d"] for k, s in nets.items()}
    assert convs["one 5x5"][-1].receptive_field == convs["two 3x3"][-1].receptive_field
    assert sum(r.params for r in convs["two 3x3"]) < sum(r.params for r in convs["one 5x5"])


# -------------------------------------------------------------------------------------- registry


def test_every_claim_of_the_issue_is_an_experiment_in_the_notes_order():
    exps = list_experiments()
    names = [e.name for e in exps]
    assert set(names) >= CLAIMS and len(names) == len(set(names))
    assert names[: len(base_module.ORDER)] == list(base_module.ORDER)
    for e in exps:
        assert set(e.profiles) == set(PROFILES) and e.sources and e.claim and e.method
        assert not e.reusable or e.benchmark
    assert [e.name for e in list_experiments("depth-*")] == ["depth-fewer-params", "depth-less-data"]


def test_unknown_names_and_notes_are_refused():
    with pytest.raises(ConfigError, match="experiment"):
        get_experiment("conv3x3-vs-5x6")
    with pytest.raises(ValueError, match="unknown note"):
        Source("999", "nowhere")
    with pytest.raises(ValueError, match="no full profile"):
        Experiment("x", "x", "x", (Source("004", "s"),), "m", {"quick": Profile("q")}, run=lambda ctx: None)


# ---------------------------------------------------------------------------- running, recording


def _toy_run(ctx):
    from deeper.experiments import figures as F

    t = stats.paired([1.0, 2.0, 3.0], [1.5, 2.5, 3.7], claim="greater", labels=("a", "b"), what="b beats a")
    fig, (ax,) = F.new(1)
    F.bars(ax, {"a": [1.0, 2.0, 3.0], "b": [1.5, 2.5, 3.7]})
    F.save(fig, ctx.figure("toy"), "a toy")
    ctx.log(f"  threads {torch.get_num_threads()}")
    return Outcome(
        t["verdict"], f"b beats a by {t['mean_diff']:.3f} (n = {ctx.params['n']}).", [t],
        numbers={"mean_diff": t["mean_diff"]}, figures=[("toy.png", "the toy figure")], data={"a": [1, 2, 3]},
        rule="the one test",
    )  # fmt: skip


@pytest.fixture
def toy(monkeypatch):
    """A registered experiment that runs in milliseconds."""
    exp = Experiment(
        name="toy-claim", title="A toy claim", claim="b beats a", sources=(Source("004", "nowhere"),),
        method="a paired t-test", profiles={"quick": Profile("three pairs", {"n": 3}), "full": Profile("more", {"n": 9})},
        run=_toy_run,
    )  # fmt: skip
    base_module._load_all()
    monkeypatch.setitem(base_module._REGISTRY, exp.name, exp)
    return exp


def test_a_run_writes_its_result_and_figures(toy, tmp_path):
    threads = torch.get_num_threads()
    lines = []
    doc = run_experiment("toy-claim", "quick", results=tmp_path, log=lines.append)
    folder = tmp_path / "toy-claim" / "quick"
    assert sorted(p.name for p in folder.iterdir()) == ["result.json", "toy.png"]
    assert not list((tmp_path / "toy-claim").glob(".*"))  # no staging folder left
    saved = json.loads((folder / "result.json").read_text())
    assert saved == load_result(tmp_path, "toy-claim", "quick")
    assert saved["verdict"] == doc["verdict"] == SUP and saved["params"] == {"n": 3}
    assert saved["command"] == "deeper experiment run toy-claim --profile quick"
    assert saved["figures"] == [{"file": "toy.png", "caption": "the toy figure"}]
    assert saved["machine"]["cores"] == os.cpu_count() and saved["sources"][0]["note"] == "004"
    assert lines == ["  threads 1"] and torch.get_num_threads() == threads  # one thread during the run only


def test_a_failed_run_keeps_the_last_result(toy, tmp_path, monkeypatch):
    run_experiment("toy-claim", "quick", results=tmp_path, log=lambda _m: None)

    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(base_module._REGISTRY, "toy-claim", dataclasses.replace(toy, run=broken))
    with pytest.raises(RuntimeError, match="boom"):
        run_experiment("toy-claim", "quick", results=tmp_path, log=lambda _m: None)
    assert load_result(tmp_path, "toy-claim", "quick")["verdict"] == SUP
    assert sorted(p.name for p in (tmp_path / "toy-claim").iterdir()) == ["quick"]


def test_a_run_must_write_the_figures_it_names_and_a_known_verdict(toy, tmp_path, monkeypatch):
    def no_figure(ctx):
        return Outcome(SUP, "x", [], figures=[("missing.png", "never drawn")])

    def odd_verdict(ctx):
        return Outcome("probably", "x", [])

    for run_fn, message in ((no_figure, "did not write it"), (odd_verdict, "not one of")):
        monkeypatch.setitem(base_module._REGISTRY, "toy-claim", dataclasses.replace(toy, run=run_fn))
        with pytest.raises((RuntimeError, ValueError), match=message):
            run_experiment("toy-claim", "full", results=tmp_path, log=lambda _m: None)
        assert load_result(tmp_path, "toy-claim", "full") is None


def test_reuse_needs_an_experiment_that_reads_its_benchmark(toy, tmp_path):
    with pytest.raises(ConfigError, match="reuses no benchmark"):
        run_experiment("toy-claim", "quick", results=tmp_path, reuse=True)
    with pytest.raises(ConfigError, match="unknown profile"):
        run_experiment("toy-claim", "medium", results=tmp_path)


def test_reuse_reads_the_committed_benchmark_results(tmp_path):
    doc = run_experiment("data-parallel", "full", results=tmp_path, reuse=True, log=lambda _m: None)
    assert doc["reused"] == "benchmarks/ddp_scaling.py" and doc["params"] == {}
    assert doc["evidence"] == [
        "benchmarks/results/ddp_scaling.json",
        "benchmarks/results/ddp_scaling_b256.json",
    ]
    assert doc["command"].endswith("--profile full --reuse") and doc["verdict"] in VERDICTS
    assert (tmp_path / "data-parallel" / "full" / "ddp.png").is_file()


# ------------------------------------------------------------------------------------------ report


def test_the_report_shows_every_finished_experiment_with_its_figures(toy, tmp_path):
    root = tmp_path / "results"
    run_experiment("toy-claim", "quick", results=root, log=lambda _m: None)
    r = write_report(root)
    assert r["markdown"] == str(tmp_path / "results.md") == str(default_markdown(root))
    assert r["finished"] == 1 and r["registered"] == len(list_experiments())
    assert tuple(r["verdicts"]["toy-claim"]) == (SUP, "quick") and r["verdicts"]["conv1x1"] is None
    md = Path(r["markdown"]).read_text()
    assert "## A toy claim (`toy-claim`)" in md and "**Verdict: supported**" in md
    for target in re.findall(r"\]\(([^)#\s]+)\)", md):  # every link resolves from the page's folder
        assert (Path(r["markdown"]).parent / target).exists(), target
    assert "results/toy-claim/quick/toy.png" in md and "Not run yet" in md
    page = Path(r["html"]).read_text()
    assert '<img src="toy-claim/quick/toy.png"' in page and page.count("<section") == r["registered"]
    run_experiment("toy-claim", "full", results=root, log=lambda _m: None)
    md = markdown(root)
    assert (
        "toy-claim/full/toy.png" in md and "Quick profile: **supported**" in md
    )  # full shown, quick beside it


# --------------------------------------------------------------------------------------- commands


def test_list_json_names_every_experiment(capsys, tmp_path):
    code, out, err = run(capsys, "experiment", "list", "--results", str(tmp_path), "--json")
    rows = last_json(out)["experiments"]
    assert code == 0 and {r["name"] for r in rows} >= CLAIMS
    assert all(r["sources"] and r["verdicts"] == {} for r in rows)
    assert "skip-connections  [not run]" in err


def test_run_and_report_from_the_command_line(toy, capsys, tmp_path):
    code, out, _ = run(capsys, "experiment", "run", "toy-claim", "--results", str(tmp_path / "r"), "--json")
    assert code == 0 and last_json(out)["runs"][0]["verdict"] == SUP
    code, out, _ = run(capsys, "experiment", "report", "--results", str(tmp_path / "r"), "--markdown",
                       str(tmp_path / "docs" / "claims.md"), "--json")  # fmt: skip
    r = last_json(out)
    assert code == 0 and r["finished"] == 1 and Path(r["markdown"]).is_file()
    assert "](../r/toy-claim/quick/toy.png)" in Path(r["markdown"]).read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no-such-claim"], "unknown experiment 'no-such-claim'"),
        (["run", "conv1x1,nope"], "unknown experiment 'nope'"),
        (["run", " , "], "name at least one experiment"),
        (["run", "conv1x1", "--reuse"], "reuses no benchmark"),
        (["report", "--markdown", "x.html"], "must be a .md file"),
    ],
)
def test_mistakes_are_one_line(argv, message, capsys, tmp_path):
    code, _, err = run(capsys, "experiment", *argv, "--results", str(tmp_path))
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------ committed results


def _committed():
    return sorted(COMMITTED.glob("*/*/result.json"))


def test_every_experiment_has_committed_results_with_their_figures():
    found = {p.parent.parent.name for p in _committed()}
    assert found >= CLAIMS, f"run `deeper experiment run NAME`: no results for {sorted(CLAIMS - found)}"
    for path in _committed():
        doc = json.loads(path.read_text())
        assert doc["verdict"] in VERDICTS and doc["experiment"] == path.parent.parent.name
        assert doc["profile"] == path.parent.name and doc["because"]
        assert doc["tests"] or (doc["verdict"] == INC and doc["notes"])  # no test: a GPU claim on a CPU
        assert doc["figures"], path
        for f in doc["figures"]:
            assert (path.parent / f["file"]).is_file(), f"{path.parent}: {f['file']} missing"


def test_the_committed_report_is_fresh():
    """docs/experiments.md and docs/experiments/report.html are the report of the committed results, with every
    figure (`deeper experiment report` rewrites them)."""
    page = ROOT / "docs" / "experiments.md"
    assert page.read_text() == markdown(COMMITTED, "experiments"), "run `deeper experiment report`"
    html = render_html(COMMITTED)
    assert (COMMITTED / "report.html").read_text() == html, "run `deeper experiment report`"
    for exp in list_experiments():
        shown = load_result(COMMITTED, exp.name, "full") or load_result(COMMITTED, exp.name, "quick")
        for f in shown["figures"] if shown else []:
            assert f'<img src="{exp.name}/{shown["profile"]}/{f["file"]}"' in html


# ------------------------------------------------------------------------ every quick profile (CI)


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory):
    """One cache of reference models for the module (the 16-bit, fewer-bits and robustness experiments share one)."""
    return tmp_path_factory.mktemp("experiment-cache")


@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in list_experiments()])
def test_quick_profile_runs(name, quick_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPER_EXPERIMENT_CACHE", str(quick_cache))
    doc = run_experiment(name, "quick", results=tmp_path, log=lambda _m: None)
    assert doc["verdict"] in VERDICTS and doc["because"]
    assert doc["tests"] or (doc["verdict"] == INC and doc["notes"])
    assert all(t["verdict"] in VERDICTS for t in doc["tests"])
    for f in doc["figures"]:
        assert (tmp_path / name / "quick" / f["file"]).stat().st_size > 5_000
    json.dumps(load_result(tmp_path, name, "quick"), allow_nan=False)  # strict JSON: no NaN
