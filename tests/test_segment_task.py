"""The segment task: its metrics against hand-computed confusion matrices, its batches, a short real
training, predict on images of any size, the run's figures and one-line errors for bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deeper.cli import main
from deeper.errors import ConfigError
from deeper.tasks.segment import ConfusionScore, MaskLoader, load_split, segmentation_scores
from deeper.train import TrainConfig, fit

QUIET = dict(tensorboard=False, progress=False, device="cpu")
TINY = dict(
    task="segment", data="scenes-seg", model="unet", model_kwargs={"width": 4, "depth": 2}, subset=48,
    batch_size=16, epochs=2, task_args={"source": "digits", "val_scenes": 16, "test_scenes": 24}, **QUIET,
)  # fmt: skip


# ----------------------------------------------------------------------------- metrics


def test_scores_of_a_hand_computed_confusion_matrix():
    # rows: truth, columns: prediction; class 0 is the background
    m = torch.tensor([[50, 2, 3], [4, 10, 1], [0, 2, 8]])
    iou = [50 / (55 + 54 - 50), 10 / (15 + 14 - 10), 8 / (10 + 12 - 8)]
    s = segmentation_scores(m)
    assert s["iou"].tolist() == pytest.approx(iou)
    assert float(s["miou"]) == pytest.approx(sum(iou) / 3)
    assert float(s["miou_digits"]) == pytest.approx((iou[1] + iou[2]) / 2)  # background's pixels still count
    assert float(s["pixel_accuracy"]) == pytest.approx(68 / 80)


def test_a_class_absent_from_truth_and_predictions_is_left_out_of_the_means():
    m = torch.tensor([[6, 0, 1], [0, 0, 0], [1, 0, 2]])
    s = segmentation_scores(m)
    assert torch.isnan(s["iou"][1])
    assert float(s["miou"]) == pytest.approx((6 / 8 + 2 / 4) / 2)
    assert float(s["miou_digits"]) == pytest.approx(2 / 4)


def test_the_metric_adds_every_pixel_of_every_batch_and_agrees_with_torchmetrics():
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    k = 5
    target = torch.randint(0, k, (7, 9, 11), generator=g)
    preds = torch.where(
        torch.rand(target.shape, generator=g) < 0.6, target, torch.randint(0, k, target.shape, generator=g)
    )
    metrics = {name: ConfusionScore(k, name) for name in ("matrix", "miou", "miou_digits", "pixel_accuracy")}
    for i in range(0, 7, 3):  # uneven batches
        for m in metrics.values():
            m.update(preds[i : i + 3], target[i : i + 3])
    matrix = metrics["matrix"].compute()
    assert int(matrix.sum()) == target.numel()
    for t in range(k):
        for p in range(k):
            assert int(matrix[t, p]) == int(((target == t) & (preds == p)).sum())
    jaccard = MulticlassJaccardIndex(k, average="none")(preds, target)
    assert float(metrics["miou"].compute()) == pytest.approx(float(MulticlassJaccardIndex(k)(preds, target)))
    assert float(metrics["miou_digits"].compute()) == pytest.approx(float(jaccard[1:].mean()))
    assert float(metrics["pixel_accuracy"].compute()) == pytest.approx(
        float(MulticlassAccuracy(k, average="micro")(preds, target))
    )
    # not torchmetrics' ignore_index=0, which would drop the digits' false positives on the background
    ignoring = MulticlassJaccardIndex(k, average="none", ignore_index=0)(preds, target)[1:].mean()
    assert float(metrics["miou_digits"].compute()) < float(ignoring)


# ----------------------------------------------------------------------------- data


def test_batches_are_images_and_class_masks_in_the_loader_order():
    ds = load_split("scenes-seg", "train", 40, source="digits")
    loader = MaskLoader(ds, 16, shuffle=True, seed=3)
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [16, 16, 8] and loader.steps_per_epoch == 3
    order = loader.order(0).tolist()
    x, y = batches[0]
    assert (
        x.dtype == torch.float32 and x.shape == (16, 1, 64, 84) and 0 <= float(x.min()) <= float(x.max()) <= 1
    )
    assert y.dtype == torch.int64 and y.shape == (16, 64, 84)
    assert torch.equal(y, ds.class_masks[order[:16]].long())
    assert torch.equal((x * 255).round().to(torch.uint8), ds.images[order[:16]])
    assert int(y.max()) <= 10 and ((y > 0) == (x[:, 0] > 0)).all()  # the mask covers exactly the ink


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """A few steps of a narrow U-Net on scenes of scikit-learn's digits (offline), with the run's figures."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPER_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("DEEPER_OFFLINE", "1")
        mp.delenv("DEEPER_DATA", raising=False)
        out = tmp_path_factory.mktemp("run") / "unet"
        torch.manual_seed(0)
        return fit(TrainConfig(**{**TINY, "task_args": {**TINY["task_args"], "preview": 4}}, out=str(out)))


