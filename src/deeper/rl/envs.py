"""Environments by name, behind one small interface, and episodes that can be rebuilt exactly.

Names:

- ``chain-N``: a built-in corridor of N states (start in the middle, action 1 moves
  right, 0 left; reward 1 on reaching the right end; an episode ends at either end or
  after 4N moves).  Deterministic, no dependency: tests and quick demonstrations.
- any gymnasium id with discrete actions and a box of observations (``CartPole-v1``,
  ``Acrobot-v1``, ``MountainCar-v0``, ...), with gymnasium's time limit; the "solved"
  threshold is the environment's ``reward_threshold`` (475 for CartPole-v1).
- ``MinAtar/<Game>-v1`` (Asterix, Breakout, Freeway, Seaquest, SpaceInvaders): the
  MinAtar games (10x10 frames of one channel per kind of object, sticky actions with
  probability 0.1, the minimal action set), from the pixels; episodes are cut at
  10,000 steps.
- ``ALE/<Game>-v5`` when ``ale-py`` and ``opencv-python-headless`` are installed (not
  dependencies of the project): the Arcade Learning Environment with
  the DQN paper's preprocessing (up to 30 no-ops at the start, 4 frames per action with
  the max of the last two, 84x84 grey frames) and the last 4 frames stacked.

Every observation is a tensor (``float32`` state vectors, ``uint8`` frames, channels
first).  :class:`EpisodeRunner` resets each episode with a seed of its own, derived from
a base seed and the episode's number; everything random in an environment is drawn from
the generator that ``reset(seed=...)`` seeds, so an episode is a function of its seed and
its actions.  That is how a run resumes its environment exactly, whatever the
environment keeps inside: the checkpoint holds the episode's number and the actions
taken in it, and resuming replays them (at most one episode of steps) and checks that the
observation it ends on is the one saved.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np
import torch

from deeper.errors import CheckpointError, ConfigError

MINATAR_GAMES = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
MINATAR_LIMIT = 10_000
#: names shown when an environment is unknown (gymnasium's other discrete-action ids work too)
SUGGESTED = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    *(f"MinAtar/{g}-v1" for g in MINATAR_GAMES),
    "chain-9",
)


def episode_seed(base: int, episode: int) -> int:
    """The seed episode ``episode`` of a stream seeded ``base`` is reset with."""
    return (base * 1_000_003 + episode) % 2**31


@dataclass
class EnvInfo:
    name: str
    obs_shape: tuple[int, ...]
    obs_dtype: torch.dtype
    n_actions: int
    solved_at: float | None  # the return that counts as solving it (None: no such figure)
    max_steps: int | None  # episodes are cut (truncated) after this many steps


class Env:
    """One environment: ``reset(seed)`` and ``step(action)`` on tensors; ``frame()`` draws it (RGB, uint8)."""

    info: EnvInfo

    def reset(self, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def step(self, action: int) -> tuple[torch.Tensor, float, bool, bool]:
        """``(observation, reward, terminated, truncated)``."""
        raise NotImplementedError

    def frame(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- chain-N


class ChainEnv(Env):
    """The corridor of ``n`` states (see the module's docstring); one-hot observations."""

    def __init__(self, n: int):
        if n < 3:
            raise ConfigError(f"chain-{n}: a corridor needs at least 3 states")
        self.n, self.limit = n, 4 * n
        self.info = EnvInfo(f"chain-{n}", (n,), torch.float32, 2, 1.0, self.limit)
        self.pos, self.t = n // 2, 0

    def _obs(self) -> torch.Tensor:
        obs = torch.zeros(self.n)
        obs[self.pos] = 1.0
        return obs

    def reset(self, seed: int) -> torch.Tensor:
        self.pos, self.t = self.n // 2, 0
        return self._obs()

    def step(self, action: int):
        self.pos = max(0, min(self.n - 1, self.pos + (1 if action == 1 else -1)))
        self.t += 1
        reward = 1.0 if self.pos == self.n - 1 else 0.0
        terminated = self.pos in (0, self.n - 1)
        return self._obs(), reward, terminated, not terminated and self.t >= self.limit

    def frame(self) -> np.ndarray:
        img = np.full((16, 16 * self.n, 3), 40, np.uint8)
        img[:, -16:] = (60, 160, 60)  # the goal
        img[2:14, 16 * self.pos + 2 : 16 * self.pos + 14] = (230, 200, 60)
        return img


# ----------------------------------------------------------------------------- MinAtar

_MINATAR_COLOURS = np.array(
    [(0, 0, 0), (230, 230, 230), (240, 80, 60), (250, 170, 60), (90, 160, 250), (120, 220, 120),
     (200, 110, 230), (240, 230, 90), (80, 220, 220), (170, 170, 170), (250, 120, 180)],
    np.uint8,
)  # fmt: skip


class MinAtarEnv(Env):
    """A MinAtar game through its ``Environment`` class, reseeded (and its sticky action cleared) at each reset."""

    def __init__(self, name: str, game: str, *, sticky: float = 0.1):
        try:
            from minatar import Environment
        except ImportError:
            raise ConfigError(f"{name} needs the minatar package (pip install minatar)") from None
        self.game = Environment(game, sticky_action_prob=sticky)
        self.actions = list(self.game.minimal_action_set())
        h, w, c = self.game.state_shape()
        self.info = EnvInfo(name, (c, h, w), torch.uint8, len(self.actions), None, MINATAR_LIMIT)
        self.t = 0

    def _obs(self) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.game.state().transpose(2, 0, 1))).to(torch.uint8)

    def reset(self, seed: int) -> torch.Tensor:
        self.game.seed(seed)  # the game draws from this generator (sticky actions, starts, enemies)
        self.game.last_action = 0  # MinAtar keeps the last action across resets; an episode must not
        self.game.reset()
        self.t = 0
        return self._obs()

    def step(self, action: int):
        reward, terminal = self.game.act(self.actions[action])
        self.t += 1
        return self._obs(), float(reward), bool(terminal), not terminal and self.t >= MINATAR_LIMIT

    def frame(self) -> np.ndarray:
        state = self.game.state()  # (h, w, c) booleans
        index = np.amax(state * np.arange(1, state.shape[2] + 1), axis=2) % len(_MINATAR_COLOURS)
        return np.repeat(np.repeat(_MINATAR_COLOURS[index], 16, 0), 16, 1)


