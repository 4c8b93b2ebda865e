"""Two small tasks that exercise what the applications need from the engine, before they exist.

- ``gan-2d``: a generator and a discriminator taking turns (two optimizers, two
  schedules, the discriminator's step then the generator's on every batch), the
  non-saturating GAN loss of Goodfellow et al. on points drawn from a ring of
  Gaussians; evaluated by the energy distance between generated and real points,
  a metric that must see every sample (torchmetrics ``cat`` states).
- ``chain-dqn``: Q-learning on a simulated corridor (states 0..N-1, actions
  left/right, reward 1 at the right end): batches come from a replay buffer fed
  by an environment the online network acts in (epsilon-greedy), not from a
  dataset; a frozen target network is synchronised every ``sync`` steps; the
  buffer, the environment and its random generator are part of the checkpoint.

Both build their own small networks (``--model`` is not used) and their own
data (``--data`` is not used).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric as TorchMetric

from deeper.data.loader import epoch_order
from deeper.tasks.base import Metric, Nets, StepOutput, Task, TaskOption, register_task
from deeper.train.build import BuildContext, Built
from deeper.train.parts import Parts


def mlp(sizes: list[int], *, out_act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    layers = layers[:-1]
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- gan-2d


def ring_points(n: int, *, modes: int, radius: float = 2.0, std: float = 0.05, seed: int = 0) -> torch.Tensor:
    """``n`` points (n, 2) from ``modes`` Gaussians evenly spaced on a circle."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * k.double() / modes
    centres = torch.stack([angle.cos(), angle.sin()], 1) * radius
    return (centres + std * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


class TensorLoader:
    """Batches of a tensor's rows in the order :func:`~deeper.data.loader.epoch_order` gives (sharded
    across data-parallel ranks): a minimal source for tensor data."""

    def __init__(self, data: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1):  # fmt: skip
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self._skip = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(math.ceil(len(self.data) / self.world_size) / self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self._skip = epoch, skip_batches

    def __iter__(self):
        idx = epoch_order(len(self.data), self.epoch, shuffle=self.shuffle, seed=self.seed,
                          rank=self.rank, world_size=self.world_size).to(self.data.device)  # fmt: skip
        start, self._skip = self._skip, 0
        for b in range(start, self.steps_per_epoch):
            yield self.data[idx[b * self.batch_size : (b + 1) * self.batch_size]]


class EnergyDistance(TorchMetric):
    """``2 E|x - y| - E|x - x'| - E|y - y'|`` between generated ``preds`` and real ``target`` points.

    Zero exactly when the two distributions are equal.  It needs every sample, so
    its states are lists that are concatenated (also across processes).
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("fake", default=[], dist_reduce_fx="cat")
        self.add_state("real", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.fake.append(preds.detach().double())
        self.real.append(target.detach().double())

    def compute(self) -> torch.Tensor:
        def cat(x):
            return torch.cat(x) if isinstance(x, list) else x

        fake, real = cat(self.fake), cat(self.real)
        return (
            2 * torch.cdist(fake, real).mean()
            - torch.cdist(fake, fake).mean()
            - torch.cdist(real, real).mean()
        )


@register_task
class Gan2dTask(Task):
    name = "gan-2d"
    description = "a GAN on 2-D points (a ring of Gaussians): generator and discriminator take turns"
    metrics = (
        Metric("loss_d", higher_is_better=False, label="D"),
        Metric("loss_g", higher_is_better=False, label="G"),
        Metric("energy", higher_is_better=False, label="energy", fmt=".3f"),
    )
    primary = "energy"
    export = "G"
    unit = "points"
    automatic = False
    dry_run = {"task_args": {"points": 96, "width": 16}, "batch_size": 16, "epochs": 2}
    options = {
        "modes": TaskOption(8, "Gaussians on the ring", low=1, high=64),
        "points": TaskOption(
            4096, "training points (validation and test: a quarter each)", low=64, high=10**7
        ),
        "latent": TaskOption(8, "size of the generator's noise input", low=1, high=1024),
        "width": TaskOption(64, "hidden units of both networks", low=4, high=4096),
    }

    def build(self, ctx: BuildContext) -> Built:
        a = self.args
        n, seed = a["points"], ctx.cfg.seed
        train = ring_points(n, modes=a["modes"], seed=1000 + seed).to(ctx.device)
        val = ring_points(n // 4, modes=a["modes"], seed=2000).to(ctx.device)
        test = ring_points(n // 4, modes=a["modes"], seed=3000).to(ctx.device)
        w = a["width"]
        g = ctx.place(mlp([a["latent"], w, w, 2]))
        d = ctx.place(mlp([2, w, w, 1]))
        loader = TensorLoader(
            train, ctx.batch_size, shuffle=True, seed=seed, rank=ctx.rank, world_size=ctx.world_size
        )
        steps = loader.steps_per_epoch
        extra = {"beta1": 0.5} if ctx.cfg.optim.optimizer in ("adam", "adamw") else {}  # as DCGAN
        opt_g, sched_g = ctx.optimizer(g.parameters(), steps, **extra)
        opt_d, sched_d = ctx.optimizer(d.parameters(), steps, **extra)
        parts = Parts({"G": g, "D": d}, {"D": opt_d, "G": opt_g}, {"D": sched_d, "G": sched_g}, export="G")
        bs = ctx.cfg.sampling.eval_batch_size
        meta = {
            "model": "gan-2d-generator",
            "dataset": f"ring-{a['modes']}",
            "latent": a["latent"],
            "width": w,
        }
        return Built(
            parts,
            loader,
            TensorLoader(val, bs),
            TensorLoader(test, bs),
            meta,
        )

    def _noise(self, n: int, device, generator=None) -> torch.Tensor:
        if generator is None:
            return torch.randn(n, self.args["latent"], device=device)
        return torch.randn(n, self.args["latent"], generator=generator).to(device)

    def training_step(self, nets: Nets, real: torch.Tensor, stepper, state) -> StepOutput:
        g, d = nets["G"], nets["D"]
        n = real.shape[0]
        ones = torch.ones(n, 1, device=real.device)
        with stepper.autocast():  # the discriminator's turn: real points are 1, generated ones 0
            fake = g(self._noise(n, real.device))
            both = d(torch.cat([real, fake.detach()]))  # one forward (DDP allows one per backward)
            loss_d = F.binary_cross_entropy_with_logits(both, torch.cat([ones, torch.zeros_like(ones)])) * 2
        stepper.update("D", loss_d, state)
        with stepper.autocast():  # the generator's turn: make the discriminator say 1
            loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
        stepper.update("G", loss_g, state)
        return StepOutput(loss_g.detach(), {"loss_d": loss_d.detach() * n, "loss_g": loss_g.detach() * n}, n)

    def evaluation_step(self, nets: Nets, real: torch.Tensor) -> StepOutput:
        fake = nets["G"](self._noise(real.shape[0], real.device, self._eval_noise))
        return StepOutput(None, {}, real.shape[0], preds=fake.float(), target=real)

    def eval_metrics(self, split: str) -> dict:
        # every evaluation draws the same noise, from its own generator (the training RNG is left alone)
        self._eval_noise = torch.Generator().manual_seed(12345)
        return {"energy": EnergyDistance()}

    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import load_weights

        state, meta = load_weights(path)
        g = mlp([int(meta["latent"]), int(meta["width"]), int(meta["width"]), 2])
        g.load_state_dict(state)
        return g, meta


# ----------------------------------------------------------------------------- chain-dqn


class Chain:
    """States ``0..n-1``, start in the middle; action 1 moves right, 0 left; reward 1 on reaching ``n-1``.

    An episode ends at either end or after ``limit`` moves.  Observations are one-hot vectors.
    """

    def __init__(self, n: int, limit: int):
        self.n, self.limit = n, limit
        self.pos, self.t = n // 2, 0

    def observe(self) -> torch.Tensor:
        return F.one_hot(torch.tensor(self.pos), self.n).float()

    def reset(self) -> torch.Tensor:
        self.pos, self.t = self.n // 2, 0
        return self.observe()

    def step(self, action: int) -> tuple[torch.Tensor, float, bool]:
        self.pos = max(0, min(self.n - 1, self.pos + (1 if action == 1 else -1)))
        self.t += 1
        reward = 1.0 if self.pos == self.n - 1 else 0.0
        done = self.pos in (0, self.n - 1) or self.t >= self.limit
        return self.observe(), reward, done


class ReplaySource:
    """Steps the environment with an epsilon-greedy policy of the online network; yields replay batches.

    Each batch: one environment step (its transition goes into a ring buffer of
    tensors), then ``batch`` transitions drawn from the buffer.  The buffer, its
    position, the environment and the random generator are the source's state
    (saved in checkpoints), so a resumed run acts and samples exactly as an
    uninterrupted one.  It has no length: an epoch is ``steps`` batches.
    """

    def __init__(self, q: nn.Module, env: Chain, *, steps: int, batch: int, capacity: int, seed: int,
                 eps: tuple[float, float, int], device):  # fmt: skip
        self.q, self.env, self.steps_per_epoch, self.batch = q, env, steps, batch
        self.eps_start, self.eps_end, self.eps_steps = eps
        self.device = device
        n = env.n
        self.buf = {
            "obs": torch.zeros(capacity, n, device=device),
            "action": torch.zeros(capacity, dtype=torch.long, device=device),
            "reward": torch.zeros(capacity, device=device),
            "next": torch.zeros(capacity, n, device=device),
            "done": torch.zeros(capacity, device=device),
        }
        self.capacity, self.size, self.pos, self.acted = capacity, 0, 0, 0
        self.gen = torch.Generator().manual_seed(seed)
        self.obs = env.reset()
        self.epoch = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch = epoch  # the state restored from a checkpoint already stands at the skipped position

    def epsilon(self) -> float:
        frac = min(1.0, self.acted / max(1, self.eps_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    @torch.no_grad()
    def _act(self) -> None:
        if float(torch.rand((), generator=self.gen)) < self.epsilon():
            action = int(torch.randint(0, 2, (), generator=self.gen))
        else:
            action = int(self.q(self.obs.to(self.device)[None]).argmax(1))
        nxt, reward, done = self.env.step(action)
        i = self.pos
        for key, value in (
            ("obs", self.obs),
            ("action", action),
            ("reward", reward),
            ("next", nxt),
            ("done", float(done)),
        ):
            self.buf[key][i] = torch.as_tensor(value, device=self.device)
        self.pos, self.size, self.acted = (
            (i + 1) % self.capacity,
            min(self.size + 1, self.capacity),
            self.acted + 1,
        )
        self.obs = self.env.reset() if done else nxt

    def __iter__(self):
        while True:
            self._act()
            idx = torch.randint(0, self.size, (self.batch,), generator=self.gen).to(self.device)
            yield {k: v[idx] for k, v in self.buf.items()}

    def state_dict(self) -> dict:
        return {
            "buffer": {k: v.cpu().clone() for k, v in self.buf.items()},
            "size": self.size, "pos": self.pos, "acted": self.acted,
            "env": {"pos": self.env.pos, "t": self.env.t}, "obs": self.obs.clone(),
            "generator": self.gen.get_state(),
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.buf = {k: v.to(self.device) for k, v in state["buffer"].items()}
        self.size, self.pos, self.acted = state["size"], state["pos"], state["acted"]
        self.env.pos, self.env.t = state["env"]["pos"], state["env"]["t"]
        self.obs = state["obs"]
        self.gen.set_state(state["generator"])


class GreedyEpisodes:
    """Evaluation source: ``episodes`` greedy episodes, one batch each (the evaluation step plays them)."""

    def __init__(self, episodes: int):
        self.steps_per_epoch = episodes

    def __iter__(self):
        yield from range(self.steps_per_epoch)


@register_task
class ChainDqnTask(Task):
    name = "chain-dqn"
    description = "Q-learning on a simulated corridor: replay batches from an environment, a target network"
    metrics = (
        Metric("loss", higher_is_better=False),
        Metric("q", label="Q", fmt=".3f"),
        Metric("return", label="return", fmt=".2f"),
    )
    primary = "return"
    export = "q"
    unit = "samples"
    automatic = False
    dry_run = {"task_args": {"steps": 5, "sync": 3, "episodes": 2}, "batch_size": 8, "epochs": 2}
    options = {
        "states": TaskOption(9, "length of the corridor", low=3, high=1000),
        "steps": TaskOption(200, "environment steps (and updates) per epoch", low=1, high=10**7),
        "sync": TaskOption(
            50, "steps between copies of the online network into the target network", low=1, high=10**7
        ),
        "gamma": TaskOption(0.9, "discount", low=0.0, high=1.0),
        "capacity": TaskOption(5000, "replay buffer size", low=1, high=10**8),
        "episodes": TaskOption(4, "greedy evaluation episodes", low=1, high=10**6),
    }

    def build(self, ctx: BuildContext) -> Built:
        a = self.args
        n = a["states"]
        q = ctx.place(mlp([n, 32, 2]))
        target = ctx.place(mlp([n, 32, 2])).requires_grad_(False)
        target.load_state_dict(q.state_dict())
        source = ReplaySource(
            q, Chain(n, 4 * n), steps=a["steps"], batch=ctx.cfg.optim.batch_size, capacity=a["capacity"],
            seed=ctx.cfg.seed * 1_000_003 + ctx.rank, eps=(1.0, 0.05, a["steps"]), device=ctx.device,
        )  # fmt: skip
        opt, sched = ctx.optimizer(q.parameters(), a["steps"])
        parts = Parts({"q": q, "target": target}, {"q": opt}, {"q": sched}, export="q")
        meta = {"model": "chain-q", "dataset": f"chain-{n}", "states": n}
        episodes = GreedyEpisodes(a["episodes"])
        return Built(parts, source, episodes, episodes, meta)

    def training_step(self, nets: Nets, batch: dict, stepper, state) -> StepOutput:
        q, target = nets["q"], nets["target"]
        if state.global_step % self.args["sync"] == 0:
            target.load_state_dict(_bare(q).state_dict())
        with torch.no_grad():
            best = target(batch["next"]).max(1).values
            y = batch["reward"] + self.args["gamma"] * (1 - batch["done"]) * best
        with stepper.autocast():
            values = q(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)
            loss = F.smooth_l1_loss(values.float(), y)
        stepper.update("q", loss, state)
        n = batch["obs"].shape[0]
        return StepOutput(loss.detach(), {"loss": loss.detach() * n, "q": values.detach().sum()}, n)

    @torch.no_grad()
    def evaluation_step(self, nets: Nets, episode: int) -> StepOutput:
        n = self.args["states"]
        env, q = Chain(n, 4 * n), nets["q"]
        obs, total, done = env.reset(), 0.0, False
        device = next(q.parameters()).device
        while not done:
            obs, reward, done = env.step(int(q(obs.to(device)[None]).argmax(1)))
            total += reward
        return StepOutput(None, {"return": torch.tensor(total)}, 1)

    def load_model(self, path, name: str | None = None):
        from deeper.models.weights import load_weights

        state, meta = load_weights(path)
        q = mlp([int(meta["states"]), 32, 2])
        q.load_state_dict(state)
        return q, meta


def _bare(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # a DDP wrapper's module
