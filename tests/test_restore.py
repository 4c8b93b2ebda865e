"""Restoration: the damage, the simple repairs, a U-Net that beats them on held-out digits, predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.errors import ConfigError
from deeper.image2image.damage import BLUR_SIGMAS, add_noise, best_blur, gaussian_blur, hole_mask, mean_fill
from deeper.image2image.metrics import psnr
from deeper.models import create_model
from deeper.tasks import create_task
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_holes_cover_about_the_asked_fraction_and_follow_their_generator():
    m1 = hole_mask(4, 64, 64, hole=8, cover=0.2, generator=torch.Generator().manual_seed(1))
    m2 = hole_mask(4, 64, 64, hole=8, cover=0.2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(m1, m2) and set(m1.unique().tolist()) == {0.0, 1.0}
    assert 0.08 < float(m1.mean()) < 0.25  # overlapping rectangles cover a little less than drawn


def test_mean_fill_puts_the_mean_of_the_known_pixels_in_the_holes():
    x = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:4, 2:5] = 1
    filled = mean_fill(x * (1 - mask), mask)
    known = (1 - mask).bool().expand_as(x)
    assert torch.equal(filled[known], x[known])
    expected = x[0, 1][~mask[0, 0].bool()].mean()
    assert torch.allclose(filled[0, 1, 3, 3], expected)


def test_the_blur_baseline_is_the_best_of_its_widths_image_by_image():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 1, 24, 24, generator=g)
    clean = gaussian_blur(clean, 1.5)  # something smooth, that a blur helps
    noisy = add_noise(clean, 30.0, g)
    best = psnr(best_blur(noisy, clean), clean)
    for s in BLUR_SIGMAS:
        assert (best >= psnr(gaussian_blur(noisy, s).clamp(0, 1), clean) - 1e-9).all()
    assert (best > psnr(noisy, clean)).all()


def test_the_unet_starts_as_the_identity_and_takes_any_size():
    net = create_model("restore-unet", in_chans=3, width=4, depth=2, mask_input=True)
    x = torch.rand(1, 3, 13, 19)
    assert torch.equal(net(x, torch.zeros(1, 1, 13, 19)), x)
    torch.nn.init.normal_(net.out.weight)  # trained: it corrects, but only the missing pixels
    mask = torch.zeros(1, 1, 13, 19)
    mask[..., 3:7, 4:9] = 1
    y = net(x * (1 - mask), mask)
    known = (mask == 0).expand_as(x)
    assert torch.equal(y[known], x[known]) and not torch.equal(y[~known], (x * (1 - mask))[~known])
    with pytest.raises(ValueError, match="reads"):
        net(torch.rand(1, 1, 13, 19))


@pytest.fixture
def one_thread():
    """One CPU thread: on a shared 2-core machine two threads wait on each other several times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_restoration_beats_the_simple_repairs_on_held_out_digits(tmp_path, one_thread):
    r = fit(TrainConfig(task="restore", model="restore-unet", data="digits", model_kwargs={"width": 16, "depth": 2},
                        task_args={"damage": "inpaint", "hole": 8, "cover": 0.2, "patches": 2048, "eval_images": 60},
                        epochs=4, batch_size=64, lr=0.002, schedule="cosine", out=str(tmp_path / "r"), **QUIET))  # fmt: skip
    t = r["test"]
    assert t["baseline_psnr"] >= max(t["damaged_psnr"], t["meanfill_psnr"]) - 1e-9
    assert t["psnr"] > t["baseline_psnr"] + 2.0, t
    assert r["gain_db"] == pytest.approx(t["psnr"] - t["baseline_psnr"])
    assert (tmp_path / "r" / "restore.png").is_file()


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory) -> str:
    from deeper.tasks import get_task_class

    out = tmp_path_factory.mktemp("restore") / "run"
    fit(TrainConfig(task="restore", **get_task_class("restore").dry_run, **QUIET, out=str(out)))
    return str(out)


def test_evaluation_damages_the_held_out_images_the_same_way_every_time(inpainter):
    lines = (__import__("pathlib").Path(inpainter) / "metrics.csv").read_text().splitlines()
    col = lines[0].split(",").index("val_damaged_psnr")
    assert lines[1].split(",")[col] == lines[2].split(",")[col]


def test_predict_repairs_black_pixels_and_refuses_grey_images_for_colour_weights(inpainter, tmp_path, capsys):
    from deeper.cli import main

    rgb = (np.random.default_rng(0).random((20, 24, 3)) * 200 + 40).astype(np.uint8)
    rgb[5:9, 6:12] = 0
    Image.fromarray(rgb).save(tmp_path / "holes.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    assert (
        main(
            [
                "predict",
                "--weights",
                inpainter,
                str(tmp_path / "holes.png"),
                "-o",
                str(tmp_path / "o"),
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert answer["missing_pixels"] == 24 and Image.open(answer["output"]).size == (24, 20)
    assert main(["predict", "--weights", inpainter, str(tmp_path / "grey.png")]) != 0
    err = capsys.readouterr().err.strip()
    assert "a grey image; these weights read colour (RGB) images" in err and len(err.splitlines()) == 1


def test_restore_options_are_checked():
    with pytest.raises(ConfigError, match="must be one of noise, inpaint"):
        create_task("restore", {"damage": "blur"})
    with pytest.raises(ConfigError, match="not a restoration network"):
        fit(TrainConfig(task="restore", model="srcnn", data="photos", epochs=1, **QUIET))
