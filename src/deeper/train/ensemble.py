"""Ensembles: train K members, combine their predictions, and bagging by bootstrap resampling.

- :func:`train_ensemble` trains ``cfg.ensemble.members`` members into ``OUT/member-<i>/``
  with seeds ``seed, seed + 1, ...`` (different initialisation, data order,
  dropout and augmentation), or, with ``cfg.sampling.bootstrap``, each on its own bootstrap
  resample of the training split (bagging, Breiman 1996), or, with ``cfg.ensemble.boost``,
  each after the first on a resample weighted towards the last member's training
  errors (boosting: :mod:`deeper.train.boost`), then evaluates the ensemble on the
  test split.  It is resumable member by member.
- :func:`evaluate_ensemble` scores any trained runs together (``deeper ensemble``):
  ``mean`` averages the members' softmax probabilities, ``vote`` takes the most
  frequent predicted class (ties go to the higher mean probability).  With
  ``tta="flip"`` each member also sees the mirrored images and averages the two
  predictions (test-time augmentation: an ensemble over inputs rather than
  weights; only sensible where a flip keeps the class, e.g. clothing, not digits);
  ``tta="shift"`` averages each image with its four one-pixel shifts.
  With ``cache=True`` each member's probabilities are kept in ``predictions/``
  beside its weights and reused while the weights file and the labels are the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import safetensors
import torch
import yaml
from safetensors.torch import save as st_save
from tqdm import tqdm

from deeper.data import BatchLoader, load_dataset
from deeper.errors import ConfigError
from deeper.fileio import file_digest, write_bytes_atomic, write_text_atomic
from deeper.inference import TTA, member_probabilities, shift_images  # noqa: F401 (shift_images: re-exported)
from deeper.models.weights import weights_file
from deeper.runtime import notice

METHODS = ("mean", "vote")


def combine(probs: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """Class predictions ``(N,)`` of an ensemble from member probabilities ``(M, N, K)``."""
    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method {method!r} (choose from {', '.join(METHODS)})")
    mean = probs.mean(0)
    if method == "mean":
        return mean.argmax(1)
    votes = torch.nn.functional.one_hot(probs.argmax(2), probs.shape[2]).sum(0).to(mean.dtype)
    return (votes + 0.5 * mean).argmax(1)  # mean < 1 per class: breaks ties, never outvotes


def predictions_path(weights: Path, data: str, split: str, tta: str, device_type: str) -> Path:
    """Where ``cache=True`` keeps one member's probabilities: ``predictions/`` beside its weights."""
    return weights.parent / "predictions" / f"{weights.stem}-{data}-{split}-{tta}-{device_type}.safetensors"


def _cached_probabilities(path: Path, digest: str, labels: torch.Tensor) -> torch.Tensor | None:
    """The probabilities in ``path`` if they were computed from these weights for these labels."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("weights_sha256") != digest:
                return None
            probs, stored = f.get_tensor("probs"), f.get_tensor("labels")
    except (OSError, safetensors.SafetensorError):  # missing, truncated or not a safetensors file
        return None
    return probs if torch.equal(stored, labels) and len(probs) == len(labels) else None


def _store_probabilities(path: Path, digest: str, probs: torch.Tensor, labels: torch.Tensor) -> None:
    try:
        write_bytes_atomic(path, st_save({"probs": probs, "labels": labels}, {"weights_sha256": digest}))
    except OSError as e:  # a read-only run folder: score without the cache
        notice(f"could not keep the predictions in {path}: {e.strerror or e}")


def ensemble_probabilities(
    runs: list[str | os.PathLike],
    *,
    data: str | None = None,
    split: str = "test",
    device: str = "auto",
    data_dir: str | None = None,
    batch_size: int = 1000,
    tta: str = "none",
    cache: bool = False,
    progress: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[dict], str]:
    """Each run's softmax probabilities on ``data``: ``(probs (M, N, K), labels (N,), members, data)``.

    ``members`` holds each run's weights file, model name and accuracy.  With
    ``cache``, a member scored before on the same kind of device (same weights
    file, by SHA-256, and the same labels) is read from
    :func:`predictions_path` instead of run again.
    """
    from deeper.inference import check_compatible, load_for_inference
    from deeper.train.loop import progress_enabled

    if not runs:
        raise ConfigError("an ensemble needs at least one run")
    paths = [weights_file(r) for r in runs]
    probs, members, ds = [], [], None
    bar = tqdm(paths, desc="members", unit="run", disable=not progress_enabled(progress), leave=False)
    for path in bar:
        model, meta = load_for_inference(path, device=device)
        data = data or meta.get("dataset")
        if data is None:
            raise ConfigError(f"{path} does not record its dataset; pass --data")
        check_compatible(meta, data, path)
        if ds is None:
            ds = load_dataset(data, split, data_dir=data_dir)
            labels = ds.labels.cpu()
        dev = next(model.parameters()).device
        p = None
        if cache:
            digest, where = file_digest(path), predictions_path(path, data, split, tta, dev.type)
            p = _cached_probabilities(where, digest, labels)
        if p is None:
            p = member_probabilities(model, BatchLoader(ds.to(dev), batch_size), tta)
            if cache:
                _store_probabilities(where, digest, p, labels)
        acc = float((p.argmax(1) == labels).double().mean())
        members.append({"weights": str(path), "model": meta.get("model"), "accuracy": acc})
        probs.append(p)
    return torch.stack(probs), labels, members, data


def ensemble_errors(probs: torch.Tensor, labels: torch.Tensor, method: str = "mean") -> dict[str, list[int]]:
    """The images the ensemble of ``probs`` (M, N, K) gets wrong by ``method``.

    ``wrong``: their indices; ``true`` and ``predicted``: their classes;
    ``members_right``: how many members classify each of them correctly.
    """
    pred = combine(probs, method)
    wrong = (pred != labels).nonzero().flatten()
    return {
        "wrong": wrong.tolist(),
        "predicted": pred[wrong].tolist(),
        "true": labels[wrong].tolist(),
        "members_right": (probs[:, wrong].argmax(2) == labels[wrong]).sum(0).tolist(),
    }


def score_ensemble(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The accuracy of the ensemble of ``probs`` (M, N, K) by each method in :data:`METHODS`."""
    return {m: float((combine(probs, m) == labels).double().mean()) for m in METHODS}


