"""The accuracy toolkit's commands: help, one-line errors, --json, and the new `deeper train` options."""

import pytest
import torch
from PIL import Image

from deeper.cli import main
from deeper.models import create_model, save_weights
from tests.helpers import last_json, run


def test_train_help_lists_the_accuracy_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--optimizer-arg", "--schedule-arg", "--warmup", "--augment", "--mixup", "--cutmix",
                 "--input-noise", "--weight-noise", "--clip-grad", "--early-stop", "--restore-best",
                 "--dropout", "--norm", "--ensemble", "--bootstrap"):  # fmt: skip
        assert flag in out, flag


@pytest.mark.parametrize(
    "argv, message",
    [
        (["optimizers", "plot"], "plot needs -o"),
        (["optimizers", "plot", "-o", "x.jpg"], "must be a .png"),
        (["optimizers", "list", "--optimizers", "adamm"], "did you mean adam"),
        (["augment-preview", "--data", "digits", "-o", "a.png", "--augment", "spin=3"], "unknown op 'spin'"),
        (["augment-preview", "--data", "nope", "-o", "a.png", "--augment", "flip=1"], "unknown dataset"),
        (
            ["augment-preview", "--data", "digits", "-o", "a.png", "--width-norm", "10,wide"],
            "comma-separated",
        ),
        (["augment-preview", "--data", "digits", "-o", "a.png", "--width-norm", "0"], "positive widths"),
        (
            ["augment-preview", "--data", "digits", "-o", "a.png", "--width-norm", "12", "--copies", "3"],
            "combine",
        ),
        (["ensemble", "--runs", "no/such/run"], "no such run"),
        (["cv", "--data", "digits", "--grid", "speed=1,2"], "not a training option"),
        (["train", "--data", "digits", "--augment", "default,wobble=2"], "unknown op 'wobble'"),
        (
            ["train", "--data", "digits", "--optimizer", "adadelta", "--optimizer-arg", "beta1=0.9"],
            "its options",
        ),
        (["train", "--data", "digits", "--schedule", "step", "--schedule-arg", "gama=0.1"], "its options"),
        (
            ["train", "--data", "digits", "--early-stop", "2", "--val-size", "0", "--epochs", "1"],
            "validation split",
        ),
    ],
)
def test_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 1, err
    assert err.startswith(f"deeper {argv[0]}: error:") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_optimizers_list_json(capsys):
    code, out, _ = run(capsys, "optimizers", "list", "--json")
    assert code == 0
    r = last_json(out)
    assert r["optimizers"]["adadelta"]["options"] == {"rho": 0.9, "eps": 1e-6}
    assert "plateau" in r["schedules"] and "every" in r["schedules"]["step"]["options"]


@pytest.mark.slow
def test_optimizers_plot_writes_both_pngs(capsys, tmp_path):
    traj, loss = tmp_path / "t.png", tmp_path / "l.png"
    code, out, err = run(
        capsys, "optimizers", "plot", "-o", str(traj), "--loss-curves", str(loss), "--data", "digits",
        "--train-steps", "15", "--steps", "10", "--json",
    )  # fmt: skip
    assert code == 0, err
    r = last_json(out)
    assert set(r["trajectories"]) == {"book", "rosenbrock"} and len(r["trajectories"]["book"]) == 8
    assert r["trajectories"]["book"]["sgd"]["steps"] == 10
    assert set(r["loss_curves"]["optimizers"]) == set(r["trajectories"]["book"])
    for png in (traj, loss):
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_optimizer_trajectories_approach_the_minimum():
    from deeper.analysis.accuracy_plots import FUNCTIONS, trajectory

    tf = FUNCTIONS["book"]
    start = tf.fn(torch.tensor(tf.start[0]), torch.tensor(tf.start[1])).item()
    for name, lr in tf.lrs.items():
        pts = trajectory(name, tf.fn, tf.start, tf.steps, lr)
        assert pts.shape == (tf.steps + 1, 2) and tuple(pts[0]) == tf.start
        assert tf.fn(torch.tensor(pts[-1, 0]), torch.tensor(pts[-1, 1])).item() < start, name


