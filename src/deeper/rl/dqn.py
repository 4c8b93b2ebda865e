"""DQN's arithmetic: the TD target, the loss, the epsilon schedule, the target network's synchronisation.

- DQN (Mnih et al. 2015): ``y = r + gamma (1 - done) max_a Q_target(s', a)``;
- Double DQN (van Hasselt et al. 2016): the online network chooses, the target network
  values: ``y = r + gamma (1 - done) Q_target(s', argmax_a Q_online(s', a))``, which
  removes most of the over-estimation the max of noisy estimates brings;
- the loss is Huber's (smooth L1) between ``Q(s, a)`` and ``y``, weighted per transition
  under prioritized replay;
- the target network is copied from the online one every N updates (``tau = 1``), or
  moved towards it, ``target <- tau online + (1 - tau) target`` (Polyak averaging).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def td_target(reward: torch.Tensor, done: torch.Tensor, next_obs: torch.Tensor, target: nn.Module,
              gamma: float, *, online: nn.Module | None = None) -> torch.Tensor:  # fmt: skip
    """The TD target of a batch; Double DQN when ``online`` (the network that picks the action) is given."""
    next_q = target(next_obs).float()
    if online is None:
        best = next_q.max(1).values
    else:
        choice = online(next_obs).argmax(1, keepdim=True)
        best = next_q.gather(1, choice).squeeze(1)
    return reward + gamma * (1.0 - done) * best


def td_loss(values: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Huber loss between ``Q(s, a)`` and the target, averaged (with importance weights if given)."""
    loss = F.smooth_l1_loss(values.float(), y, reduction="none")
    return (loss * weight).mean() if weight is not None else loss.mean()


def linear(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end`` (epsilon, beta)."""
    if duration <= 0:
        return end
    return start + min(1.0, t / duration) * (end - start)


@torch.no_grad()
def sync_target(target: nn.Module, online: nn.Module, tau: float = 1.0) -> None:
    """Copy ``online`` into ``target`` (``tau = 1``) or move it a fraction ``tau`` of the way."""
    if tau >= 1.0:
        target.load_state_dict(online.state_dict())
        return
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o, tau)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """``G_t = r_t + gamma G_{t+1}`` for every step of an episode (what Q should have predicted)."""
    out, g = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out