def evaluate_ensemble(
    runs: list[str | os.PathLike],
    *,
    data: str | None = None,
    method: str = "mean",
    split: str = "test",
    device: str = "auto",
    data_dir: str | None = None,
    batch_size: int = 1000,
    tta: str = "none",
    cache: bool = False,
    progress: bool | None = None,
    vote_weights: list[float] | None = None,
) -> dict:
    """Each member's accuracy and the ensemble's (by ``method``, and by both methods) on ``data``.

    Also the images the ensemble (by ``method``) gets wrong: their indices, true and
    predicted classes, and how many members classify each one correctly.
    ``cache`` and ``progress``: as in :func:`ensemble_probabilities`.  With
    ``vote_weights`` (one per run, e.g. boosting's alphas) also ``weighted_vote_accuracy``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method {method!r} (choose from {', '.join(METHODS)})")
    probs, labels, members, data = ensemble_probabilities(
        runs, data=data, split=split, device=device, data_dir=data_dir, batch_size=batch_size, tta=tta,
        cache=cache, progress=progress,
    )  # fmt: skip
    by = score_ensemble(probs, labels)
    weighted = {}
    if vote_weights is not None:
        from deeper.train.boost import weighted_vote

        pred = weighted_vote(probs, torch.tensor(vote_weights, dtype=probs.dtype))
        weighted = {"weighted_vote_accuracy": float((pred == labels).double().mean())}
    return {
        "data": data,
        "split": split,
        "images": len(labels),
        "method": method,
        "tta": tta,
        "members": members,
        "ensemble_accuracy": by[method],
        "mean_accuracy": by["mean"],
        "vote_accuracy": by["vote"],
        "best_member_accuracy": max(m["accuracy"] for m in members),
        "average_member_accuracy": sum(m["accuracy"] for m in members) / len(members),
        **weighted,
        **ensemble_errors(probs, labels, method),
    }


def member_dir(root: Path, i: int) -> Path:
    return root / f"member-{i}"


def train_ensemble(cfg, *, resume: bool = False, log=notice) -> dict:
    """Train ``cfg.ensemble.members`` members (or finish them, with ``resume``) and evaluate the ensemble."""
    from deeper.train.engine import run_engine as fit
    from deeper.train.run import default_run_dir

    cfg = cfg.resolved()
    k = cfg.ensemble.members
    root = Path(cfg.run.out) if cfg.run.out else default_run_dir(cfg)
    saved = root / "config.yaml"
    if saved.exists() and not resume:
        raise ConfigError(
            f"{root} already holds an ensemble; resume it with --resume {root} or choose another --out"
        )
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, yaml.safe_dump(cfg.replace(out=str(root)).to_dict(), sort_keys=False))
    from deeper.train.boost import Boosting

    results, boosting = [], Boosting(cfg) if cfg.ensemble.boost else None
    for i in range(k):
        mdir = member_dir(root, i)
        member = cfg.replace(ensemble=1, boost=False, seed=cfg.seed + i, out=str(mdir))
        if boosting is not None and i > 0:
            member = member.replace(sample_weights=str(boosting.write_weights(mdir)))
        done = mdir / "result.json"
        if done.is_file():
            log(f"ensemble member {i + 1}/{k} already trained ({mdir})")
            results.append(json.loads(done.read_text()))
        else:
            how = (
                ", bootstrap resample"
                if cfg.sampling.bootstrap
                else ", boosting resample"
                if i and boosting
                else ""
            )
            log(f"ensemble member {i + 1}/{k}: seed {member.seed}{how}")
            again = resume and (mdir / "checkpoints" / "latest").is_file()
            results.append(fit(member, resume=again, log=log))
        if boosting is not None and boosting.add(member, results[-1]["weights"], log):
            break
    ens = evaluate_ensemble(
        [r["weights"] for r in results], data=cfg.data, device=cfg.run.device, data_dir=cfg.run.data_dir,
        vote_weights=boosting.alphas if boosting is not None else None,
    )  # fmt: skip
    summary = {
        "model": cfg.model,
        "data": cfg.data,
        "recipe": cfg.recipe,
        "ensemble": len(results),
        "bootstrap": cfg.sampling.bootstrap,
        "boost": cfg.ensemble.boost,
        "members": [
            {
                "seed": cfg.seed + i,
                "run_dir": r["run_dir"],
                "test_accuracy": r["test_accuracy"],
                "train_seconds": r["train_seconds"],
            }
            for i, r in enumerate(results)
        ],
        "test_accuracy": ens["mean_accuracy"],
        "vote_test_accuracy": ens["vote_accuracy"],
        "best_member_test_accuracy": ens["best_member_accuracy"],
        "average_member_test_accuracy": ens["average_member_accuracy"],
        **(boosting.summary(ens["weighted_vote_accuracy"]) if boosting is not None else {}),
        "train_seconds": sum(r["train_seconds"] for r in results),
        "run_dir": str(root),
    }
    write_text_atomic(root / "result.json", json.dumps(summary, indent=2) + "\n")
    return summary
