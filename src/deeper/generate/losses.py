"""GAN losses: the non-saturating loss of Goodfellow et al. (2014), and WGAN-GP's (Gulrajani et al., 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss_gan(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """The discriminator's cross-entropy: real images ``real_label``, generated ones 0 (the two terms added).

    ``real_label`` below 1 is one-sided label smoothing (Salimans et al., 2016): the discriminator's best
    answer on a real image is then ``real_label``, not certainty, so it cannot grow ever more confident
    (and its gradients to the generator ever steeper); generated images keep the target 0."""
    return F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label)) + (
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


def g_loss_gan(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's non-saturating loss: ``-log D(G(z))``."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def critic_with_penalty(critic, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                        labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(critic(real), critic(fake), penalty)`` with WGAN-GP's gradient penalty
    ``E[(||grad_x critic(x)||_2 - 1)^2]`` at ``x = alpha * real + (1 - alpha) * fake`` (one ``alpha`` per sample).

    The three batches go through the critic in one forward (a DDP module allows one per backward; the
    critic has no batch norm, so each sample's score is its own).  The penalty's graph is kept
    (``create_graph``) so that it trains the critic.
    """
    n = real.shape[0]
    a = alpha.view(-1, *([1] * (real.ndim - 1))).to(real.dtype)
    mix = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    both = torch.cat([real, fake.detach(), mix])
    scores = critic(both) if labels is None else critic(both, torch.cat([labels] * 3))
    s_real, s_fake, s_mix = scores[:n], scores[n : 2 * n], scores[2 * n :]
    (grad,) = torch.autograd.grad(s_mix.float().sum(), mix, create_graph=True)
    penalty = (grad.flatten(1).float().norm(2, dim=1) - 1).square().mean()
    return s_real, s_fake, penalty


def d_loss_wgan(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein loss ``E[D(fake)] - E[D(real)]`` (before the penalty)."""
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()
