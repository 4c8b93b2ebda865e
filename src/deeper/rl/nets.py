"""Q-networks: one output per action.

- ``mlp``: for state vectors (CartPole): ``layers`` hidden layers of ``width`` ReLU units;
- ``minatar``: the MinAtar paper's network for 10x10 frames: one 3x3 convolution of 16
  channels, a hidden layer of 128 units (Young & Tian 2019);
- ``nature``: the DQN paper's network for 84x84 frames: convolutions 32x8x8/4, 64x4x4/2,
  64x3x3/1 and 512 hidden units (Mnih et al. 2015); frames of bytes are scaled to [0, 1].

``dueling`` replaces the last layer by a value and an advantage stream,
``Q = V + A - mean(A)`` (Wang et al. 2016).  Inputs of any dtype are taken (frames stay
bytes in the replay buffer); the network converts them.
"""

from __future__ import annotations

import torch
from torch import nn

from deeper.errors import ConfigError

KINDS = ("auto", "mlp", "minatar", "nature")


class Head(nn.Module):
    """The last layer: one linear map to the actions, or the dueling streams."""

    def __init__(self, features: int, n_actions: int, dueling: bool, hidden: int = 0):
        super().__init__()
        self.dueling = dueling
        if dueling:

            def stream(out: int) -> nn.Module:
                if not hidden:
                    return nn.Linear(features, out)
                return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, out))

            self.value, self.advantage = stream(1), stream(n_actions)
        else:
            self.out = nn.Linear(features, n_actions)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.out(h)
        a = self.advantage(h)
        return self.value(h) + a - a.mean(1, keepdim=True)


class QNet(nn.Module):
    def __init__(self, body: nn.Module, head: Head, scale: float = 1.0):
        super().__init__()
        self.body, self.head, self.scale = body, head, scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        if self.scale != 1.0:
            x = x * self.scale
        return self.head(self.body(x))


def pick_kind(obs_shape: tuple[int, ...]) -> str:
    """``mlp`` for vectors, ``minatar`` for small frames, ``nature`` for 84x84 ones."""
    if len(obs_shape) == 1:
        return "mlp"
    if len(obs_shape) == 3:
        return "nature" if min(obs_shape[1:]) >= 36 else "minatar"
    raise ConfigError(f"no Q-network for observations of shape {tuple(obs_shape)}")


def make_qnet(kind: str, obs_shape, n_actions: int, *, width: int = 256, layers: int = 2,
              dueling: bool = False) -> QNet:  # fmt: skip
    """A Q-network for observations of ``obs_shape`` (``kind`` ``auto`` picks by their shape)."""
    obs_shape = tuple(int(s) for s in obs_shape)
    if kind == "auto":
        kind = pick_kind(obs_shape)
    if kind == "mlp":
        if len(obs_shape) != 1:
            raise ConfigError(f"the mlp Q-network takes state vectors, not observations of shape {obs_shape}")
        sizes, body = [obs_shape[0]] + [width] * layers, []
        for a, b in zip(sizes[:-1], sizes[1:]):
            body += [nn.Linear(a, b), nn.ReLU()]
        # the dueling streams split the last hidden layer's width (as wide as the plain network overall)
        return QNet(nn.Sequential(*body), Head(sizes[-1], n_actions, dueling))
    if len(obs_shape) != 3:
        raise ConfigError(
            f"the {kind} Q-network takes frames (C, H, W), not observations of shape {obs_shape}"
        )
    c, h, w = obs_shape
    if kind == "minatar":
        body = nn.Sequential(nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten())
        features = 16 * (h - 2) * (w - 2)
        if dueling:
            return QNet(body, Head(features, n_actions, True, hidden=128))
        return QNet(nn.Sequential(body, nn.Linear(features, 128), nn.ReLU()), Head(128, n_actions, False))
    if kind == "nature":
        body = nn.Sequential(
            nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            features = body(torch.zeros(1, c, h, w)).shape[1]
        if dueling:
            return QNet(body, Head(features, n_actions, True, hidden=512), scale=1 / 255)
        return QNet(
            nn.Sequential(body, nn.Linear(features, 512), nn.ReLU()),
            Head(512, n_actions, False),
            scale=1 / 255,
        )
    raise ConfigError(f"unknown Q-network {kind!r} (known: {', '.join(KINDS)})")
