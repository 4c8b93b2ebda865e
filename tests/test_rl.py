"""DQN (task ``rl``): the replay buffer, the TD target, target synchronisation, the epsilon schedule, environments
rebuilt exactly from their seeds, a tiny corridor solved exactly, the run's logs and figures, and ``deeper play``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from deeper.cli import main
from deeper.errors import CheckpointError, ConfigError
from deeper.rl.dqn import discounted_returns, linear, sync_target, td_loss, td_target
from deeper.rl.envs import EpisodeRunner, episode_seed, make_env
from deeper.rl.nets import make_qnet
from deeper.rl.replay import ReplayBuffer
from deeper.tasks import create_task
from deeper.train import LoopState, Stepper, TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")
CHAIN = {"env": "chain-9", "steps": 300, "learning_starts": 100, "sync": 50, "gamma": 0.9, "width": 32,
         "exploration": 0.5, "episodes": 2, "test_episodes": 3}  # fmt: skip


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory) -> dict:
    """DQN trained on the 9-state corridor (4 epochs of 300 steps: a few seconds)."""
    out = tmp_path_factory.mktemp("rl") / "chain"
    return fit(TrainConfig(task="rl", task_args=CHAIN, epochs=4, batch_size=32, lr=0.003, schedule="constant",
                           out=str(out), **QUIET))  # fmt: skip


# ----------------------------------------------------------------------------- the replay buffer


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(torch.full((2,), float(i)), i % 3, float(i), torch.full((2,), i + 0.5), i % 4 == 0)


def test_the_buffer_wraps_around_overwriting_the_oldest_transitions():
    buf = ReplayBuffer(5, (2,))
    _fill(buf, 7)
    assert (buf.pos, len(buf)) == (2, 5)
    assert buf.data["reward"].tolist() == [5.0, 6.0, 2.0, 3.0, 4.0]  # 0 and 1 were overwritten
    assert buf.data["next"][0].tolist() == [5.5, 5.5] and buf.data["done"].tolist() == [0, 0, 0, 0, 1]
    sample = buf.sample(400, torch.Generator().manual_seed(0))
    rewards = set(sample["reward"].tolist())
    assert rewards == {2.0, 3.0, 4.0, 5.0, 6.0}  # every stored transition, nothing else
    # a transition stays whole: obs, action, reward and next obs belong together
    assert torch.equal(sample["obs"][:, 0], sample["reward"]) and torch.equal(
        sample["next"][:, 0], sample["reward"] + 0.5
    )
    assert torch.equal(sample["action"], sample["reward"].long() % 3)


def test_a_partly_filled_buffer_samples_only_what_it_holds_and_restores_exactly():
    buf = ReplayBuffer(100, (2,))
    _fill(buf, 3)
    assert set(buf.sample(200, torch.Generator().manual_seed(1))["reward"].tolist()) == {0.0, 1.0, 2.0}
    _fill(buf, 120)
    other = ReplayBuffer(100, (2,))
    other.load_state_dict(buf.state_dict())
    a, b = (
        buf.sample(16, torch.Generator().manual_seed(2)),
        other.sample(16, torch.Generator().manual_seed(2)),
    )
    assert all(torch.equal(a[k], b[k]) for k in a) and (other.pos, len(other)) == (buf.pos, len(buf))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, (2,)).sample(1, torch.Generator())


def test_prioritized_replay_samples_by_priority_with_importance_weights():
    buf = ReplayBuffer(10, (2,), alpha=1.0)
    _fill(buf, 10)
    buf.update_priorities(torch.arange(10), torch.tensor([9.0] + [1.0] * 9))
    s = buf.sample(2000, torch.Generator().manual_seed(0), beta=1.0)
    share = (s["index"] == 0).float().mean().item()
    assert 0.45 < share < 0.55  # priority 9 of a total 18
    # (N P(i))^-beta normalised by the largest: the favoured transition weighs 1/9 of the others
    w0 = s["weight"][s["index"] == 0][0].item()
    assert s["weight"].max().item() == 1.0 and w0 == pytest.approx(1 / 9, rel=1e-5)
    buf.add(torch.zeros(2), 0, 0.0, torch.zeros(2), False)  # a new transition gets the largest priority yet
    assert buf.priority[0].item() == pytest.approx(9.0, rel=1e-5)


# ----------------------------------------------------------------------------- DQN's arithmetic


def _linear_net(weights: list[list[float]]) -> nn.Module:
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weights))
    return net


def test_the_td_target_of_dqn_and_double_dqn_on_a_hand_transition():
    # next state s' = (1, 0): the target net values its actions (2, 5), the online net (3, 1)
    target, online = _linear_net([[2.0, 0.0], [5.0, 0.0]]), _linear_net([[3.0, 0.0], [1.0, 0.0]])
    reward, done, nxt = (
        torch.tensor([1.0, 1.0]),
        torch.tensor([0.0, 1.0]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    )
    y = td_target(reward, done, nxt, target, 0.9)
    assert y.tolist() == pytest.approx([1 + 0.9 * 5, 1.0])  # max of the target's values; none after the end
    y2 = td_target(reward, done, nxt, target, 0.9, online=online)
    assert y2.tolist() == pytest.approx([1 + 0.9 * 2, 1.0])  # online picks action 0, the target values it: 2
    # Huber: quadratic inside 1, linear outside; weights scale each transition
    assert td_loss(torch.tensor([0.5, 3.0]), torch.tensor([0.0, 0.0])).item() == pytest.approx(
        (0.125 + 2.5) / 2
    )
    assert td_loss(
        torch.tensor([0.5, 3.0]), torch.zeros(2), torch.tensor([2.0, 0.0])
    ).item() == pytest.approx(0.125)


def test_epsilon_falls_linearly_then_stays():
    assert [linear(1.0, 0.1, 10, t) for t in (0, 5, 10, 50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert linear(1.0, 0.1, 0, 0) == 0.1


def test_polyak_moves_the_target_a_fraction_and_tau_1_copies():
    online, target = _linear_net([[1.0, 1.0], [1.0, 1.0]]), _linear_net([[0.0, 0.0], [0.0, 0.0]])
    sync_target(target, online, 0.25)
    assert target.weight.flatten().tolist() == [0.25] * 4
    sync_target(target, online, 1.0)
    assert torch.equal(target.weight, online.weight)


def test_discounted_returns_follow_the_episode_backwards():
    assert discounted_returns([1.0, 0.0, 2.0], 0.5) == [1.5, 1.0, 2.0]


def test_dueling_heads_and_q_networks_have_one_output_per_action():
    for shape, kind in (((4,), "mlp"), ((4, 10, 10), "minatar"), ((4, 84, 84), "nature")):
        for dueling in (False, True):
            q = make_qnet("auto", shape, 3, width=16, dueling=dueling)
            obs = torch.zeros(2, *shape, dtype=torch.uint8 if len(shape) == 3 else torch.float32)
            assert q(obs).shape == (2, 3), (kind, dueling)
    q = make_qnet("mlp", (4,), 3, width=8, dueling=True)
    a = q.head.advantage(q.body(torch.ones(1, 4)))
    v = q.head.value(q.body(torch.ones(1, 4)))
    assert torch.allclose(q(torch.ones(1, 4)), v + a - a.mean())
    with pytest.raises(ConfigError, match="mlp Q-network takes state vectors"):
        make_qnet("mlp", (4, 10, 10), 3)


# ----------------------------------------------------------------------------- the task's steps


def _task_and_source(sync: int, **args):
    task = create_task("rl", {"env": "chain-5", "sync": sync, "learning_starts": 2, "capacity": 50,
                              "steps": 10, "width": 8, **args})  # fmt: skip

    class Ctx:  # just what build needs
        cfg = TrainConfig(task="rl", epochs=2, batch_size=4, lr=0.01, schedule="constant", **QUIET).resolved()
        device, rank, batch_size = torch.device("cpu"), 0, 4

        @staticmethod
        def place(m):
            return m

        def optimizer(self, params, steps):
            return torch.optim.SGD(params, lr=0.05), None

    torch.manual_seed(0)
    built = task.build(Ctx())
    return task, built


def test_the_target_network_changes_only_at_synchronisation():
    task, built = _task_and_source(sync=3)
    q, target = built.parts.modules["q"], built.parts.modules["target"]
    stepper = Stepper(built.parts.optimizers)
    state = LoopState()
    snapshots = []
    for batch in built.train:
        if state.global_step == 9:
            break
        before = [p.clone() for p in target.parameters()]
        task.training_step({"q": q, "target": target}, batch, stepper, state)
        changed = any(not torch.equal(a, b) for a, b in zip(before, target.parameters()))
        snapshots.append((state.global_step, changed))
        state.global_step += 1
    # steps 0..1 fill the buffer (no update); after that it is copied at steps 3 and 6 only
    assert [s for s, changed in snapshots if changed] == [3, 6]


def test_epsilon_is_one_while_the_buffer_fills_then_follows_the_schedule():
    task, built = _task_and_source(sync=1, exploration=0.5, eps_end=0.2)  # 20 env steps: eps falls over 10
    source = built.train
    seen = []
    for batch in source:
        seen.append(batch["epsilon"])
        if source.acted >= 16:
            break
    assert seen[:2] == [1.0, 1.0]  # learning_starts: random actions
    assert seen[2:] == pytest.approx([linear(1.0, 0.2, 10, t) for t in range(2, 16)])


# ----------------------------------------------------------------------------- environments rebuilt exactly


@pytest.mark.parametrize("name", ["CartPole-v1", "MinAtar/Breakout-v1", "chain-7"])
def test_an_episode_is_rebuilt_exactly_from_its_seed_and_actions(name):
    gen = torch.Generator().manual_seed(3)
    a = EpisodeRunner(make_env(name), seed=11)
    n_actions = a.env.info.n_actions
    for _ in range(30):  # past at least one episode's end for the random policy
        obs, r, term, trunc = a.step(int(torch.randint(0, n_actions, (), generator=gen)))
        if term or trunc:
            a.start()
    b = EpisodeRunner(make_env(name), seed=11)
    b.load_state_dict(a.state_dict())
    assert b.episode == a.episode and torch.equal(a.obs, b.obs)
    for _ in range(40):  # both go on alike, through resets
        act = int(torch.randint(0, n_actions, (), generator=gen))
        ra, rb = a.step(act), b.step(act)
        assert torch.equal(ra[0], rb[0]) and ra[1:] == rb[1:]
        if ra[2] or ra[3]:
            assert torch.equal(a.start(), b.start())


def test_a_state_the_replay_does_not_reach_is_refused():
    a = EpisodeRunner(make_env("CartPole-v1"), seed=0)
    a.step(0)
    state = a.state_dict()
    state["obs"] = state["obs"] + 1
    with pytest.raises(CheckpointError, match="not reproducible from its seed"):
        EpisodeRunner(make_env("CartPole-v1"), seed=0).load_state_dict(state)


def test_episodes_of_different_seeds_differ_and_minatar_frames_are_bytes_channels_first():
    env = make_env("CartPole-v1")
    assert not torch.equal(env.reset(episode_seed(0, 0)), env.reset(episode_seed(0, 1)))
    assert torch.equal(env.reset(episode_seed(0, 1)), env.reset(episode_seed(0, 1)))
    info = make_env("MinAtar/Breakout-v1").info
    assert (info.obs_shape, info.obs_dtype, info.n_actions) == ((4, 10, 10), torch.uint8, 3)
    assert make_env("CartPole-v1").info.solved_at == 475


@pytest.mark.parametrize(
    "name, message",
    [("Cartpole-v1", "unknown environment 'Cartpole-v1'; did you mean CartPole-v1"),
     ("MinAtar/Pong-v1", "unknown MinAtar game 'Pong'"),
     ("Pendulum-v1", "DQN needs discrete actions"),
     ("chain-2", "at least 3 states")],
)  # fmt: skip
def test_unknown_or_unfit_environments_are_one_line_errors(name, message):
    with pytest.raises(ConfigError, match=message):
        make_env(name)


# ----------------------------------------------------------------------------- whole runs


def test_dqn_solves_the_corridor_exactly(chain_run):
    r = chain_run
    assert r["test_return"] == 1.0 and r["eval_mean_return"] == 1.0 and r["eval_std_return"] == 0.0
    assert r["test"]["length"] == 4  # the shortest way: from the middle (4) to the right end (8)
    assert r["env_steps"] == 1200 and r["env_steps_to_solve"] in [e["env_steps"] for e in r["evaluations"]]
    assert r["solved_at"] == 1.0 and r["train_episodes"] > 10
    # the greedy policy's predicted values are the discounted reward: 0.9^3 at the start
    from deeper.tasks.rl import load_qnet

    q, spec = load_qnet(r["weights"])
    start = torch.zeros(1, 9)
    start[0, 4] = 1
    assert q(start).max().item() == pytest.approx(0.9**3, abs=0.1) and spec["env"] == "chain-9"


def test_the_run_folder_holds_episodes_evaluations_and_the_learning_curve(chain_run):
    run_dir = Path(chain_run["run_dir"])
    rows = (run_dir / "episodes.csv").read_text().splitlines()
    assert rows[0] == "episode,env_step,return,length" and len(rows) == chain_run["train_episodes"] + 1
    steps = [int(r.split(",")[1]) for r in rows[1:]]
    assert steps == sorted(steps) and steps[-1] <= 1200
    evals = (run_dir / "evaluations.csv").read_text().splitlines()
    assert len(evals) == 5 and evals[0].startswith("env_steps,return,return_std,q,g")
    assert (run_dir / "learning_curve.png").stat().st_size > 5000
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_return", "train_epsilon", "val_return", "val_return_std", "val_q", "val_g"} <= set(header)


@pytest.mark.slow
def test_a_cartpole_run_trains_through_the_command_line_and_logs_episodes(tmp_path, capsys):
    out = tmp_path / "cp"
    code = main(["train", "--task", "rl", "--env", "CartPole-v1", "--task-arg", "steps=500", "--task-arg",
                 "learning_starts=200", "--task-arg", "episodes=2", "--task-arg", "test_episodes=3", "--epochs", "2",
                 "--batch-size", "32", "--schedule", "constant", "--out", str(out), "--json", "--no-progress"])  # fmt: skip
    assert code == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["env"] == "CartPole-v1" and r["env_steps"] == 1000 and r["eval_episodes"] == 3
    assert r["eval_mean_return"] >= 8 and r["solved_at"] == 475 and "env_steps_to_solve" in r
    assert (out / "tb").is_dir() and list((out / "tb").glob("*.episodes"))


def test_options_that_cannot_work_are_refused(tmp_path):
    for args, message in [({"learning_starts": 50, "capacity": 10}, "exceeds the buffer's capacity"),
                          ({"steps": 10, "train_freq": 3}, "multiple of train_freq"),
                          ({"env": "NoSuchEnv-v0"}, "unknown environment")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            fit(
                TrainConfig(task="rl", task_args={"env": "chain-5", **args}, out=str(tmp_path / "x"), **QUIET)
            )


# ----------------------------------------------------------------------------- deeper play


def test_play_reports_mean_and_spread_and_writes_a_gif(chain_run, capsys, tmp_path):
    gif = tmp_path / "chain.gif"
    assert (
        main(["play", "--weights", chain_run["run_dir"], "--episodes", "5", "--gif", str(gif), "--json"]) == 0
    )
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (r["mean_return"], r["std_return"], r["episodes"], r["env"]) == (1.0, 0.0, 5, "chain-9")
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 5  # the start and 4 moves
    # random actions: a random walk that ends at the left end about half the time
    assert (
        main(["play", "--weights", chain_run["weights"], "--episodes", "20", "--epsilon", "1", "--json"]) == 0
    )
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["mean_return"] < 1.0 and r["std_return"] > 0


def test_play_refuses_other_weights_and_unknown_or_unfit_environments(chain_run, capsys, tmp_path):
    from deeper.models import create_model, save_weights

    other = tmp_path / "lenet.safetensors"
    save_weights(
        create_model("lenet5", num_classes=10, in_chans=1), other, {"model": "lenet5", "task": "classify"}
    )
    cases = [
        (["--weights", str(other)], "weights of task 'classify', not of a DQN agent"),
        (["--weights", chain_run["run_dir"], "--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
        (["--weights", chain_run["run_dir"], "--env", "CartPole-v1"], "the agent was trained on chain-9"),
        (["--weights", chain_run["run_dir"], "--gif", "x.png"], "must be a .gif file"),
    ]
    for args, message in cases:
        assert main(["play", *args]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_rl_pieces_import_no_engine_task_or_command_line():
    from tests.test_imports import import_graph

    for mod, deps in import_graph().items():
        if mod.startswith("deeper.rl"):
            assert not [d for d in deps if d.startswith(("deeper.train", "deeper.tasks", "deeper.cli"))], mod


def test_train_takes_env_as_the_rl_task_option():
    import argparse

    from deeper.cli.train import given_options

    args = argparse.Namespace(task="rl", env="CartPole-v1", task_args=[("steps", 10)])
    assert given_options(args) == {"task": "rl", "task_args": {"steps": 10, "env": "CartPole-v1"}}


def test_the_task_sets_torchs_cpu_threads_unless_told_not_to():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _task_and_source(sync=1, threads=0)
        assert torch.get_num_threads() == 2
        _task_and_source(sync=1)  # default: one thread for the small batches of acting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


ALL_OPTIONS = {"double": True, "dueling": True, "prioritized": True, "tau": 0.5, "sync": 4}


@pytest.mark.slow
def test_double_dueling_prioritized_polyak_dqn_solves_the_corridor(tmp_path):
    r = fit(TrainConfig(task="rl", task_args={**CHAIN, **ALL_OPTIONS}, epochs=4, batch_size=32, lr=0.003,
                        schedule="constant", out=str(tmp_path / "all"), **QUIET))  # fmt: skip
    assert r["eval_mean_return"] == 1.0 and r["test"]["length"] == 4


@pytest.mark.slow
def test_a_prioritized_run_resumes_exactly_priorities_included(tmp_path):
    from deeper.train.checkpoint import latest_checkpoint, load_checkpoint

    args = {**CHAIN, **ALL_OPTIONS, "steps": 60, "learning_starts": 20}
    options = dict(task="rl", task_args=args, epochs=2, batch_size=8, lr=0.003, schedule="constant", **QUIET)
    fit(TrainConfig(**options, out=str(tmp_path / "straight")))
    fit(TrainConfig(**options, max_steps=77, out=str(tmp_path / "split")))
    fit(TrainConfig(**options, out=str(tmp_path / "split")), resume=True)
    (a, sa), (b, sb) = (load_checkpoint(latest_checkpoint(tmp_path / n)) for n in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    pa, pb = sa["sources"]["train"]["buffer"], sb["sources"]["train"]["buffer"]
    assert torch.equal(pa["priority"], pb["priority"]) and pa["max_priority"] == pb["max_priority"]
    assert not torch.all(pa["priority"] == pa["priority"][0])  # the TD errors set them apart


def test_atari_frames_are_preprocessed_stacked_and_rebuilt_exactly():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    a = EpisodeRunner(make_env("ALE/Breakout-v5"), seed=3)
    assert (a.env.info.obs_shape, a.env.info.obs_dtype) == ((4, 84, 84), torch.uint8)
    for i in range(40):
        a.step(i % 4)
    b = EpisodeRunner(make_env("ALE/Breakout-v5"), seed=3)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.obs, b.obs)
    assert make_qnet("auto", a.env.info.obs_shape, 4)(a.obs[None]).shape == (1, 4)  # the DQN paper's network