def test_a_run_reports_the_segmentation_metrics_and_draws_its_figures(tiny_run):
    r = tiny_run
    assert r["primary_metric"] == "miou" and r["task"] == "segment"
    for key in ("test_miou", "test_miou_digits", "test_pixel_accuracy", "val_miou"):
        assert 0 <= r[key] <= 1, key
    matrix = torch.tensor(r["test"]["confusion_matrix"])
    assert matrix.shape == (11, 11) and int(matrix.sum()) == 24 * 64 * 84
    scores = segmentation_scores(matrix)
    assert r["test_miou"] == pytest.approx(float(scores["miou"]))
    per_class = r["test_iou_per_class"]
    assert list(per_class)[:2] == ["background", "0"] and len(per_class) == 11
    present = [v for v in per_class.values() if v is not None]
    assert r["test_miou"] == pytest.approx(sum(present) / len(present))
    run_dir = Path(r["run_dir"])
    for name in ("segmentation.png", "iou_per_class.png", "curves.png", "model.safetensors"):
        assert (run_dir / name).stat().st_size > 1000, name
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_pixel_accuracy", "val_miou", "val_miou_digits"} <= set(header)
    assert not any("confusion" in h for h in header)


@pytest.mark.slow
def test_a_short_training_beats_the_all_background_answer(tmp_path):
    """40 seconds of U-Net training: the loss falls far below a uniform guess (log 11) and the mIoU beats
    the trivial all-background answer (which scores 0 on every digit).  (High mIoU takes minutes more:
    benchmarks/segmentation.py measures the models.)"""
    r = fit(TrainConfig(
        task="segment", data="scenes-seg", model="unet", model_kwargs={"width": 8, "depth": 3}, subset=300,
        batch_size=16, epochs=16, optimizer="adamw", lr=0.003, label_smoothing=0.0,
        task_args={"source": "digits", "val_scenes": 50, "test_scenes": 100, "figures": False},
        out=str(tmp_path / "u"), **QUIET,
    ))  # fmt: skip
    matrix = torch.tensor(r["test"]["confusion_matrix"], dtype=torch.float64)
    background = float(matrix[0].sum() / matrix.sum())  # the share of background pixels
    assert 0.7 < background < 0.99
    assert r["test_loss"] < 0.5 * math.log(11), r["test_loss"]
    assert r["test_pixel_accuracy"] > background - 0.02, (r["test_pixel_accuracy"], background)
    # the trivial all-background answer scores IoU `background` on the background and 0 on every digit
    assert r["test_miou"] > background / 11 + 0.03, (r["test_miou"], background / 11)
    assert r["test_miou_digits"] > 0.03, r["test_miou_digits"]


def test_median_frequency_weights_of_a_hand_case():
    from deeper.tasks.segment import median_frequency_weights

    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [2, 2]]])
    # freq: class 0 5 of 8 pixels (both images hold it), 1 1 of 4, 2 2 of 4; median 0.5; class 3 absent
    assert median_frequency_weights(masks, 4).tolist() == pytest.approx([0.8, 2.0, 1.0, 1.0])


