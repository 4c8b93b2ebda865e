"""Super-resolution: the sub-pixel rearrangement, the luminance and resize protocol, PSNR/SSIM, patches,
SRCNN learning on a smooth image, the superres task end to end (train, predict), and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.data.photos import PhotoSet
from deeper.errors import ConfigError, DataError
from deeper.image2image.images import (
    downscale,
    modcrop,
    quantize,
    read_image,
    rgb_to_y,
    rgb_to_ycbcr,
    upscale,
    ycbcr_to_rgb,
)
from deeper.image2image.metrics import ImageScore, psnr, ssim
from deeper.image2image.sources import ImageSource, PatchSource, parse_scales, with_scales
from deeper.models import create_model
from deeper.models.image2image.sr import pixel_shuffle_reference
from deeper.tasks import create_task, get_task_class
from deeper.train import TrainConfig, fit
from deeper.train.build import BuildContext

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_pixel_shuffle_matches_the_sub_pixel_rule_written_out():
    r, c, h, w = 3, 2, 4, 5
    x = torch.randn(2, c * r * r, h, w)
    expected = torch.empty(2, c, h * r, w * r)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                expected[:, ch, i::r, j::r] = x[:, ch * r * r + i * r + j]
    assert torch.equal(pixel_shuffle_reference(x, r), expected)
    assert torch.equal(torch.nn.PixelShuffle(r)(x), expected)
    espcn = create_model("espcn", in_chans=1, scale=3)
    assert espcn(torch.rand(1, 1, 7, 9)).shape == (1, 1, 21, 27)


def test_residual_networks_start_as_bicubic():
    from deeper.models.image2image.sr import upscale_bicubic

    x = torch.rand(2, 1, 9, 7)
    srresnet = create_model("srresnet", in_chans=1, scale=4, blocks=1, width=4, bn=False, residual=True)
    assert torch.equal(srresnet(x), upscale_bicubic(x, 4))
    bic = upscale_bicubic(x, 2)
    assert torch.equal(create_model("srcnn", in_chans=1, n1=4, n2=2, residual=True)(bic), bic)
    espcn = create_model("espcn", in_chans=1, scale=3, n1=4, n2=2, residual=True)
    assert torch.equal(espcn(x), upscale_bicubic(x, 3))
    plain = create_model("espcn", in_chans=1, scale=3, n1=4, n2=2)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in espcn.parameters())
    assert not torch.equal(plain(x), upscale_bicubic(x, 3))
    with pytest.raises(ConfigError, match="option residual must be true or false, got 'maybe'"):
        create_model("espcn", in_chans=1, scale=3, residual="maybe")


def test_psnr_and_ssim_of_identical_and_known_images():
    x = torch.rand(2, 1, 32, 32)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    y = (x + 0.1).clamp(max=10)  # MSE exactly 0.01: PSNR 20 dB
    assert torch.allclose(psnr(y, x), torch.full((2,), 20.0, dtype=torch.float64))
    noisy = x + 0.2 * torch.randn_like(x)
    assert float(ssim(noisy, x).max()) < 0.9
    m = ImageScore("psnr", "out", border=2)
    m.update({"out": y}, x)
    m.update({"out": y[:1]}, x[:1])
    assert float(m.compute()) == pytest.approx(20.0)


def test_luminance_is_matlabs_rgb2ycbcr_and_inverts():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert torch.allclose(rgb_to_y(white) * 255, torch.full((1, 1, 2, 2), 235.0))
    assert torch.allclose(rgb_to_y(black) * 255, torch.full((1, 1, 2, 2), 16.0))
    grey = torch.rand(1, 1, 4, 4)
    assert torch.allclose(rgb_to_y(grey), rgb_to_y(grey.expand(-1, 3, -1, -1)))
    x = torch.rand(2, 3, 5, 6)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)


def test_low_resolution_images_are_8_bit_and_the_scale_must_divide():
    hr = torch.rand(1, 1, 12, 12)
    lr = downscale(hr, 3)
    assert lr.shape == (1, 1, 4, 4) and torch.equal(lr, quantize(lr))
    assert upscale(lr, 3).shape == hr.shape
    with pytest.raises(ConfigError, match="scale 5 does not divide the image size 12x12"):
        downscale(hr, 5)
    assert modcrop(torch.zeros(1, 1, 13, 14), 4).shape == (1, 1, 12, 12)


def smooth(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.zeros(h, w)
    for _ in range(4):
        a, b, p = (torch.rand(3, generator=g) * torch.tensor([50.0, 50.0, 6.28])).tolist()
        img += torch.sin(a * xx + b * yy + p)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().to(torch.uint8)[None]


def test_patches_are_a_pure_function_of_seed_and_epoch_and_ranks_share_one_draw():
    photos = PhotoSet("t", [smooth(40, 50, 0), smooth(30, 30, 1), smooth(10, 10, 2)], ["a", "b", "c"])

    def batches(epoch, skip=0, **kw):
        src = PatchSource(photos, patch=16, batch_size=4, steps=3, seed=7, **kw)
        src.set_epoch(epoch, skip)
        return list(src)

    a, b = batches(1), batches(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and len(a) == 3 and a[0].shape == (4, 1, 16, 16)
    assert not torch.equal(batches(2)[0], a[0])
    assert all(torch.equal(x, y) for x, y in zip(batches(1, skip=1), a[1:]))
    src = PatchSource(photos, patch=16, batch_size=4, steps=3, seed=7)
    assert 2 not in src.draw(0)[0].tolist()  # the 10x10 image holds no 16x16 patch
    whole = PatchSource(photos, patch=16, batch_size=4, steps=3, seed=7, world_size=2).draw(0)
    r0 = PatchSource(photos, patch=16, batch_size=4, steps=3, seed=7, rank=0, world_size=2).draw(0)
    r1 = PatchSource(photos, patch=16, batch_size=4, steps=3, seed=7, rank=1, world_size=2).draw(0)
    assert torch.equal(r0[1], whole[1]) and not torch.equal(r0[1], r1[1])
    with pytest.raises(ConfigError, match="larger than every training image"):
        PatchSource(photos, patch=64, batch_size=4, steps=3)


def test_sources_give_batches_in_the_layout_asked_for():
    photos = PhotoSet(
        "t", [smooth(40, 50, 0).expand(3, -1, -1), smooth(30, 30, 1).expand(3, -1, -1)], ["a", "b"]
    )
    plain = PatchSource(photos, patch=16, batch_size=4, steps=2, seed=7, colour="rgb")
    cl = PatchSource(photos, patch=16, batch_size=4, steps=2, seed=7, colour="rgb", channels_last=True)
    for x, y in zip(plain, cl):
        assert (
            torch.equal(x, y) and x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
        )
        assert y.is_contiguous(memory_format=torch.channels_last)
    whole = next(iter(ImageSource(photos, colour="rgb", channels_last=True)))
    assert whole.is_contiguous(memory_format=torch.channels_last) and whole.shape == (1, 3, 40, 50)


def test_flat_patches_can_be_skipped_and_photographs_balanced():
    flat = torch.full((1, 200, 200), 90, dtype=torch.uint8)  # a large flat photograph: most positions
    photos = PhotoSet("t", [flat, smooth(40, 40, 1)], ["flat", "smooth"])
    by_area = PatchSource(photos, patch=16, batch_size=8, steps=4, seed=3)
    assert (by_area.draw(0)[0] == 0).float().mean() > 0.8
    balanced = PatchSource(photos, patch=16, batch_size=8, steps=4, seed=3, balance=True)
    assert 0.2 < (balanced.draw(0)[0] == 0).float().mean() < 0.8
    textured = PatchSource(photos, patch=16, batch_size=8, steps=4, seed=3, min_std=0.01)
    which, *_ = textured.draw(0)
    assert len(which) == 32 and (which == 1).all()
    assert all(torch.equal(a, b) for a, b in zip(textured.draw(0), textured.draw(0)))
    assert all(
        float(x.std((1, 2, 3)).min()) >= 0.01 * 0.8 for x in textured
    )  # (the luminance: a bit flatter)
    with pytest.raises(ConfigError, match="too few training patches"):
        PatchSource(PhotoSet("t", [flat], ["flat"]), patch=16, batch_size=8, steps=4, min_std=0.01).draw(0)


def test_scale_augmentation_adds_downscaled_copies_of_each_photograph():
    photos = PhotoSet("t", [smooth(40, 60, 1), smooth(30, 30, 2)], ["a", "b"])
    out = with_scales(photos, parse_scales("0.5, 0.8"))
    assert out.names == ["a", "b", "a@0.5", "a@0.8", "b@0.5", "b@0.8"]
    assert [tuple(im.shape) for im in out.images[2:]] == [(1, 20, 30), (1, 32, 48), (1, 15, 15), (1, 24, 24)]
    assert out.images[2].dtype == torch.uint8 and torch.equal(out.images[0], photos.images[0])
    # a smooth image keeps its mean brightness when shrunk
    assert abs(out.images[2].float().mean() - photos.images[0].float().mean()) < 2
    assert parse_scales("") == () and with_scales(photos, ()).names == ["a", "b"]
    for bad, match in (
        ("0.5,x", "numbers separated by commas"),
        ("1.5", "between 0 and 1"),
        ("0", "between"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_scales(bad)
    # the patch source draws from the copies too, in proportion to their positions
    which = PatchSource(out, patch=8, batch_size=64, steps=8, seed=0).draw(0)[0]
    assert set(which.tolist()) == set(range(6))


def test_evaluation_images_come_whole_cropped_to_the_scale():
    photos = PhotoSet("t", [smooth(41, 50, 0), smooth(41, 50, 1), smooth(30, 30, 2)], ["a", "b", "c"])
    src = ImageSource(photos, batch_size=8, colour="y", multiple=4)
    shapes = [tuple(b.shape) for b in src]
    assert shapes == [(2, 1, 40, 48), (1, 1, 28, 28)] and src.steps_per_epoch == 2


@pytest.mark.slow
def test_srcnn_on_a_bicubic_input_of_a_smooth_image_gains_over_bicubic():
    torch.manual_seed(0)
    net = create_model("srcnn", in_chans=1, n1=32, n2=8, residual=True)
    smooth_photos = PhotoSet("s", [smooth(96, 96, 1), smooth(96, 96, 2), smooth(96, 96, 3)], ["a", "b", "c"])
    train = PatchSource(smooth_photos, patch=24, batch_size=16, steps=150, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for hr in train:
        loss = torch.nn.functional.mse_loss(net(upscale(downscale(hr, 2), 2)), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    hr = rgb_to_y(smooth(64, 64, 9)[None].float() / 255)
    bic = upscale(downscale(hr, 2), 2)
    with torch.no_grad():
        out = quantize(net(bic))
    crop = (..., slice(2, -2), slice(2, -2))
    assert float(psnr(out[crop], hr[crop])) > float(psnr(quantize(bic)[crop], hr[crop])) + 1.0


def test_scales_and_patches_are_checked():
    with pytest.raises(ConfigError, match="scale"):
        create_model("espcn", scale=5)
    with pytest.raises(ConfigError, match="must be one of 2, 3, 4, 8"):
        create_task("superres", {"scale": 5})
    with pytest.raises(ConfigError, match="patch 33 is not a multiple of scale 2"):
        fit(
            TrainConfig(
                task="superres", model="srcnn", data="photos", task_args={"patch": 33}, epochs=1, **QUIET
            )
        )
    with pytest.raises(ConfigError, match="holds scenes; task 'superres' trains on photos or images"):
        fit(TrainConfig(task="superres", model="srcnn", data="scenes-seg", epochs=1, **QUIET))
    with pytest.raises(ConfigError, match="task 'superres' does not take --mixup"):
        fit(TrainConfig(task="superres", model="espcn", data="photos", mixup=0.2, epochs=1, **QUIET))
    with pytest.raises(ConfigError, match="not a super-resolution network"):
        fit(TrainConfig(task="superres", model="restore-unet", data="photos", epochs=1, **QUIET))
    assert get_task_class("superres").takes_data("photos") and not get_task_class("superres").takes_data(
        "scenes"
    )


def test_the_loss_border_leaves_the_patch_edges_out_of_the_loss(tmp_path):
    hr = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    out = hr.clone()
    out[..., :3, :] = 0  # wrong along the top edge only (3 pixels)
    losses = {}
    for border in (0, 3):
        task = create_task("superres", {"scale": 2, "loss_border": border})
        task.forward = lambda net, x: (out, x)
        losses[border] = float(task.loss({"net": None}, hr).loss)
    assert losses[0] > 0.01 and losses[3] == 0.0
    settings = dict(get_task_class("superres").dry_run)  # 16-pixel patches
    settings["task_args"] = {**settings["task_args"], "loss_border": 8}
    with pytest.raises(ConfigError, match="loss_border 8 leaves nothing of the 16-pixel training patches"):
        fit(TrainConfig(task="superres", **settings, **QUIET, out=str(tmp_path / "r")))
    with pytest.raises(ConfigError, match="task 'srgan' does not take option.s. loss_border"):
        create_task("srgan", {"loss_border": 2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A tiny ESPCN x2 trained a few steps on the photographs (the task's dry-run settings)."""
    settings = dict(get_task_class("superres").dry_run)
    out = tmp_path_factory.mktemp("sr") / "run"
    return fit(TrainConfig(task="superres", **settings, **QUIET, out=str(out)))


