"""Denoising diffusion (Ho, Jain & Abbeel, 2020) and its deterministic sampler of few steps, DDIM (Song et al., 2021).

Forward process: ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with ``abar_t`` the
product of ``1 - beta_s`` for ``s <= t`` and the paper's linear schedule ``beta`` from 1e-4
to 0.02 over ``T = 1000`` steps.  The loss is the paper's "simple" one: the mean squared
error between the noise drawn and the noise the network predicts from ``x_t`` and ``t``.

Steps are numbered 0 ... T-1 here (the paper's t = 1 ... T).  Samplers take a ``generator``
(their own random stream) and a model ``eps(x, t)``; classifier-free guidance (Ho &
Salimans, 2021) mixes the conditional and unconditional predictions:
``eps_u + scale * (eps_c - eps_u)`` (scale 1: the conditional model alone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class Schedule:
    """The noise schedule and the quantities the samplers need, as float64 tensors on the CPU."""

    def __init__(self, steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if steps < 1:
            raise ValueError(f"a diffusion needs at least one step, got {steps}")
        self.steps = steps
        # the paper's schedule is given for T = 1000; other lengths keep its end points per unit time
        scale = 1000 / steps
        self.betas = torch.linspace(
            beta_start * scale, min(beta_end * scale, 0.999), steps, dtype=torch.float64
        )
        self.alphas = 1 - self.betas
        self.abar = torch.cumprod(self.alphas, 0)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t`` from ``x_0`` in closed form: ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``."""
        return self._at(self.abar.sqrt(), t, x0) * x0 + self._at((1 - self.abar).sqrt(), t, x0) * noise


Eps = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps(x_t, t) -> predicted noise


def guided(model, labels=None, tokens=None, scale: float = 1.0) -> Eps:
    """``eps(x, t)`` of a (conditional) network, with classifier-free guidance at ``scale``."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if (labels is None and tokens is None) or scale == 1.0:
            return model(x, t, labels, tokens) if (labels is not None or tokens is not None) else model(x, t)
        n = x.shape[0]
        both = model(
            torch.cat([x, x]), torch.cat([t, t]),
            None if labels is None else torch.cat([labels, torch.full_like(labels, model.num_classes)]),
            None if tokens is None else torch.cat([tokens, torch.zeros_like(tokens)]),
        )  # fmt: skip
        cond, uncond = both[:n], both[n:]
        return uncond + scale * (cond - uncond)

    return eps


def ddim_timesteps(total: int, steps: int) -> list[int]:
    """``steps`` time steps evenly spaced over ``0 ... total-1``, from the last (noisiest) down to 0."""
    steps = max(1, min(steps, total))
    return sorted(
        {round(i * (total - 1) / max(1, steps - 1)) for i in range(steps)} | {total - 1}, reverse=True
    )


@torch.no_grad()
def ddim_sample(eps: Eps, schedule: Schedule, x_T: torch.Tensor, steps: int = 50, *, eta: float = 0.0,
                generator: torch.Generator | None = None, trajectory: list | None = None,
                clip: bool = True) -> torch.Tensor:  # fmt: skip
    """DDIM from ``x_T``: at each step predict ``x_0``, then move to the previous chosen step
    (``eta`` 0: deterministic; 1: as random as DDPM).  ``trajectory`` collects ``x`` after each step."""
    x = x_T
    abar = schedule.abar
    ts = ddim_timesteps(schedule.steps, steps)
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else None
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        e = eps(x, tt).to(torch.float64)
        a_t = float(abar[t])
        a_p = float(abar[prev]) if prev is not None else 1.0
        xd = x.to(torch.float64)
        x0 = (xd - (1 - a_t) ** 0.5 * e) / a_t**0.5
        if clip:
            x0 = x0.clamp(-1, 1)
            e = (xd - a_t**0.5 * x0) / (1 - a_t) ** 0.5  # the noise consistent with the clipped x_0
        sigma = eta * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)) ** 0.5 if prev is not None else 0.0
        x = a_p**0.5 * x0 + max(0.0, 1 - a_p - sigma**2) ** 0.5 * e
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        x = x.to(x_T.dtype)
        if trajectory is not None:
            trajectory.append(x.clone())
    return x


@torch.no_grad()
def ddim_invert(eps: Eps, schedule: Schedule, x0: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """The noise ``x_T`` that deterministic DDIM (``eta`` 0, no clipping) maps to ``x0``: the same steps run
    upwards (exact in the limit of many steps, where the DDIM update becomes an ODE)."""
    x = x0.to(torch.float64)
    abar = schedule.abar
    ts = ddim_timesteps(schedule.steps, steps)[::-1]  # 0 ... T-1
    a_p = 1.0  # x_0
    prev = None
    for t in ts:
        # the noise is read at the step the sampler will leave from (the previous one; at the start: the first)
        tt = torch.full((x.shape[0],), t if prev is None else prev, device=x.device, dtype=torch.long)
        e = eps(x.to(x0.dtype), tt).to(torch.float64)
        x0_pred = (x - (1 - a_p) ** 0.5 * e) / a_p**0.5
        a_t = float(abar[t])
        x = a_t**0.5 * x0_pred + (1 - a_t) ** 0.5 * e
        a_p, prev = a_t, t
    return x.to(x0.dtype)


@torch.no_grad()
def ddpm_sample(eps: Eps, schedule: Schedule, x_T: torch.Tensor, *, generator: torch.Generator | None = None,
                clip: bool = True) -> torch.Tensor:  # fmt: skip
    """DDPM's ancestral sampler: every one of the T steps, ``sigma_t^2 = beta_t`` (the paper's choice)."""
    x = x_T.to(torch.float64)
    for t in reversed(range(schedule.steps)):
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        e = eps(x.to(x_T.dtype), tt).to(torch.float64)
        a_t, abar_t, b_t = float(schedule.alphas[t]), float(schedule.abar[t]), float(schedule.betas[t])
        abar_p = float(schedule.abar[t - 1]) if t > 0 else 1.0
        x0 = (x - (1 - abar_t) ** 0.5 * e) / abar_t**0.5
        if clip:
            x0 = x0.clamp(-1, 1)
        # the posterior mean of q(x_{t-1} | x_t, x_0)
        mean = (abar_p**0.5 * b_t / (1 - abar_t)) * x0 + (a_t**0.5 * (1 - abar_p) / (1 - abar_t)) * x
        if t > 0:
            x = mean + b_t**0.5 * torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        else:
            x = mean
    return x.to(x_T.dtype)
