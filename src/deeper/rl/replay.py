"""Experience replay: a ring buffer of transitions in tensors on the device.

Transitions ``(obs, action, reward, next_obs, done)`` are written at ``pos``, which wraps
around at ``capacity`` (the oldest transition is overwritten); ``done`` is 1 only when the
episode *terminated* (a time limit's truncation still bootstraps from the next state).
Frames are kept as bytes.  Sampling draws indices from a ``torch.Generator`` the caller
owns (its state goes into checkpoints), uniformly, or in proportion to ``priority**alpha``
with importance weights ``(N P(i))**-beta`` normalised by their largest (prioritized
replay, Schaul et al. 2016; sampled with ``torch.multinomial`` over all priorities: O(N)
per batch, vectorised, instead of a sum tree).

:meth:`ReplayBuffer.state_dict` holds the filled part of every tensor, ``pos``, ``size``
and the priorities: a resumed run samples exactly what an uninterrupted one would.
"""

from __future__ import annotations

import torch


class ReplayBuffer:
    def __init__(self, capacity: int, obs_shape, obs_dtype: torch.dtype = torch.float32, *, device="cpu",
                 alpha: float = 0.0):  # fmt: skip
        self.capacity, self.device, self.alpha = int(capacity), torch.device(device), float(alpha)
        shape = (self.capacity, *obs_shape)
        self.data = {
            "obs": torch.zeros(shape, dtype=obs_dtype, device=self.device),
            "action": torch.zeros(self.capacity, dtype=torch.long, device=self.device),
            "reward": torch.zeros(self.capacity, device=self.device),
            "next": torch.zeros(shape, dtype=obs_dtype, device=self.device),
            "done": torch.zeros(self.capacity, device=self.device),
        }
        #: priorities (prioritized replay only), on the CPU beside the sampling generator
        self.priority = torch.zeros(self.capacity, dtype=torch.float64) if self.alpha > 0 else None
        self.max_priority = 1.0
        self.pos = self.size = 0

    @property
    def prioritized(self) -> bool:
        return self.priority is not None

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, action: int, reward: float, next_obs: torch.Tensor, done: bool) -> int:
        """Store one transition; its index."""
        i = self.pos
        d = self.data
        d["obs"][i] = obs
        d["action"][i] = action
        d["reward"][i] = reward
        d["next"][i] = next_obs
        d["done"][i] = float(done)
        if self.priority is not None:
            self.priority[i] = self.max_priority  # new transitions are sampled at least once, likely
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def sample(self, n: int, generator: torch.Generator, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """``n`` transitions (with replacement); prioritized: also their ``index`` and importance ``weight``."""
        if self.size == 0:
            raise ValueError("cannot sample an empty replay buffer")
        if self.priority is None:
            idx = torch.randint(0, self.size, (n,), generator=generator)
            return {k: v[idx.to(self.device)] for k, v in self.data.items()}
        p = self.priority[: self.size] ** self.alpha
        p = p / p.sum()
        idx = torch.multinomial(p, n, replacement=True, generator=generator)
        weight = (self.size * p[idx]) ** -beta
        batch = {k: v[idx.to(self.device)] for k, v in self.data.items()}
        batch["index"] = idx
        batch["weight"] = (weight / weight.max()).float().to(self.device)
        return batch

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor, eps: float = 1e-6) -> None:
        """Priorities of sampled transitions become ``|TD error| + eps``."""
        value = td_error.detach().abs().double().cpu() + eps
        self.priority[index.cpu()] = value
        self.max_priority = max(self.max_priority, float(value.max()))

    # ---- checkpoints
    def state_dict(self) -> dict:
        n = self.size
        state = {
            "data": {k: v[:n].cpu().clone() for k, v in self.data.items()},
            "pos": self.pos, "size": n, "capacity": self.capacity, "max_priority": self.max_priority,
        }  # fmt: skip
        if self.priority is not None:
            state["priority"] = self.priority[:n].clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"the saved buffer holds {state['capacity']} transitions, this one {self.capacity}"
            )
        n = state["size"]
        for k, v in self.data.items():
            v[:n] = state["data"][k].to(self.device)
        self.pos, self.size, self.max_priority = state["pos"], n, state["max_priority"]
        if self.priority is not None:
            self.priority[:n] = state["priority"]
