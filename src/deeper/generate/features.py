"""The feature network of the scores: a classifier trained here on the same dataset, read before its last layer.

No Inception weights can be had here, and FIDs from different feature networks do not
compare, so every FID and KID of deeper is taken in the feature space of a classifier of
the generated dataset: the input of its last fully connected layer (84 numbers for LeNet-5),
with its logits for the class coverage.  :func:`describe` names the network in tables.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeper.errors import ConfigError


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("the feature classifier has no fully connected layer to read features before")
    return linears[-1]


class FeatureNet(nn.Module):
    """``images in [0, 1] (N, C, H, W) -> (features (N, d), logits (N, classes))`` of a frozen classifier."""

    def __init__(self, classifier: nn.Module, name: str = "classifier", accuracy: float | None = None):
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.name, self.accuracy = name, accuracy
        self.num_features = last_linear(classifier).in_features
        self._seen: list[torch.Tensor] = []
        last_linear(classifier).register_forward_hook(lambda m, args, out: self._seen.append(args[0]))
        self.eval()

    def train(self, mode: bool = True):  # always in evaluation mode (batch norm, dropout)
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._seen.clear()
        logits = self.classifier(images.float())
        feats = self._seen[-1].flatten(1).float()
        self._seen.clear()
        return feats, logits.float()

    def describe(self, data: str) -> str:
        acc = f", {100 * self.accuracy:.2f}% test accuracy" if self.accuracy is not None else ""
        return f"{self.name} trained here on {data}{acc}"


def load_classifier(path: str, data: str, shape: tuple[int, int, int]) -> FeatureNet:
    """The classifier of a ``deeper train`` run (folder or weights file), checked against the dataset."""
    from deeper.models.weights import model_from_weights, weights_file

    model, meta = model_from_weights(weights_file(path))
    if meta.get("task", "classify") != "classify":
        raise ConfigError(f"{path}: the feature network must be a classifier, not a {meta['task']} model")
    trained_on = meta.get("dataset")
    if trained_on is not None and trained_on != data:
        raise ConfigError(f"{path}: the feature classifier was trained on {trained_on}, not {data}")
    if int(meta.get("in_chans", shape[0])) != shape[0]:
        raise ConfigError(
            f"{path}: the feature classifier takes {meta['in_chans']} channels, the data {shape[0]}"
        )
    acc = meta.get("test_accuracy")
    return FeatureNet(
        model, str(meta.get("model", "classifier")), float(acc) if acc not in (None, "None") else None
    )


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *, epochs: int = 1,
                     seed: int = 0, batch_size: int = 128, model: str = "lenet5",
                     on: str = "") -> FeatureNet:  # fmt: skip
    """A classifier trained from scratch on ``images`` (uint8) in this process, deterministically, leaving the
    global random state alone: the feature network when no ``classifier`` weights are given."""
    from deeper.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_model(model, num_classes=num_classes, in_chans=images.shape[1]).to(images.device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=g).to(images.device)
            for i in range(0, len(images), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(net(images[idx].float() / 255), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    on = f" of {on}" if on else ""
    return FeatureNet(net, f"{model} ({epochs} epoch{'s' if epochs != 1 else ''}{on}, in the run)")
