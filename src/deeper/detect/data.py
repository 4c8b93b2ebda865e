"""Scene data for the detection task: the splits it trains and scores on, their region proposals, loaders.

- :func:`load_split`: a split of a ``scenes`` dataset, made of MNIST digits (the dataset's
  own source) or, for dry runs and tests that must not need MNIST, of scikit-learn's bundled
  digits (``source="digits"``; never cached).
- :func:`scene_proposals`: selective search over every scene of a split, cached under
  ``<cache>/proposals/`` (safetensors, keyed by a digest of the images and the search's
  settings): R-CNN, SPPNet and Fast R-CNN train on the same proposals, computed once.
- :class:`DetectionLoader`: the engine's scene batches ``(images, targets)``, the targets
  carrying each scene's ``proposals`` when the model needs them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from deeper.data.registry import DataSources, load_dataset
from deeper.data.scenes import SceneDataset, SceneLoader, load_scenes
from deeper.fileio import write_bytes_atomic
from deeper.models.detect.proposals import PROPOSALS_VERSION, SEARCH, selective_search
from deeper.runtime import notice


def load_split(data: str, split: str, *, n: int | None, source: str, data_dir: str | None) -> SceneDataset:
    """``n`` scenes (None: the preset's count) of ``split`` of scene dataset ``data``."""
    if source == "digits":  # offline: scikit-learn's digits, 28x28 look-alikes
        digits = load_dataset("digits", "test" if split == "test" else "train")
        return load_scenes(data, split, n=n, digits=digits, cache=False)
    return load_scenes(data, split, n=n, data_dir=data_dir)


def _key(ds: SceneDataset) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(
        json.dumps({"version": PROPOSALS_VERSION, "search": SEARCH, "shape": list(ds.images.shape)}).encode()
    )
    h.update(ds.images.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def scene_proposals(ds: SceneDataset, *, cache_dir: Path | None = None, log=notice) -> list[torch.Tensor]:
    """Selective-search proposals (K_i, 4) of every scene of ``ds``, from the cache when there."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save

    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "proposals" / f"{ds.name}-{ds.split_name}-{len(ds)}-{_key(ds)}.safetensors"
        if path.is_file():
            try:
                t = load_file(path)
                boxes, offsets = t["boxes"], t["offsets"].tolist()
                if len(offsets) == len(ds) + 1:
                    return [boxes[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            except (OSError, KeyError, SafetensorError):
                pass  # made again below
    if len(ds) > 50:
        log(f"selective search on {len(ds):,} {ds.name} {ds.split_name} scenes (cached afterwards)")
    start = time.perf_counter()
    found = [selective_search(ds.images[i, 0].float().div(255)) for i in range(len(ds))]
    if len(ds) > 50:
        per = (time.perf_counter() - start) / len(ds) * 1000
        log(
            f"selective search: {sum(map(len, found)) / len(ds):.1f} proposals per scene, {per:.1f} ms per scene"
        )
    if path is not None:
        offsets = torch.tensor([0] + [len(f) for f in found]).cumsum(0)
        data = save({"boxes": torch.cat(found).contiguous(), "offsets": offsets})
        try:
            write_bytes_atomic(path, data)
        except OSError as e:  # an unwritable cache costs the next run time, not this one its proposals
            log(f"could not cache the proposals in {path.parent}: {e}")
    return found


def cache_dir_of(data_dir: str | None) -> Path:
    return DataSources.resolve(data_dir, download=False).cache_dir


class DetectionLoader(SceneLoader):
    """Scene batches ``(images, targets)``; with ``proposals`` (one (K, 4) tensor per scene) each target also
    carries its scene's ``proposals``."""

    def __init__(self, dataset: SceneDataset, batch_size: int, *, proposals: list | None = None, **kwargs):
        super().__init__(dataset, batch_size, **kwargs)
        if proposals is not None and len(proposals) != len(dataset):
            raise ValueError(f"{len(proposals)} proposal sets for {len(dataset)} scenes")
        self.proposals = proposals

    def batch(self, sel: torch.Tensor):
        x, targets = super().batch(sel)
        if self.proposals is not None:
            for t, i in zip(targets, sel.tolist()):
                t["proposals"] = self.proposals[i]
        return x, targets
