"""Style transfer: Gram matrices, the losses, random feature networks, the image as a part optimised
by L-BFGS through the engine, deeper stylize, and the fast network's predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.errors import ConfigError
from deeper.image2image.style import StyleLoss, gram
from deeper.models.image2image.style import random_features
from deeper.tasks import get_task_class
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_gram_matrix_of_a_hand_case():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C = 2 channels, H W = 2 positions
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 1 * 2)
    assert torch.allclose(gram(f)[0], expected)


def test_an_image_has_zero_style_and_content_loss_against_itself_and_more_against_another():
    net = random_features(seed=0, width=4)
    x, other = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    loss = StyleLoss(net, x)
    content, style = loss(x, loss.content_features(x))
    assert float(content) == 0.0 and float(style) == 0.0
    content, style = loss(other, loss.content_features(x))
    assert float(content) > 0 and float(style) > 0


def test_random_feature_networks_are_seeded_and_leave_the_global_generator_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    a, b, c = (
        random_features(seed=0, width=4),
        random_features(seed=0, width=4),
        random_features(seed=1, width=4),
    )
    assert torch.equal(torch.get_rng_state(), before)
    wa, wb, wc = (next(n.parameters()) for n in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc) and not wa.requires_grad
    with pytest.raises(ValueError, match="no layer"):
        a.features(torch.rand(1, 3, 16, 16), ("relu9_1",))


def test_the_image_is_a_part_that_l_bfgs_optimises_through_the_engine(tmp_path):
    settings = dict(get_task_class("style").dry_run)
    r = fit(TrainConfig(task="style", **settings, **QUIET, out=str(tmp_path / "s")))
    lines = (tmp_path / "s" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    val = [float(row.split(",")[header.index("val_loss")]) for row in lines[1:]]
    assert val[-1] < val[0]
    assert 0 < r["test_heldout_style"] < 1 and r["heldout_style_drop"] == pytest.approx(
        1 / r["test_heldout_style"]
    )
    assert Image.open(r["output"]).size == (32, 25)  # coins (384x303) at 32 px


def test_stylize_writes_the_image_and_reports_the_held_out_loss(tmp_path, capsys):
    from deeper.cli import main

    rgb = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    out = tmp_path / "o" / "out.png"
    code = main(["stylize", "--content", str(tmp_path / "c.png"), "--style", "brick", "-o", str(out),
                 "--steps", "3", "--size", "32", "--solver", "adam", "--json"])  # fmt: skip
    assert code == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Image.open(out).size == (32, 24) and r["steps"] == 3
    assert {"heldout_style_drop", "content_ssim", "seconds"} <= set(r)
    assert main(["stylize", "--content", str(tmp_path / "none.png"), "--style", "brick", "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert "image not found" in err and len(err.splitlines()) == 1


def test_the_fast_network_stylises_files_of_any_size(tmp_path, capsys):
    from deeper.cli import main

    settings = dict(get_task_class("style-fast").dry_run)
    r = fit(TrainConfig(task="style-fast", **settings, **QUIET, out=str(tmp_path / "f")))
    for key in ("test_style", "test_heldout_style", "test_content_ssim"):
        assert key in r
    Image.fromarray((np.random.default_rng(1).random((21, 35)) * 255).astype(np.uint8)).save(
        tmp_path / "g.png"
    )
    assert (
        main(
            [
                "predict",
                "--weights",
                r["run_dir"],
                str(tmp_path / "g.png"),
                "-o",
                str(tmp_path / "o"),
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert Image.open(answer["output"]).size == (35, 21) and Image.open(answer["output"]).mode == "RGB"


def test_style_runs_refuse_a_missing_image_and_predict(tmp_path):
    with pytest.raises(ConfigError, match="give the content image"):
        fit(
            TrainConfig(
                task="style", task_args={"style": "brick"}, epochs=1, **QUIET, out=str(tmp_path / "x")
            )
        )
    with pytest.raises(ConfigError, match="weights are its one image"):
        get_task_class("style")().load_model(tmp_path / "any.safetensors")