def test_median_frequency_balancing_weighs_the_rare_digits_in_the_training_loss(tmp_path):
    from deeper.tasks.segment import SegmentationTask

    plain, balanced = SegmentationTask(), SegmentationTask(class_weights="median-frequency")
    x = torch.zeros(1, 1, 2, 2)
    y = torch.tensor([[[0, 0], [0, 3]]])

    def background(images):  # every pixel's scores favour the background
        return torch.tensor([3.0, 0.0, 0.0, 0.0])[None, :, None, None].expand(len(images), 4, 2, 2)

    balanced.class_weights = torch.tensor([0.5, 1.0, 1.0, 4.0])
    nets = {"net": background}
    assert balanced.loss(nets, (x, y)).loss > plain.loss(nets, (x, y)).loss  # the missed digit weighs more
    assert balanced.evaluation_step(nets, (x, y)).loss == pytest.approx(
        plain.evaluation_step(nets, (x, y)).loss
    )
    with pytest.raises(ConfigError, match="class_weights must be one of none, median-frequency"):
        fit(
            TrainConfig(
                **{**TINY, "task_args": {**TINY["task_args"], "class_weights": "inverse"}}, out=str(tmp_path)
            )
        )


def test_the_prior_bias_starts_the_network_at_the_class_shares():
    from deeper.models import create_model
    from deeper.tasks.segment import prior_bias_

    masks = torch.zeros(2, 10, 10, dtype=torch.uint8)
    masks[0, :2, :5] = 3  # 10 of 200 pixels; class 7 has 5; classes absent count as one pixel
    masks[1, 0, :5] = 7
    for name in ("segnet-basic", "unet", "deeplabv3"):
        net = create_model(name, num_classes=11, in_chans=1)
        bias = prior_bias_(net, masks, 11)
        share = torch.full((11,), 1.0)
        share[0], share[3], share[7] = 185, 10, 5
        assert bias.tolist() == pytest.approx((share / share.sum()).log().tolist(), rel=1e-5)
        net.eval()
        with torch.no_grad():
            probs = net(torch.rand(2, 1, 64, 84, generator=torch.Generator().manual_seed(0))).softmax(1)
        assert probs.mean((0, 2, 3)).tolist() == pytest.approx((share / share.sum()).tolist(), abs=0.02), name
        assert float(net.score.weight.detach().std()) < 0.02


def test_training_with_the_prior_bias_starts_from_the_training_masks_and_fcn_is_refused(tmp_path):
    from safetensors.torch import load_file

    from deeper.models import create_model
    from deeper.tasks.segment import classifier_of

    r = fit(TrainConfig(**{**TINY, "epochs": 1, "lr": 1e-9,
                           "task_args": {**TINY["task_args"], "prior_bias": True, "figures": False}},
                        out=str(tmp_path / "p")))  # fmt: skip
    masks = load_split("scenes-seg", "train", 48, source="digits").class_masks
    counts = torch.bincount(masks.reshape(-1).long(), minlength=11).double().clamp(min=1)
    weights = load_file(Path(r["run_dir"]) / "model.safetensors")
    bias = next(v for k, v in weights.items() if k.endswith("score.bias"))
    assert bias.tolist() == pytest.approx((counts / counts.sum()).log().tolist(), abs=1e-4)
    with pytest.raises(ConfigError, match="prior_bias needs a network that ends in one convolution"):
        classifier_of(create_model("fcn8s", num_classes=11), 11)
    with pytest.raises(ConfigError, match="prior_bias needs"):
        fit(TrainConfig(**{**TINY, "model": "fcn8s", "model_kwargs": {},
                           "task_args": {**TINY["task_args"], "prior_bias": True}}, out=str(tmp_path / "f")))  # fmt: skip


def test_models_and_data_of_another_kind_and_classification_options_are_refused(tmp_path):
    for options, message in [
        ({"model": "lenet5"}, "'lenet5' is a classify model; task 'segment' takes segment models"),
        ({"data": "mnist"}, "holds images; task 'segment' trains on scenes"),
        ({"mixup": 0.2}, "does not take --mixup"),
        ({"model_kwargs": {"width": 4, "depht": 2}}, "does not take option.*depht"),
    ]:
        with pytest.raises(ConfigError, match=message):
            fit(TrainConfig(**{**TINY, **options}, out=str(tmp_path / "x")))


# ----------------------------------------------------------------------------- predict