def test_a_superres_run_reports_psnr_ssim_and_the_bicubic_baseline(trained):
    for key in (
        "test_psnr",
        "test_ssim",
        "test_bicubic_psnr",
        "test_bicubic_ssim",
        "bicubic_psnr",
        "gain_db",
    ):
        assert isinstance(trained[key], float) and math.isfinite(trained[key]), key
    assert trained["gain_db"] == pytest.approx(trained["test_psnr"] - trained["bicubic_psnr"])
    assert 15 < trained["bicubic_psnr"] < 50


def test_a_channels_last_run_learns_what_the_plain_layout_learns(trained, tmp_path):
    """The superres task follows --channels-last (on by default on the CPU): same steps, same scores."""
    settings = dict(get_task_class("superres").dry_run)
    plain = fit(
        TrainConfig(task="superres", **settings, **QUIET, channels_last=False, out=str(tmp_path / "p"))
    )
    cl = fit(TrainConfig(task="superres", **settings, **QUIET, channels_last=True, out=str(tmp_path / "c")))
    assert cl["test_psnr"] == pytest.approx(plain["test_psnr"], abs=1e-3)
    assert cl["test_bicubic_psnr"] == plain["test_bicubic_psnr"]
    task = create_task("superres", settings["task_args"])
    for flag in (True, False):
        cfg = TrainConfig(task="superres", **settings, **QUIET, channels_last=flag, out=str(tmp_path / "b"))
        built = task.build(BuildContext(cfg.resolved(), torch.device("cpu")))
        w = built.parts.modules["net"].body[2].weight  # (one channel in: both layouts at once for body[0])
        assert w.is_contiguous(memory_format=torch.channels_last) == flag
        assert built.train.layout == (torch.channels_last if flag else torch.contiguous_format)