# ----------------------------------------------------------------------------- gymnasium (and the ALE)


class GymEnv(Env):
    """A gymnasium environment with discrete actions; observations become tensors, channels first for frames."""

    def __init__(self, env, name: str, *, atari: bool = False):
        from gymnasium import spaces

        self.env, self.atari = env, atari
        if not isinstance(env.action_space, spaces.Discrete):
            env.close()
            raise ConfigError(f"{name}: DQN needs discrete actions; its actions are {env.action_space}")
        box = env.observation_space
        if not isinstance(box, spaces.Box):
            env.close()
            raise ConfigError(f"{name}: DQN here needs a box of observations; it has {box}")
        dtype = torch.uint8 if box.dtype == np.uint8 else torch.float32
        spec = env.spec
        self.info = EnvInfo(
            name, tuple(box.shape), dtype, int(env.action_space.n),
            spec.reward_threshold if spec is not None else None,
            spec.max_episode_steps if spec is not None else None,
        )  # fmt: skip

    def _obs(self, obs) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), dtype=self.info.obs_dtype)

    def reset(self, seed: int) -> torch.Tensor:
        obs, _ = self.env.reset(seed=seed)
        return self._obs(obs)

    def step(self, action: int):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return self._obs(obs), float(reward), bool(terminated), bool(truncated)

    def frame(self) -> np.ndarray:
        inner = self.env.unwrapped
        if type(inner).__name__ == "CartPoleEnv":
            return cartpole_frame(inner.state, inner.x_threshold)
        img = self.env.render()
        if img is None:
            raise ConfigError(f"{self.info.name} draws no frames here")
        return np.asarray(img, np.uint8)

    def close(self) -> None:
        self.env.close()