def _scene_png(path: Path, *, size=(50, 130), invert=False, colour=False) -> np.ndarray:
    ds = load_split("scenes-seg", "test", 2, source="digits")
    canvas = np.zeros(size, np.uint8)
    h, w = min(size[0], 64), min(size[1], 84)
    canvas[:h, :w] = ds.images[1, 0, :h, :w].numpy()
    img = 255 - canvas if invert else canvas
    if colour:
        rgb = np.stack([img, img // 2, img], -1)
        Image.fromarray(rgb).save(path)
    else:
        Image.fromarray(img).save(path)
    return canvas


def _predict(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["predict", *args, "--json"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, (json.loads(lines[-1]) if code == 0 else None), captured.err


def test_predict_writes_a_mask_and_an_overlay_for_an_image_of_another_size(tiny_run, tmp_path, capsys):
    img = tmp_path / "scene.png"
    _scene_png(img, size=(50, 130))
    dark = tmp_path / "dark-on-light.png"
    _scene_png(dark, size=(70, 70), invert=True)
    code, r, _ = _predict(
        capsys, "--weights", tiny_run["run_dir"], str(img), str(dark), "-o", str(tmp_path / "out")
    )
    assert code == 0 and r["task"] == "segment"
    first, second = r["predictions"]
    assert first["size"] == [50, 130] and sum(first["classes"].values()) == 50 * 130
    assert "inverted" not in first and second["inverted"] is True and second["size"] == [70, 70]
    mask = Image.open(first["mask"])
    assert mask.mode == "P" and mask.size == (130, 50)
    values = np.asarray(mask)
    names = ["background"] + [str(d) for d in range(10)]
    counts = {names[c]: int(n) for c, n in enumerate(np.bincount(values.reshape(-1), minlength=11)) if n}
    assert counts == first["classes"]
    overlay = Image.open(first["overlay"])
    assert overlay.mode == "RGB" and overlay.size == (130, 50)
    # the answer is the model's own: the same image through the network gives the same mask
    from deeper.inference import predict_files

    again, task = predict_files(tiny_run["run_dir"], [str(img)], device="cpu")
    assert task.name == "segment" and again[0]["classes"] == first["classes"] and again[0]["mask"] is None


def test_predict_refuses_colour_and_empty_images_in_one_line(tiny_run, tmp_path, capsys):
    colour = tmp_path / "colour.png"
    _scene_png(colour, colour=True)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path, message in [
        (colour, "a colour image; the model reads grey images"),
        (empty, "not a readable image"),
    ]:
        code, _, err = _predict(capsys, "--weights", tiny_run["run_dir"], str(path))
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- segment-preview


def test_segment_preview_draws_each_model_beside_the_truth(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEEPER_DATA", raising=False)  # the run's scenes are scikit-learn's digits: offline
    run = tiny_run["run_dir"]
    out, bars = tmp_path / "p.png", tmp_path / "iou.png"
    args = ["segment-preview", "--weights", run, "--weights", run, "--n", "3", "--eval", "24"]
    assert main([*args, "-o", str(out), "--iou", str(bars), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.stat().st_size > 1000 and bars.stat().st_size > 1000
    assert list(r["models"]) == ["unet", "unet #2"] and r["scenes_scored"] == 24
    # scored on the first 24 test scenes: the run's own test split
    assert r["models"]["unet"]["miou"] == pytest.approx(tiny_run["test_miou"])
    # the same model in two run folders: told apart by the folders' names
    other = tmp_path / "unet-again"
    shutil.copytree(run, other)
    assert main([*args[:3], "--weights", str(other), "--n", "1", "--eval", "4", "-o", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(r["models"]) == [Path(run).name, "unet-again"]


def test_segment_preview_refuses_weights_of_another_task_in_one_line(tmp_path, capsys):
    from deeper.models import create_model, save_weights

    path = tmp_path / "lenet.safetensors"
    save_weights(create_model("lenet5"), path, {"model": "lenet5", "task": "classify"})
    assert main(["segment-preview", "--weights", str(path), "-o", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert "holds weights of task 'classify', not segment" in err and len(err.strip().splitlines()) == 1
