"""Boosting: each new member trains on a resample that favours what the last one got wrong.

The notes (004) describe it against bagging: train on the whole data, find the
examples the model predicts badly, give them more weight (more of the random
draws), train a new model on that and combine it with the earlier ones.  This is
AdaBoost in its multi-class form SAMME (Zhu et al. 2009), by resampling (Freund &
Schapire 1996; for neural networks, Schwenk & Bengio 2000)::

    w_i = 1 / n                                       over the n training images
    for member k = 0, 1, ...:
        train it on n images drawn with replacement with probabilities w
            (member 0: on the training split itself, as the notes say)
        err_k   = sum of w_i over the images it gets wrong (clean images, eval mode)
        alpha_k = rate * (log((1 - err_k) / err_k) + log(C - 1))      (C classes)
        w_i     = w_i * exp(alpha_k) where it is wrong; then w / sum(w)
    ensemble: argmax_c  sum_k alpha_k [member k predicts c]          (weighted vote)

``rate`` is the shrinkage of boosting (scikit-learn's ``learning_rate``): a network
fits its training images almost perfectly, so at ``rate`` 1 the few it gets wrong
take most of the next member's draws; a smaller rate moves the weights gently.
A member that gets every training image right ends the boosting (nothing left to
reweight; it votes with ``alpha = 1``); one no better than chance
(``err >= 1 - 1/C``) votes with ``alpha = 0`` and ends it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from deeper.data import ImageDataset
from deeper.data.resample import save_sample_weights
from deeper.errors import ConfigError


@dataclass(frozen=True)
class BoostStep:
    error: float  # weighted training error of the member
    alpha: float  # its weight in the ensemble's vote
    weights: torch.Tensor  # the sampling probabilities of the next member (sum to one)
    stop: bool  # no next member: a perfect or a useless one


def samme_step(weights: torch.Tensor, wrong: torch.Tensor, num_classes: int, rate: float = 1.0) -> BoostStep:
    """SAMME's update after a member that gets the images ``wrong`` (bool, n) wrong under ``weights``."""
    if not rate > 0:
        raise ConfigError(f"--boost-rate must be positive, got {rate}")
    w = weights.double() / weights.double().sum()
    err = float(w[wrong].sum())
    if err <= 0:
        return BoostStep(0.0, 1.0, w, stop=True)
    if err >= 1 - 1 / num_classes - 1e-12:  # no better than guessing (alpha would be <= 0)
        return BoostStep(err, 0.0, w, stop=True)
    alpha = rate * (math.log((1 - err) / err) + math.log(num_classes - 1))
    new = w * torch.where(wrong, math.exp(alpha), 1.0)
    return BoostStep(err, alpha, new / new.sum(), stop=False)


def weighted_vote(probs: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Class predictions ``(N,)`` of ``sum_k alpha_k onehot(argmax probs_k)`` for probabilities ``(M, N, K)``.

    Ties go to the higher alpha-weighted mean probability (which is below any one vote).
    """
    a = alphas.to(probs.dtype)
    votes = torch.nn.functional.one_hot(probs.argmax(2), probs.shape[2]).to(probs.dtype)
    score = (a[:, None, None] * votes).sum(0)
    mean = (a[:, None, None] * probs).sum(0) / a.sum().clamp_min(1e-12)
    return (score + 1e-6 * mean).argmax(1)


class Boosting:
    """The boosting state of :func:`deeper.train.ensemble.train_ensemble`: sampling weights, and each member's error and vote."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.weights: torch.Tensor | None = None  # the next member's sampling probabilities
        self.errors: list[float] = []
        self.alphas: list[float] = []
        self._train: ImageDataset | None = None  # the clean training split (the same for every member)

    def write_weights(self, mdir: Path) -> Path:
        """The sample weights file of the member trained in ``mdir`` (written unless it is there)."""
        path = mdir / "sample_weights.safetensors"
        if not path.is_file():  # on a resume the member keeps the draws it started with
            mdir.mkdir(parents=True, exist_ok=True)
            save_sample_weights(path, self.weights)
        return path

    def add(self, member, weights_file: str, log) -> bool:
        """Score the trained member on its clean training split, update the weights; True: stop boosting."""
        from deeper.data import BatchLoader, get_dataset_spec
        from deeper.inference import load_for_inference, member_probabilities
        from deeper.tasks.classify import split_data

        if self._train is None:
            self._train, _, _ = split_data(member.resolved())
        train = self._train
        model, _ = load_for_inference(weights_file, device=self.cfg.run.device)
        dev = next(model.parameters()).device
        wrong = member_probabilities(model, BatchLoader(train.to(dev), 1000)).argmax(1) != train.labels.cpu()
        w = self.weights if self.weights is not None else torch.full((len(train),), 1.0 / len(train))
        step = samme_step(w, wrong, get_dataset_spec(self.cfg.data).num_classes, self.cfg.ensemble.boost_rate)
        self.weights = step.weights
        self.errors.append(step.error)
        self.alphas.append(step.alpha)
        log(
            f"boosting: member {len(self.alphas)} gets {int(wrong.sum()):,} training images wrong, "
            f"weighted error {step.error:.5f}, vote weight {step.alpha:.3f}"
        )
        if step.stop:
            log(
                "boosting stops: "
                + ("a member made no error" if step.error == 0 else "no better than chance")
            )
        return step.stop

    def summary(self, weighted_vote_accuracy: float) -> dict:
        """The boosting entries of the ensemble's ``result.json``."""
        return {
            "boost_rate": self.cfg.ensemble.boost_rate,
            "boost_errors": self.errors,
            "boost_alphas": self.alphas,
            "boost_test_accuracy": weighted_vote_accuracy,
        }
