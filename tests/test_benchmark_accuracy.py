"""``benchmarks/accuracy.py``: the member commands it builds, and a small end-to-end run (slow)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def acc():
    return load_benchmark("accuracy")


def args(**kw):
    base = dict(epochs=None, device="cuda", amp="bf16", data_dir=None, cuda_graphs=True)
    return SimpleNamespace(**{**base, **kw})


def test_member_command_spells_every_option(acc, tmp_path):
    argv = acc.train_argv("fashion-mnist", acc.CLOTHES, 3, tmp_path / "m", args())
    line = " ".join(argv[1:])
    assert "-m deeper train --data fashion-mnist --seed 3" in line
    assert "--model-arg width=4" in line and "--channels-last" in argv and "--cuda-graphs" in argv
    assert argv[argv.index("--epochs") + 1] == "50" and argv[argv.index("--lr") + 1] == "0.1"
    assert "--no-channels-last" in acc.train_argv("mnist", {"channels_last": False}, 0, tmp_path, args())
    # --epochs overrides the group's epochs (smoke runs)
    short = acc.train_argv("mnist", acc.DIGITS, 0, tmp_path / "m", args(epochs=1))
    assert short[short.index("--epochs") + 1] == "1"


def test_every_group_is_a_valid_deeper_train_command(acc, tmp_path):
    from deeper.cli import build_parser

    parser = build_parser()
    for data, groups in acc.ENSEMBLES.values():
        for options, seeds in groups.values():
            argv = acc.train_argv(data, options, seeds[0], tmp_path / "m", args())
            ns = parser.parse_args(argv[3:])  # SystemExit on an option deeper train does not know
            assert ns.data == data and ns.seed == seeds[0]
            assert ns.epochs == options["epochs"] and ns.model == options["model"]
    full = acc.ENSEMBLES["mnist"][1]["resnet20-full"][0]
    argv = acc.train_argv("mnist", full, 0, tmp_path / "m", args())
    assert argv[argv.index("--val-size") + 1] == "0"  # all 60,000 training images


def test_members_are_planned_round_robin_over_the_groups(acc, tmp_path):
    plan = acc.make_plan(["mnist", "fashion-mnist"], data=None, members=None, out=tmp_path)
    groups = list(acc.ENSEMBLES["mnist"][1])
    mnist = [x for x in plan if x[0] == "mnist"]
    assert [x[2] for x in mnist[: len(groups)]] == groups  # every group's first seed comes first
    assert [x[4] for x in mnist[: len(groups)]] == [s[0] for _, s in acc.ENSEMBLES["mnist"][1].values()]
    assert (
        mnist[len(groups)][2] == groups[0]
        and mnist[len(groups)][4] == acc.ENSEMBLES["mnist"][1][groups[0]][1][1]
    )
    assert len(mnist) == sum(len(s) for _, s in acc.ENSEMBLES["mnist"][1].values())
    assert [x[0] for x in plan] == ["mnist"] * len(mnist) + ["fashion-mnist"] * (len(plan) - len(mnist))
    assert plan[0][5] == tmp_path / "mnist" / f"{groups[0]}-s0"
    two = acc.make_plan(["mnist"], data="digits", members=2, out=tmp_path)
    assert len(two) == 2 * len(groups) and {x[1] for x in two} == {"digits"}
    # --skip K leaves out each group's first K seeds (trained on another machine)
    rest = acc.make_plan(["mnist"], data=None, members=4, out=tmp_path, skip=2)
    seeds = {g: s for g, (_, s) in acc.ENSEMBLES["mnist"][1].items()}
    assert [x[4] for x in rest if x[2] == groups[0]] == seeds[groups[0]][2:4]
    assert {x[4] for x in rest} == {s for ss in seeds.values() for s in ss[2:4]}
    left = [g for g in groups if len(seeds[g]) > 2]  # the groups with seeds beyond the skipped ones
    assert [x[2] for x in rest[: len(left)]] == left


def test_scored_rows_are_the_groups_the_fixed_sets_and_all(acc, tmp_path):
    def member(group, seed):
        return ("mnist", "mnist", group, {}, seed, tmp_path / f"{group}-s{seed}")

    finished = [member("deep-convnet", 0), member("deep-convnet-wn10", 500), member("deep-convnet-w2", 100),
                member("deep-convnet-wn12", 520), member("deep-convnet", 1)]  # fmt: skip
    sets = acc.scored_sets("mnist", finished)
    assert list(sets)[:4] == ["deep-convnet", "deep-convnet-wn10", "deep-convnet-w2", "deep-convnet-wn12"]
    assert sets["deep-convnet"] == [tmp_path / "deep-convnet-s0", tmp_path / "deep-convnet-s1"]
    assert [p.name for p in sets["7-inputs"]] == [
        "deep-convnet-s0", "deep-convnet-wn10-s500", "deep-convnet-wn12-s520", "deep-convnet-s1",
    ]  # fmt: skip
    assert [p.name for p in sets["widths"]] == ["deep-convnet-wn10-s500", "deep-convnet-wn12-s520"]
    assert [p.name for p in sets["before-widths"]] == [
        "deep-convnet-s0",
        "deep-convnet-w2-s100",
        "deep-convnet-s1",
    ]
    assert sets["all"] == [x[5] for x in finished]
    # a set whose members come from one group only adds no row; one group alone has no "all"
    one = acc.scored_sets("mnist", finished[:1] + finished[4:])
    assert list(one) == ["deep-convnet"]
    assert "widths" not in acc.scored_sets(
        "mnist", [member("deep-convnet-wn10", 500), member("resnet20-full", 300)]
    )


def test_score_lists_the_errors_and_what_every_member_gets_wrong(acc):
    import torch

    labels = torch.tensor([0, 1, 1, 0])
    # two members of two classes: both wrong on image 3, one wrong on image 2, tie-free means
    probs = torch.tensor([
        [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]],
        [[0.8, 0.2], [0.1, 0.9], [0.3, 0.7], [0.2, 0.8]],
    ], dtype=torch.float64)  # fmt: skip
    r = acc.score("e/x", probs, labels, [0.75, 0.75])
    assert r["errors"] == [3] and r["wrong_by_every_member"] == 1 and r["ensemble_mean"] == 0.75
    other = {"ensemble": "e/y", "errors": [1, 3]}
    assert acc.shared_errors([r, other]) == ["e/x (1 errors) and e/y (2) share 1"]


def test_an_interrupted_member_is_resumed_not_restarted(acc, tmp_path):
    out = tmp_path / "m"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest").write_text("step-00000004")
    argv = acc.train_argv("mnist", acc.DIGITS, 0, out, args(cuda_graphs=False))
    assert argv[3:6] == ["train", "--resume", str(out)]
    assert "--model" not in argv and "--seed" not in argv  # the recipe comes from the saved config
    assert "--device" in argv and "--cuda-graphs" not in argv


@pytest.mark.slow
def test_trains_scores_and_keeps_other_ensembles(acc, tmp_path, one_thread, monkeypatch):
    output = tmp_path / "accuracy.json"
    output.write_text(json.dumps({"results": [{"ensemble": "fashion-mnist/x", "ensemble_mean": 0.5}]}))
    code = acc.main([
        "--only", "mnist", "--groups", "deep-convnet", "--members", "2", "--epochs", "1", "--data", "digits",
        "--device", "cpu", "--out", str(tmp_path / "runs"), "--output", str(output), "--jobs", "2",
    ])  # fmt: skip
    assert code == 0
    result = json.loads(output.read_text())
    rows = {r["ensemble"]: r for r in result["results"]}
    assert rows["fashion-mnist/x"]["ensemble_mean"] == 0.5  # another session's figures survive
    mine = rows["mnist/deep-convnet"]
    assert mine["members"] == 2 and len(mine["member_accuracy"]) == 2
    assert 0 <= mine["ensemble_mean"] <= 1 and mine["trained_with"] == ["cpu, amp off"]
    assert sorted(p.name for p in (tmp_path / "runs" / "mnist").iterdir() if p.is_dir()) == [
        "deep-convnet-s0", "deep-convnet-s1",
    ]  # fmt: skip
    # each member's test probabilities were kept: scoring again runs no model and agrees
    assert (tmp_path / "runs" / "mnist" / "deep-convnet-s0" / "predictions").is_dir()
    import deeper.train.ensemble as ensemble_module

    real = ensemble_module.member_probabilities
    monkeypatch.setattr(ensemble_module, "member_probabilities", lambda *a, **k: pytest.fail("scored again"))
    again = tmp_path / "again.json"
    assert acc.main([
        "--only", "mnist", "--groups", "deep-convnet", "--members", "2", "--data", "digits", "--epochs", "1",
        "--device", "cpu", "--out", str(tmp_path / "runs"), "--output", str(again), "--score-only",
    ]) == 0  # fmt: skip
    rescored = {r["ensemble"]: r for r in json.loads(again.read_text())["results"]}["mnist/deep-convnet"]
    assert rescored["member_accuracy"] == mine["member_accuracy"]
    assert rescored["ensemble_mean"] == mine["ensemble_mean"]
    # --no-cache runs every member again
    scored = []
    monkeypatch.setattr(
        ensemble_module, "member_probabilities", lambda *a, **k: scored.append(1) or real(*a, **k)
    )
    assert acc.main([
        "--only", "mnist", "--groups", "deep-convnet", "--members", "2", "--data", "digits", "--epochs", "1",
        "--device", "cpu", "--out", str(tmp_path / "runs"), "--output", str(again), "--score-only", "--no-cache",
    ]) == 0  # fmt: skip
    assert len(scored) == 2


def test_a_member_trained_with_other_options_is_not_reused(acc, tmp_path, capsys):
    member = tmp_path / "runs" / "mnist" / "deep-convnet-s0"
    member.mkdir(parents=True)
    (member / "member.json").write_text('{"data": "mnist", "epochs": 3}')
    with pytest.raises(SystemExit):
        acc.main(
            [
                "--only",
                "mnist",
                "--score-only",
                "--out",
                str(tmp_path / "runs"),
                "--output",
                str(tmp_path / "a.json"),
            ]
        )
    assert "trained with other options" in capsys.readouterr().err
