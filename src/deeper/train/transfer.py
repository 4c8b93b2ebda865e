"""Transfer learning (notes 003): start from trained weights, new classifier, optionally frozen features.

``TrainConfig(init_from=..., freeze=...)`` (``deeper finetune``, ``deeper train
--init-from``) calls :func:`prepare_transfer` right after the model is built for
the new dataset: every trained weight is copied in except the classifier's,
which :meth:`reset_classifier` replaces by a freshly initialised one with the new
number of classes; ``freeze="features"`` then trains the classifier alone.
"""

from __future__ import annotations

import os

from torch import nn

from deeper.errors import CheckpointError, ConfigError
from deeper.models.weights import load_weights, weights_file

FREEZE = ("none", "features")


def classifier_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{qualified name: module}`` of the layers that map features to classes."""
    if not hasattr(model, "get_classifier"):
        raise ConfigError(
            f"{type(model).__name__} has no get_classifier(): deeper cannot replace its classifier"
        )
    wanted = [model.get_classifier()]
    wanted += [
        aux.fc2 for aux in (getattr(model, "aux1", None), getattr(model, "aux2", None)) if aux is not None
    ]
    found = {name: m for name, m in model.named_modules() if any(m is w for w in wanted)}
    return found


def load_pretrained(
    model: nn.Module, path: str | os.PathLike, *, model_name: str | None = None
) -> dict[str, str]:
    """Copy every weight of ``path`` into ``model`` except the classifier's, then reset the classifier.

    Returns the file's metadata.  A file for another model, or weights whose shapes
    do not fit (e.g. trained on another number of channels), is a clear error.
    """
    path = weights_file(path)
    state, meta = load_weights(path)
    recorded = meta.get("model")
    if model_name is not None and recorded is not None and recorded != model_name:
        raise ConfigError(f"{path} holds weights for model {recorded!r}, not {model_name!r}")
    heads = classifier_modules(model)
    skip = {f"{name}.{k}" for name, m in heads.items() for k in m.state_dict()}
    source = {k: v for k, v in state.items() if k not in skip}
    own = model.state_dict()
    unexpected = [k for k in source if k not in own and not k.startswith(("aux1.", "aux2."))]
    missing = [k for k in own if k not in source and k not in skip]
    mismatched = [k for k in source if k in own and source[k].shape != own[k].shape]
    if unexpected or missing or mismatched:
        trained = f"{meta.get('in_chans', '?')}-channel {meta.get('img_size', '?')}px images"
        detail = (
            f"shape of {mismatched[0]}: {tuple(source[mismatched[0]].shape)} vs {tuple(own[mismatched[0]].shape)}"
            if mismatched
            else f"{'missing' if missing else 'unexpected'} {(missing or unexpected)[0]}"
        )
        raise CheckpointError(
            f"{path}: the weights (trained on {trained}) do not fit this {type(model).__name__} ({detail}); "
            "fine-tune on data with the same channels and image size, with the same model options"
        )
    model.load_state_dict({k: v for k, v in source.items() if k in own}, strict=False)
    model.reset_classifier(model.get_classifier().out_features)
    return meta


def _keep_eval(module: nn.Module, args) -> None:
    module.train(False)


def freeze_features(model: nn.Module) -> int:
    """Train only the classifier: other parameters stop receiving gradients and frozen batch-norm layers
    keep their running statistics (they stay in evaluation mode).  Returns the trainable parameter count."""
    heads = classifier_modules(model)
    trainable = {id(p) for m in heads.values() for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
            id(p) in trainable for p in m.parameters()
        ):
            m.register_forward_pre_hook(_keep_eval)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prepare_transfer(
    model: nn.Module, init_from: str | None, freeze: str, *, model_name: str | None = None
) -> dict:
    """What ``build_run`` does for ``init_from`` / ``freeze``; returns metadata to record with the run."""
    if freeze not in FREEZE:
        raise ConfigError(f"--freeze must be one of {', '.join(FREEZE)}, got {freeze!r}")
    record: dict = {}
    if init_from is not None:
        load_pretrained(model, init_from, model_name=model_name)
        record["init_from"] = str(init_from)
    if freeze == "features":
        freeze_features(model)
        record["freeze"] = freeze
    return record
