"""FID, KID, the real-vs-real floor and class coverage, as torchmetrics metrics over precomputed features.

torchmetrics' :class:`~torchmetrics.image.fid.FrechetInceptionDistance` and
:class:`~torchmetrics.image.kid.KernelInceptionDistance` accept a custom feature network; here
that network is :class:`Passthrough`, because the features (of a classifier trained here,
:mod:`deeper.generate.features`) are computed once per batch by the task and shared by every
score.  The metrics are updated with ``preds`` and ``target`` dicts of feature batches:
``preds["fake"]`` (generated), ``preds["train"]`` (real training images, for the floor),
``preds["logits"]`` (the classifier on generated images) and ``target["real"]`` (real test
images).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class Passthrough(nn.Module):
    """The "feature network" of already computed features: the identity, with their size."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FeatureFID(FrechetInceptionDistance):
    """FID between ``preds[fake_key]`` and ``target["real"]`` (features)."""

    def __init__(self, num_features: int, fake_key: str = "fake", **kwargs):
        super().__init__(feature=Passthrough(num_features), **kwargs)
        self.fake_key = fake_key

    def update(self, preds: dict, target: dict) -> None:  # type: ignore[override]
        super().update(target["real"].double(), real=True)
        super().update(preds[self.fake_key].double(), real=False)

    def compute(self) -> torch.Tensor:
        return super().compute().double().clamp(min=0)


class FeatureKID(KernelInceptionDistance):
    """KID (mean over subsets) between ``preds["fake"]`` and ``target["real"]``; the subsets are drawn from
    a generator of their own (the training random state is left alone)."""

    def __init__(
        self, num_features: int, subset_size: int = 1000, subsets: int = 50, seed: int = 0, **kwargs
    ):
        with warnings.catch_warnings():  # "will save all extracted features": it must, and they are small
            warnings.simplefilter("ignore")
            super().__init__(
                feature=Passthrough(num_features), subset_size=subset_size, subsets=subsets, **kwargs
            )
        self.seed, self.max_subset = seed, subset_size

    def update(self, preds: dict, target: dict) -> None:  # type: ignore[override]
        super().update(target["real"].double(), real=True)
        super().update(preds["fake"].double(), real=False)

    def compute(self) -> torch.Tensor:
        n = min(
            sum(len(f) for f in _list(self.real_features)), sum(len(f) for f in _list(self.fake_features))
        )
        self.subset_size = max(2, min(self.max_subset, n))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            mean, _ = super().compute()
        return mean.double()


def _list(x) -> list:
    return x if isinstance(x, list) else [x]


class ClassShare(Metric):
    """The share of the most (``which="max"``) or least (``"min"``) frequent class among generated samples, as the
    feature classifier labels them (1/K each for perfect coverage of K classes); :meth:`shares` gives them all."""

    higher_is_better = None
    full_state_update = False

    def __init__(self, num_classes: int, which: str = "min", **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.which = num_classes, which
        self.add_state("counts", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: dict, target=None) -> None:
        labels = preds["logits"].argmax(1)
        self.counts += torch.bincount(labels, minlength=self.num_classes)[: self.num_classes].double()

    def shares(self) -> torch.Tensor:
        return self.counts / self.counts.sum().clamp(min=1)

    def compute(self) -> torch.Tensor:
        s = self.shares()
        return s.max() if self.which == "max" else s.min()


@torch.no_grad()
def fid_kid(features, a: torch.Tensor, b: torch.Tensor, *, batch: int = 500, kid_subset: int = 1000) -> dict:
    """FID and KID between two sets of images in [0, 1] (``a`` the reference) in the space of ``features``
    (a :class:`~deeper.generate.features.FeatureNet`): for benchmarks and tests."""
    fid, kid = FeatureFID(features.num_features), FeatureKID(features.num_features, kid_subset)
    device = next(features.parameters()).device
    for i in range(0, max(len(a), len(b)), batch):
        fa, fb = a[i : i + batch], b[i : i + batch]
        if len(fa):
            f = features(fa.to(device))[0]
            fid.update({"fake": f[:0]}, {"real": f})
            kid.update({"fake": f[:0]}, {"real": f})
        if len(fb):
            f = features(fb.to(device))[0]
            fid.update({"fake": f}, {"real": f[:0]})
            kid.update({"fake": f}, {"real": f[:0]})
    return {"fid": float(fid.compute()), "kid": float(kid.compute())}