def test_predict_writes_the_upscaled_images(trained, tmp_path, capsys):
    from deeper.cli import main

    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    code = main(["predict", "--weights", trained["run_dir"], str(tmp_path / "a.png"), str(tmp_path / "g.png"),
                 "-o", str(tmp_path / "out"), "--json"])  # fmt: skip
    assert code == 0
    answers = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert [set(a) >= {"image", "output", "scale"} for a in answers] == [True, True]
    assert (
        Image.open(answers[0]["output"]).size == (60, 40) and Image.open(answers[0]["output"]).mode == "RGB"
    )
    assert Image.open(answers[1]["output"]).mode == "L" and answers[1]["scale"] == 2


def test_bad_images_are_one_line_errors(trained, tmp_path, capsys):
    from deeper.cli import main

    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for name, message in (
        ("tiny.png", "too small"),
        ("junk.png", "not a readable image"),
        ("none.png", "not found"),
    ):
        assert (
            main(["predict", "--weights", trained["run_dir"], str(tmp_path / name), "-o", str(tmp_path)]) != 0
        )
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="a grey image; these weights read colour"):
        read_image(tmp_path / "grey.png", channels=3)


def test_srgan_weights_upscale_through_predict(tmp_path, capsys):
    from deeper.cli import main

    r = fit(TrainConfig(task="srgan", **get_task_class("srgan").dry_run, **QUIET, out=str(tmp_path / "g")))
    assert {"test_psnr", "test_ssim", "bicubic_psnr"} <= set(r)
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert (
        main(
            [
                "predict",
                "--weights",
                r["run_dir"],
                str(tmp_path / "a.png"),
                "-o",
                str(tmp_path / "o"),
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert answer["scale"] == 4 and Image.open(answer["output"]).size == (120, 80)
