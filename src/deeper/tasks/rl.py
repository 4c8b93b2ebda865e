"""``rl``: DQN on an environment (gymnasium's CartPole, MinAtar's games from the pixels, a built-in corridor).

An epoch is ``steps`` environment steps.  Each training step of the engine acts
``train_freq`` steps with an epsilon-greedy policy of the online network ``q``
(transitions into the replay buffer), then, once the buffer holds ``learning_starts``
transitions, samples a batch and takes one update of ``q`` towards the TD target of the
frozen ``target`` network (DQN or Double DQN, Huber loss, ``--clip-grad``), which is
synchronised every ``sync`` updates (or Polyak-averaged with ``tau`` < 1).  Epsilon
falls linearly from ``eps_start`` to ``eps_end`` over the first ``exploration`` fraction
of the run's environment steps.

After each epoch the engine's validation plays ``episodes`` greedy episodes on
environments seeded apart from training (the test: ``test_episodes`` more, seeded apart
again); ``val_return`` is the primary metric.  They also record the network's predicted
``Q(s, a)`` along the way (``q``) beside the discounted return that really followed
(``g``): their difference is the over-estimation Double DQN is meant to remove.

A checkpoint holds both networks, the optimizer, the whole replay buffer (its filled
part, position and priorities), the schedules' position (environment steps taken), the
sampling generator and the environment as its episode number and the actions of the
running episode (replayed on resume: :mod:`deeper.rl.envs`): a resumed run acts, samples
and learns exactly as an uninterrupted one.

The run folder gets ``episodes.csv`` (every training episode: the environment step it
ended at, its return and length), ``evaluations.csv``, their TensorBoard scalars, and
``learning_curve.png``; ``result.json`` adds ``eval_mean_return``, ``eval_std_return``
(the test episodes), ``env_steps`` and ``env_steps_to_solve`` (the first evaluation whose
mean reached the environment's "solved" return; null if none did).

On the CPU the task sets torch to ``threads`` threads (default 1): acting feeds the
network one observation at a time, and several threads only add overhead, the more so
on a machine other jobs keep busy.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

from deeper.errors import ConfigError
from deeper.rl.dqn import discounted_returns, linear, sync_target, td_loss, td_target
from deeper.rl.envs import EpisodeRunner, episode_seed, make_env
from deeper.rl.nets import KINDS, make_qnet
from deeper.rl.replay import ReplayBuffer
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts

VAL_SEED, TEST_SEED = 1_000_003, 2_000_029  # evaluation episodes' seed streams, apart from training's


class ActingSource:
    """The training source: acts in the environment, fills the replay buffer, yields one batch per update.

    Each item: ``{"sample": transitions or None (still filling), "returns": [...],
    "lengths": [...] (episodes that ended), "epsilon": ..., "steps": env steps taken}``.
    It has no length: an epoch is ``steps_per_epoch`` items.
    """

    def __init__(self, q, env, buffer: ReplayBuffer, *, steps_per_epoch: int, train_freq: int, batch: int,
                 learning_starts: int, eps: tuple[float, float, int], beta: tuple[float, int], seed: int,
                 device):  # fmt: skip
        self.q, self.env, self.buffer = q, env, buffer
        self.steps_per_epoch, self.train_freq, self.batch = steps_per_epoch, train_freq, batch
        self.learning_starts, self.eps, self.beta = max(learning_starts, 1), eps, beta
        self.device = torch.device(device)
        self.runner = EpisodeRunner(env, seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.acted = 0
        self.ends: list[int] = []  # per training episode: env step it ended at, return, length
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.evaluations: list[dict] = []  # one per validation: env steps, mean, std, q, g

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        pass  # a restored state already stands where the skipped batches left it

    def epsilon(self) -> float:
        if self.acted < self.learning_starts:
            return 1.0
        return linear(self.eps[0], self.eps[1], self.eps[2], self.acted)

    @torch.no_grad()
    def _act(self, ended: list[tuple[float, int]]) -> None:
        obs, n = self.runner.obs, self.env.info.n_actions
        if float(torch.rand((), generator=self.gen)) < self.epsilon():
            action = int(torch.randint(0, n, (), generator=self.gen))
        else:
            action = int(self.q(obs.to(self.device)[None]).argmax(1))
        nxt, reward, terminated, truncated = self.runner.step(action)
        self.buffer.add(obs.to(self.device), action, reward, nxt.to(self.device), terminated)
        self.acted += 1
        if terminated or truncated:
            self.ends.append(self.acted)
            self.returns.append(self.runner.total)
            self.lengths.append(self.runner.length)
            ended.append((self.runner.total, self.runner.length))
            self.runner.start()

    def __iter__(self):
        while True:
            ended: list[tuple[float, int]] = []
            eps = self.epsilon()
            for _ in range(self.train_freq):
                self._act(ended)
            sample = None
            if len(self.buffer) >= max(self.learning_starts, 1):
                beta = linear(self.beta[0], 1.0, self.beta[1], self.acted)
                sample = self.buffer.sample(self.batch, self.gen, beta)
            yield {"sample": sample, "ended": ended, "epsilon": eps, "steps": self.train_freq}

    def state_dict(self) -> dict:
        return {
            "buffer": self.buffer.state_dict(), "env": self.runner.state_dict(), "generator": self.gen.get_state(),
            "acted": self.acted, "ends": list(self.ends), "returns": list(self.returns),
            "lengths": list(self.lengths), "evaluations": [dict(e) for e in self.evaluations],
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.buffer.load_state_dict(state["buffer"])
        self.runner.load_state_dict(state["env"])
        self.gen.set_state(state["generator"])
        self.acted = state["acted"]
        self.ends, self.returns, self.lengths = (
            list(state["ends"]),
            list(state["returns"]),
            list(state["lengths"]),
        )
        self.evaluations = [dict(e) for e in state["evaluations"]]


class GreedyEpisodes:
    """An evaluation source: ``episodes`` episodes, one item each, on environments reset with seeds of their own.

    After the last one it hands the figures of the whole evaluation to ``record`` (the
    validation's go into the training source's log, with the environment steps taken).
    """

    def __init__(self, env, episodes: int, seed: int, record=None):
        self.env, self.steps_per_epoch, self.seed, self.record = env, episodes, seed, record
        self.results: list[dict] = []

    def __iter__(self):
        self.results = []
        for i in range(self.steps_per_epoch):
            yield (self, episode_seed(self.seed, i))
        if self.record is not None and self.results:
            self.record(self.results)


def play_episode(q, env, seed: int, *, epsilon: float = 0.0, gamma: float = 0.99, device=None,
                 frames: list | None = None) -> dict:  # fmt: skip
    """One episode of the (epsilon-)greedy policy of ``q``: its return and length, and the predicted ``Q(s, a)``
    beside the discounted return that followed (``q_sum``, ``g_sum`` over ``n`` states); ``frames`` collects the
    drawn frames if given.

    When a time limit cut the episode, the states within the discount's horizon of the cut
    (``gamma**k`` above 1%) are left out of the comparison: what followed them was cut short.
    """
    device = device or next(q.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    obs, terminated, truncated = env.reset(seed), False, False
    rewards: list[float] = []
    predicted: list[float] = []
    while not (terminated or truncated):
        if frames is not None:
            frames.append(env.frame())
        values = q(obs.to(device)[None])[0].float()
        action = int(values.argmax())
        if epsilon > 0 and float(torch.rand((), generator=gen)) < epsilon:
            action = int(torch.randint(0, env.info.n_actions, (), generator=gen))
        predicted.append(float(values[action]))
        obs, reward, terminated, truncated = env.step(action)
        rewards.append(reward)
    if frames is not None:
        frames.append(env.frame())
    kept = len(rewards)
    if truncated and not terminated:
        horizon = (
            math.ceil(math.log(0.01) / math.log(gamma)) if 0 < gamma < 1 else (0 if gamma == 0 else kept)
        )
        kept = max(0, kept - horizon)
    g = discounted_returns(rewards, gamma)
    return {"return": sum(rewards), "length": len(rewards), "q_sum": sum(predicted[:kept]),
            "g_sum": sum(g[:kept]), "n": kept}  # fmt: skip


def _q_and_g(results: list[dict]) -> dict:
    n = sum(r["n"] for r in results)
    return {"q": sum(r["q_sum"] for r in results) / n, "g": sum(r["g_sum"] for r in results) / n} if n else {}


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


@register_task
class RlTask(Task):
    name = "rl"
    description = (
        "DQN on an environment: CartPole, MinAtar games from the pixels, gymnasium ids (--task-arg env=...)"
    )
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("q", label="Q", fmt=".2f"),
        Metric("g", label="G", fmt=".2f"),
        Metric("return", label="return", fmt=".1f"),
        Metric("return_std", higher_is_better=False, label="+-", fmt=".1f"),
        Metric("length", label=""),
        Metric("episodes", label="", fmt=".0f"),
        Metric("epsilon", label="eps", fmt=".3f"),
    )
    primary = "return"
    export = "q"
    unit = "env steps"
    automatic = False
    dry_run = {
        "task_args": {"env": "chain-7", "steps": 12, "train_freq": 2, "learning_starts": 4, "sync": 3,
                      "episodes": 2, "test_episodes": 2, "width": 16, "capacity": 20},
        "batch_size": 4, "epochs": 2, "schedule": "constant",
    }  # fmt: skip
    options = {
        "env": TaskOption("CartPole-v1", "environment: a gymnasium id, MinAtar/<Game>-v1 or chain-N"),
        "steps": TaskOption(
            2500, "environment steps per epoch (an evaluation after each)", low=1, high=10**9
        ),
        "train_freq": TaskOption(1, "environment steps per update", low=1, high=10**6),
        "learning_starts": TaskOption(
            1000, "transitions in the buffer before the first update", low=1, high=10**9
        ),
        "capacity": TaskOption(100_000, "replay buffer size (transitions)", low=1, high=10**9),
        "gamma": TaskOption(0.99, "discount", low=0.0, high=1.0),
        "sync": TaskOption(500, "updates between target-network synchronisations", low=1, high=10**9),
        "tau": TaskOption(
            1.0, "1: copy the online network at each sync; below 1: Polyak step", low=0.0, high=1.0
        ),
        "double": TaskOption(
            False, "Double DQN: the online network picks the next action, the target values it"
        ),
        "dueling": TaskOption(False, "dueling head: Q = V + A - mean(A)"),
        "prioritized": TaskOption(False, "prioritized replay (proportional)"),
        "alpha": TaskOption(0.6, "prioritized replay: priority exponent", low=0.0, high=1.0),
        "beta": TaskOption(
            0.4, "prioritized replay: initial importance exponent (to 1 over the run)", low=0.0, high=1.0
        ),
        "eps_start": TaskOption(1.0, "epsilon at the start", low=0.0, high=1.0),
        "eps_end": TaskOption(0.05, "final epsilon", low=0.0, high=1.0),
        "exploration": TaskOption(0.1, "fraction of the run over which epsilon falls", low=0.0, high=1.0),
        "net": TaskOption(
            "auto", "Q-network (auto: mlp for vectors, minatar or nature for frames)", choices=KINDS
        ),
        "width": TaskOption(256, "hidden units of the mlp", low=1, high=65536),
        "layers": TaskOption(2, "hidden layers of the mlp", low=1, high=16),
        "episodes": TaskOption(10, "greedy episodes of each validation", low=1, high=10**6),
        "test_episodes": TaskOption(100, "greedy episodes of the final test", low=1, high=10**6),
        "eval_epsilon": TaskOption(0.0, "epsilon of the evaluation episodes", low=0.0, high=1.0),
        "threads": TaskOption(
            1,
            "torch's CPU threads in this process (0: leave torch's default); one is the fastest for the "
            "small batches of acting, and far faster on a busy machine",
            low=0,
            high=1024,
        ),  # fmt: skip
    }

    def build(self, ctx: BuildContext) -> Built:
        a = self.args
        if a["learning_starts"] > a["capacity"]:
            raise ConfigError(
                f"task 'rl': learning_starts ({a['learning_starts']}) exceeds the buffer's capacity ({a['capacity']})"
            )
        if a["steps"] % a["train_freq"]:
            raise ConfigError(
                f"task 'rl': steps ({a['steps']}) must be a multiple of train_freq ({a['train_freq']})"
            )
        if ctx.device.type == "cpu" and a["threads"]:
            torch.set_num_threads(a["threads"])
        env = make_env(a["env"])
        info = env.info
        spec = {"net": a["net"], "width": a["width"], "layers": a["layers"], "dueling": a["dueling"]}
        q = ctx.place(make_qnet(spec["net"], info.obs_shape, info.n_actions, width=a["width"], layers=a["layers"],
                                dueling=a["dueling"]))  # fmt: skip
        target = ctx.place(make_qnet(spec["net"], info.obs_shape, info.n_actions, width=a["width"],
                                     layers=a["layers"], dueling=a["dueling"])).requires_grad_(False)  # fmt: skip
        target.load_state_dict(q.state_dict())
        total = ctx.cfg.optim.epochs * a["steps"]
        buffer = ReplayBuffer(a["capacity"], info.obs_shape, info.obs_dtype, device=ctx.device,
                              alpha=a["alpha"] if a["prioritized"] else 0.0)  # fmt: skip
        updates = a["steps"] // a["train_freq"]
        self.source = ActingSource(
            q, env, buffer, steps_per_epoch=updates, train_freq=a["train_freq"], batch=ctx.batch_size,
            learning_starts=a["learning_starts"], eps=(a["eps_start"], a["eps_end"], round(a["exploration"] * total)),
            beta=(a["beta"], total), seed=ctx.cfg.seed * 7919 + 17 + ctx.rank, device=ctx.device,
        )  # fmt: skip
        self.info = info
        opt, sched = ctx.optimizer(q.parameters(), updates)
        parts = Parts({"q": q, "target": target}, {"q": opt}, {"q": sched}, export="q")
        val = GreedyEpisodes(make_env(a["env"]), a["episodes"], VAL_SEED, record=self._record)
        test = GreedyEpisodes(make_env(a["env"]), a["test_episodes"], TEST_SEED)
        meta = {
            "model": f"dqn-{make_qnet_kind(spec['net'], info.obs_shape)}", "dataset": info.name,
            "rl": json.dumps({**spec, "env": info.name, "obs_shape": list(info.obs_shape),
                              "n_actions": info.n_actions, "gamma": a["gamma"]}),
        }  # fmt: skip
        return Built(parts, self.source, val, test, meta)

    def _record(self, results: list[dict]) -> None:
        mean, std = _mean_std([r["return"] for r in results])
        self.source.evaluations.append({
            "env_steps": self.source.acted, "return": mean, "return_std": std,
            **_q_and_g(results),
        })  # fmt: skip

    # ---- training
    def training_step(self, nets: Nets, batch: dict, stepper, state) -> StepOutput:
        a = self.args
        steps = batch["steps"]
        ended = batch["ended"]
        sums = {
            "episode_return": torch.tensor(float(sum(r for r, _ in ended))),
            "episode_length": torch.tensor(float(sum(n for _, n in ended))),
            "episodes": torch.tensor(float(len(ended))),
            "epsilon": torch.tensor(batch["epsilon"] * steps),
        }
        sample, loss = batch["sample"], None
        if sample is not None:
            q, target = nets["q"], nets["target"]
            if state.global_step % a["sync"] == 0:
                sync_target(target, _bare(q), a["tau"])
            online = q if a["double"] else None
            y = td_target(sample["reward"], sample["done"], sample["next"], target, a["gamma"], online=online)
            with stepper.autocast():
                values = q(sample["obs"]).gather(1, sample["action"][:, None]).squeeze(1)
                loss = td_loss(values, y, sample.get("weight"))
            stepper.update("q", loss, state)
            if "index" in sample:
                self.source.buffer.update_priorities(sample["index"], values.detach().float() - y)
            n = values.shape[0]
            sums.update(loss=loss.detach(), updates=torch.tensor(1.0), q=values.detach().float().sum(),
                        q_n=torch.tensor(float(n)))  # fmt: skip
        return StepOutput(loss.detach() if loss is not None else None, sums, steps)

    def summarize(self, sums: dict[str, float], count: int) -> dict[str, float]:
        if "episodes" not in sums:  # evaluation episodes
            if not count:
                return {}
            mean = sums["return"] / count
            var = max(sums["return_sq"] / count - mean * mean, 0.0)
            out = {"return": mean, "return_std": math.sqrt(var), "length": sums["length"] / count}
            if sums["n"]:
                out.update(q=sums["q"] / sums["n"], g=sums["g"] / sums["n"])
            return out
        out = {"epsilon": sums["epsilon"] / count if count else math.nan, "episodes": sums["episodes"]}
        if sums.get("updates"):
            out.update(loss=sums["loss"] / sums["updates"], q=sums["q"] / sums["q_n"])
        if sums["episodes"]:
            out.update(**{"return": sums["episode_return"] / sums["episodes"]},
                       length=sums["episode_length"] / sums["episodes"])  # fmt: skip
        return out

    @torch.no_grad()
    def evaluation_step(self, nets: Nets, item) -> StepOutput:
        source, seed = item
        r = play_episode(
            nets["q"], source.env, seed, epsilon=self.args["eval_epsilon"], gamma=self.args["gamma"]
        )
        source.results.append(r)
        t = lambda v: torch.tensor(float(v))  # noqa: E731
        sums = {"return": t(r["return"]), "return_sq": t(r["return"] ** 2), "length": t(r["length"]),
                "q": t(r["q_sum"]), "g": t(r["g_sum"]), "n": t(r["n"])}  # fmt: skip
        return StepOutput(None, sums, 1)

    # ---- the run's own logs and figures
    def finish(self, run, run_dir, test: dict) -> dict:
        src, run_dir = self.source, Path(run_dir)
        with open(run_dir / "episodes.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["episode", "env_step", "return", "length"])
            w.writerows(zip(range(1, len(src.ends) + 1), src.ends, src.returns, src.lengths))
        keys = ["env_steps", "return", "return_std", "q", "g"]
        with open(run_dir / "evaluations.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(src.evaluations)
        if run.cfg.run.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(run_dir / "tb"), filename_suffix=".episodes") as tb:
                for step, ret, length in zip(src.ends, src.returns, src.lengths):
                    tb.add_scalar("episode/return", ret, step)
                    tb.add_scalar("episode/length", length, step)
                for e in src.evaluations:
                    tb.add_scalar("eval/return", e["return"], e["env_steps"])
        solved_at = self.info.solved_at
        solve = next((e["env_steps"] for e in src.evaluations if solved_at is not None and e["return"] >= solved_at),
                     None)  # fmt: skip
        from deeper.rl.plots import plot_learning_curve

        plot_learning_curve(
            src.ends, src.returns, src.evaluations, run_dir / "learning_curve.png",
            title=f"DQN on {self.info.name}", solved_at=solved_at,
        )  # fmt: skip
        return {
            "env": self.info.name, "eval_mean_return": test.get("return"), "eval_std_return": test.get("return_std"),
            "eval_episodes": self.args["test_episodes"], "env_steps": src.acted, "env_steps_to_solve": solve,
            "solved_at": solved_at, "train_episodes": len(src.returns), "evaluations": src.evaluations,
        }  # fmt: skip

    # ---- using trained weights
    def load_model(self, path, name: str | None = None):
        return load_qnet(path)


def make_qnet_kind(kind: str, obs_shape) -> str:
    from deeper.rl.nets import pick_kind

    return pick_kind(tuple(obs_shape)) if kind == "auto" else kind


def load_qnet(path) -> tuple[torch.nn.Module, dict]:
    """``(Q-network, its settings)`` from the weights of an ``rl`` run; a one-line error for other weights."""
    from deeper.errors import CheckpointError
    from deeper.models.weights import load_weights

    state, meta = load_weights(path)
    if meta.get("task") != "rl" or "rl" not in meta:
        what = meta.get("task", "classify")
        raise ConfigError(f"{path}: these are weights of task {what!r}, not of a DQN agent (task 'rl')")
    spec = json.loads(meta["rl"])
    q = make_qnet(spec["net"], spec["obs_shape"], spec["n_actions"], width=spec["width"], layers=spec["layers"],
                  dueling=spec["dueling"])  # fmt: skip
    try:
        q.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: the weights do not fit their recorded network ({str(e).splitlines()[0]})"
        ) from None
    return q, spec


def _bare(module):
    return getattr(module, "module", module)  # a DDP wrapper's module