def cartpole_frame(state, x_limit: float = 2.4, size: tuple[int, int] = (240, 160)) -> np.ndarray:
    """CartPole drawn from its state (cart position, pole angle) without pygame."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, (245, 245, 245))
    d = ImageDraw.Draw(img)
    scale = w / (2 * x_limit * 1.2)
    x, theta = float(state[0]), float(state[2])
    cx, cy = w / 2 + x * scale, h * 0.7
    d.line([(0, cy + 10), (w, cy + 10)], fill=(120, 120, 120), width=1)
    d.rectangle([cx - 18, cy - 8, cx + 18, cy + 8], fill=(40, 40, 40))
    length = 1.0 * scale  # the pole is 2 x 0.5 m
    tip = (cx + length * np.sin(theta), cy - length * np.cos(theta))
    d.line([(cx, cy), tip], fill=(200, 140, 80), width=6)
    return np.asarray(img)


def _gym_env(name: str, render: bool) -> Env:
    try:
        import gymnasium as gym
    except ImportError:
        raise ConfigError(f"{name} needs gymnasium (pip install gymnasium)") from None
    atari = name.startswith("ALE/")
    if atari:
        try:
            import ale_py
        except ImportError:
            raise ConfigError(f"{name} needs the Arcade Learning Environment (pip install ale-py)") from None
        gym.register_envs(ale_py)
    if name not in gym.envs.registry:
        close = difflib.get_close_matches(name, list(dict.fromkeys([*SUGGESTED, *gym.envs.registry])), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown environment {name!r}{hint} (e.g. {', '.join(SUGGESTED)}, or a gymnasium id with discrete actions)"
        )
    kwargs = {"render_mode": "rgb_array"} if render and not name.startswith("CartPole") else {}
    try:
        if atari:
            from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

            env = gym.make(name, frameskip=1, **kwargs)
            env = FrameStackObservation(AtariPreprocessing(env, noop_max=30, frame_skip=4), 4)
        else:
            env = gym.make(name, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError(f"{name}: {str(e).splitlines()[0]}") from None
    return GymEnv(env, name, atari=atari)


def make_env(name: str, *, render: bool = False) -> Env:
    """The environment called ``name`` (see the module's docstring); a one-line ConfigError if unknown."""
    if m := re.fullmatch(r"chain-(\d+)", name):
        return ChainEnv(int(m.group(1)))
    if m := re.fullmatch(r"MinAtar/(\w+)-v1", name):
        if m.group(1) not in MINATAR_GAMES:
            raise ConfigError(f"unknown MinAtar game {m.group(1)!r} (known: {', '.join(MINATAR_GAMES)})")
        return MinAtarEnv(name, MINATAR_GAMES[m.group(1)])
    return _gym_env(name, render)


def env_info(name: str) -> EnvInfo:
    env = make_env(name)
    env.close()
    return env.info


# ----------------------------------------------------------------------------- episodes, rebuilt exactly


class EpisodeRunner:
    """Plays an environment episode after episode; episode k is reset with ``episode_seed(seed, k)``.

    Its state (:meth:`state_dict`) is the episode's number, the actions taken in it, its
    return so far and the observation it stands at; :meth:`load_state_dict` replays the
    actions from the seeded reset and checks it arrives at the saved observation.
    """

    def __init__(self, env: Env, seed: int):
        self.env, self.seed = env, seed
        self.episode = -1
        self.start()

    def start(self) -> torch.Tensor:
        """Begin the next episode; its first observation."""
        self.episode += 1
        self.actions: list[int] = []
        self.total, self.length = 0.0, 0
        self.obs = self.env.reset(episode_seed(self.seed, self.episode))
        return self.obs

    def step(self, action: int) -> tuple[torch.Tensor, float, bool, bool]:
        obs, reward, terminated, truncated = self.env.step(action)
        self.actions.append(action)
        self.total += reward
        self.length += 1
        self.obs = obs
        return obs, reward, terminated, truncated

    def state_dict(self) -> dict:
        return {
            "episode": self.episode,
            "actions": torch.tensor(self.actions, dtype=torch.int64),
            "total": self.total,
            "obs": self.obs.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.episode = state["episode"] - 1
        self.start()
        for a in state["actions"].tolist():
            self.step(int(a))
        if not torch.equal(self.obs, state["obs"]) or self.total != state["total"]:
            raise CheckpointError(
                f"{self.env.info.name}: replaying episode {self.episode}'s {self.length} actions from its seed "
                "did not reach the saved state (the environment is not reproducible from its seed)"
            )
