"""The geometric self-ensemble: the eight symmetries and their inverses, the mean of the outputs turned back,
and the superres and restore tasks scoring it on the test split beside the single pass."""

from __future__ import annotations

import pytest
import torch

from deeper.errors import ConfigError
from deeper.image2image.ensemble import SIZES, TRANSFORMS, apply, dihedral_mean, undo
from deeper.tasks import create_task, get_task_class
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")


def test_the_eight_symmetries_are_distinct_and_each_is_undone():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)  # not square, no symmetry of its own
    seen = set()
    for turns, mirror in TRANSFORMS:
        y = apply(x, turns, mirror)
        assert torch.equal(undo(y, turns, mirror), x)
        seen.add((tuple(y.shape), tuple(y.flatten().tolist())))
    assert len(seen) == 8
    assert all(apply(x, t, m).shape == x.shape for t, m in TRANSFORMS[:4])  # 1, 2, 4 keep height and width


def test_a_pointwise_network_is_its_own_ensemble():
    x = torch.rand(2, 1, 5, 7)
    for n in SIZES:
        assert torch.allclose(dihedral_mean(lambda t: t.square() + 1, x, n=n), x.square() + 1)


def test_the_ensemble_of_a_convolution_is_the_convolution_with_its_kernel_averaged_over_the_symmetries():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    x = torch.rand(1, 1, 6, 9)
    with torch.no_grad():
        mirrored = (conv(x) + conv(x.flip(-1)).flip(-1)) / 2
        assert torch.allclose(dihedral_mean(conv, x, n=2), mirrored, atol=1e-6)
        k = conv.weight
        symmetric = torch.stack([apply(k, t, m) for t, m in TRANSFORMS]).mean(0)  # the group's average kernel
        expected = torch.nn.functional.conv2d(x, symmetric, padding=1)
        got = dihedral_mean(conv, x, n=8)
        assert torch.allclose(got, expected, atol=1e-6)
        assert not torch.allclose(got, conv(x), atol=1e-3)


def test_absent_inputs_pass_through_and_other_sizes_are_refused():
    seen = []

    def net(x, mask):
        seen.append(mask)
        return x

    x = torch.rand(1, 3, 4, 6)
    assert torch.equal(dihedral_mean(net, x, None, n=4), x) and seen == [None] * 4
    with pytest.raises(ValueError, match="1, 2, 4 or 8 symmetries, not 3"):
        dihedral_mean(net, x, None, n=3)
    with pytest.raises(ConfigError, match="self_ensemble must be one of 1, 2, 4, 8"):
        create_task("superres", {"self_ensemble": 3})
    with pytest.raises(ConfigError, match="self_ensemble must be one of 1, 2, 4, 8"):
        create_task("restore", {"self_ensemble": 5})


#: the restore dry run's few steps leave its U-Net the identity it starts as (and so symmetric): train it longer
LONGER = {"restore": {"lr": 0.01, "task_args": {"patches": 64}}}


def _runs(task: str, tmp_path) -> tuple[dict, dict]:
    """The task's dry run trained twice from one seed: without and with the 8-fold self-ensemble."""
    settings = dict(get_task_class(task).dry_run)
    more = LONGER.get(task, {})
    settings.update(lr=more.get("lr", settings["lr"]))
    settings["task_args"] = {**settings["task_args"], **more.get("task_args", {})}
    plain = fit(TrainConfig(task=task, **settings, **QUIET, out=str(tmp_path / "plain")))
    settings["task_args"] = {**settings["task_args"], "self_ensemble": 8}
    ens = fit(TrainConfig(task=task, **settings, **QUIET, out=str(tmp_path / "ens")))
    return plain, ens


@pytest.mark.parametrize("task", ["superres", "restore"])  # restore's dry run inpaints: the mask turns too
def test_the_test_split_scores_the_ensemble_beside_the_single_pass(task, tmp_path):
    plain, ens = _runs(task, tmp_path)
    t = ens["test"]
    assert t["single_psnr"] == pytest.approx(plain["test_psnr"], abs=1e-3)  # the same network, one pass
    assert abs(t["psnr"] - t["single_psnr"]) > 1e-4  # the ensemble is another image
    base = ens["bicubic_psnr"] if task == "superres" else ens["baseline_psnr"]
    assert ens["single_gain_db"] == pytest.approx(t["single_psnr"] - base)
    assert ens["gain_db"] == pytest.approx(t["psnr"] - base)
    assert "single_psnr" not in plain["test"]
    header = (tmp_path / "ens" / "metrics.csv").read_text().splitlines()[0]
    # validation: one pass, as training sees it
    assert "val_psnr" in header and "val_single_psnr" not in header


def test_predict_upscales_with_the_ensemble_the_weights_were_scored_with(tmp_path):
    from PIL import Image

    from deeper.image2image.images import read_image
    from deeper.image2image.superres import upscale_colour
    from deeper.inference import predict_files

    _, ens = _runs("superres", tmp_path)
    rgb = (torch.rand(14, 22, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    answers, task = predict_files(
        ens["weights"], [str(tmp_path / "a.png")], device="cpu", out_dir=tmp_path / "o"
    )
    net, _ = task.load_model(ens["weights"])
    lr = read_image(tmp_path / "a.png")
    written = read_image(answers[0]["output"])
    with torch.no_grad():
        eight = upscale_colour(net.eval(), lr, 2, upsampled_input=False, ensemble=8)
        one = upscale_colour(net, lr, 2, upsampled_input=False)
    assert torch.allclose(written, eight, atol=1 / 255 + 1e-6)
    assert not torch.allclose(written, one, atol=1e-6)