def test_augment_preview_is_seeded(capsys, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path in (a, b):
        code, out, err = run(capsys, "augment-preview", "--data", "digits", "-o", str(path), "--images", "3",
                             "--copies", "4", "--seed", "1", "--json")  # fmt: skip
        assert code == 0, err
    r = last_json(out)
    assert r["augment"]["rotate"] == 10.0 and r["images"] == 3 and r["copies"] == 4
    assert a.read_bytes() == b.read_bytes()
    with Image.open(a) as im:
        assert im.format == "PNG"


def test_augment_preview_shows_width_normalisation(capsys, tmp_path):
    path = tmp_path / "w.png"
    code, out, err = run(capsys, "augment-preview", "--data", "digits", "-o", str(path), "--images", "2",
                         "--width-norm", "10,20", "--json")  # fmt: skip
    assert code == 0, err
    r = last_json(out)
    assert r["width_norm"] == [10.0, 20.0] and r["copies"] == 2 and r["augment"] is None
    with Image.open(path) as im:
        assert im.format == "PNG"


def weights(path, seed):
    torch.manual_seed(seed)
    meta = {"model": "deep-convnet", "num_classes": 10, "in_chans": 1, "img_size": 28, "dataset": "digits"}
    save_weights(create_model("deep-convnet"), path, meta)
    return path


def test_ensemble_command_json(capsys, tmp_path):
    a, b = weights(tmp_path / "a.safetensors", 1), weights(tmp_path / "b.safetensors", 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    weights(run_dir / "model.safetensors", 3)
    code, out, err = run(
        capsys, "ensemble", "--runs", str(a), str(b), str(run_dir), "--method", "vote", "--json"
    )
    assert code == 0, err
    r = last_json(out)
    assert r["method"] == "vote" and len(r["members"]) == 3 and r["ensemble_accuracy"] == r["vote_accuracy"]
    assert "ensemble of 3 (vote)" in err
    # --cache keeps each member's probabilities beside its weights; the figures stay the same
    code, out, err = run(
        capsys, "ensemble", "--runs", str(a), str(run_dir), "--device", "cpu", "--cache", "--json"
    )
    assert code == 0, err
    cached = last_json(out)
    assert (run_dir / "predictions" / "model-digits-test-none-cpu.safetensors").is_file()
    assert (tmp_path / "predictions" / "a-digits-test-none-cpu.safetensors").is_file()
    assert [m["accuracy"] for m in cached["members"]] == [
        r["members"][0]["accuracy"],
        r["members"][2]["accuracy"],
    ]


def test_ensemble_gallery_draws_the_images_it_gets_wrong(capsys, tmp_path):
    a, b = weights(tmp_path / "a.safetensors", 1), weights(tmp_path / "b.safetensors", 2)
    png = tmp_path / "wrong.png"
    code, out, err = run(capsys, "ensemble", "--runs", str(a), str(b), "--gallery", str(png), "--max", "12",
                         "--json")  # fmt: skip
    assert code == 0, err
    r = last_json(out)
    assert len(r["wrong"]) == round((1 - r["ensemble_accuracy"]) * r["images"]) > 12  # untrained members
    assert r["gallery"] == str(png) and f"drew 12 of the {len(r['wrong'])} images" in err
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > im.height  # 12 images: one full row of 10 and two
    for bad, message, status in ((["--gallery", str(tmp_path / "w.jpg")], "--gallery", 1),
                                 (["--gallery", str(png), "--max", "0"], "must be an integer in [1", 2)):  # fmt: skip
        code, _, err = run(capsys, "ensemble", "--runs", str(a), *bad)
        assert code == status and message in err and "Traceback" not in err


@pytest.mark.slow
def test_train_ensemble_and_cv_commands(capsys, tmp_path):
    common = ["--data", "digits", "--epochs", "1", "--subset", "128", "--no-tensorboard", "--no-progress"]
    code, out, err = run(capsys, "train", *common, "--ensemble", "2", "--out", str(tmp_path / "e"), "--json")
    assert code == 0, err
    r = last_json(out)
    assert r["ensemble"] == 2 and len(r["members"]) == 2 and "ensemble of 2" in err
    code, out, err = run(capsys, "train", "--resume", str(tmp_path / "e"), "--json")
    assert code == 0, err
    assert last_json(out)["test_accuracy"] == r["test_accuracy"]
    code, out, err = run(capsys, "cv", *common, "--folds", "2", "--grid", "label_smoothing=0,0.1",
                         "--out", str(tmp_path / "cv"), "--json")  # fmt: skip
    assert code == 0, err
    r = last_json(out)
    assert len(r["results"]) == 2 and r["best"]["params"]["label_smoothing"] in (0, 0.1)
    assert (tmp_path / "cv" / "cv.json").is_file() and "best:" in err
