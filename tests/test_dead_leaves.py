"""Dead-leaves images: the power law of the radii, the pictures, and the task option that adds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeper.data.photos import PhotoSet
from deeper.errors import ConfigError
from deeper.image2image import dead_leaves as dl
from deeper.tasks import create_task, get_task_class
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_the_radii_follow_their_power_law():
    r = dl.radii(np.random.default_rng(0), 200_000, 1.0, 50.0, alpha=3.0)
    assert r.min() >= 1.0 and r.max() <= 50.0
    # the CDF of a density proportional to r^-3 on [1, 50]: (1 - r^-2) / (1 - 50^-2)
    for x in (1.2, 2.0, 5.0, 20.0):
        expected = (1 - x**-2) / (1 - 50.0**-2)
        assert abs((r <= x).mean() - expected) < 0.005, x
    with pytest.raises(ValueError, match="r_min < r_max"):
        dl.radii(np.random.default_rng(0), 3, 5.0, 2.0)


def test_a_dead_leaves_image_is_flat_regions_and_antialiased_edges_made_by_its_seed():
    a = dl.dead_leaves(96, seed=3)
    assert a.shape == (3, 96, 96) and a.dtype == torch.uint8
    assert torch.equal(a, dl.dead_leaves(96, seed=3)) and not torch.equal(a, dl.dead_leaves(96, seed=4))
    steps = (a[:, 1:].int() - a[:, :-1].int()).abs().sum(0)
    assert 0.3 < (steps == 0).float().mean() < 0.95  # flat inside the disks, edges between them
    # antialiased: a pixel on an edge mixes the two colours, so the image holds many more colours than
    # the disks it shows whole (drawn at twice the size and averaged over 2x2 blocks)
    colours = {tuple(c) for c in a.flatten(1).T.tolist()}
    flat = {tuple(c) for c, s in zip(a[:, :-1].flatten(1).T.tolist(), steps.flatten().tolist()) if s == 0}
    assert len(colours) > 1.5 * len(flat)
    grey = dl.dead_leaves(32, seed=0, colour=False)
    assert grey.shape == (1, 32, 32) and grey.float().std() > 10
    with pytest.raises(ConfigError, match="at least 8 pixels"):
        dl.dead_leaves(4)


def test_dead_leaves_are_added_after_the_photographs():
    photos = PhotoSet("t", [torch.zeros(1, 20, 20, dtype=torch.uint8)], ["a"])
    out = dl.with_dead_leaves(photos, 2, seed=1, size=32)
    assert out.names == ["a", "dead-leaves-0", "dead-leaves-1"]
    assert [tuple(im.shape) for im in out.images] == [(1, 20, 20), (3, 32, 32), (3, 32, 32)]
    again = dl.with_dead_leaves(photos, 2, seed=1, size=32)
    assert all(torch.equal(x, y) for x, y in zip(out.images, again.images))
    assert not torch.equal(out.images[1], dl.with_dead_leaves(photos, 2, seed=2, size=32).images[1])
    assert dl.with_dead_leaves(photos, 0).names == ["a"]
    with pytest.raises(ConfigError, match="dead_leaves"):
        dl.with_dead_leaves(photos, -1)


@pytest.mark.parametrize("task", ["superres", "restore"])
def test_the_dead_leaves_option_adds_its_images_to_the_training_photographs(task, tmp_path, monkeypatch):
    import deeper.tasks.superres as sr

    made = []

    def recording(photos, n, *, seed):
        out = dl.with_dead_leaves(photos, n, seed=seed, size=32)
        made.append((len(photos), n, seed, len(out)))
        return out

    monkeypatch.setattr(sr, "with_dead_leaves", recording)
    settings = dict(get_task_class(task).dry_run)
    settings["task_args"] = {**settings["task_args"], "dead_leaves": 2}
    result = fit(TrainConfig(task=task, **settings, **QUIET, seed=5, out=str(tmp_path / "r")))
    assert made == [(16, 2, 5, 18)] and np.isfinite(result["test_psnr"])
    with pytest.raises(ConfigError, match="dead_leaves"):
        create_task(task, {"dead_leaves": -1})
