"""Ensembles (mean / vote), bagging, k-fold cross-validation."""

import json

import numpy as np
import pytest
import torch

import deeper.train.ensemble as ensemble_module
from deeper.data import load_dataset
from deeper.data.resample import bootstrap_resample, kfold_indices, kfold_split
from deeper.errors import CheckpointError, ConfigError
from deeper.fileio import file_digest
from deeper.models import create_model, save_weights
from deeper.train import TrainConfig
from deeper.train.cv import cross_validate, parse_grid
from deeper.train.ensemble import (
    combine,
    ensemble_probabilities,
    evaluate_ensemble,
    predictions_path,
    train_ensemble,
)

TINY = dict(data="digits", tensorboard=False, progress=False)


def test_mean_and_vote_can_disagree():
    # three members, one image, three classes
    probs = torch.tensor(
        [
            [[0.40, 0.35, 0.25]],
            [[0.40, 0.35, 0.25]],
            [[0.00, 0.95, 0.05]],
        ],
        dtype=torch.float64,
    )
    assert combine(probs, "vote").tolist() == [0]  # two votes for class 0
    assert combine(probs, "mean").tolist() == [1]  # mean 0.27 / 0.55 / 0.18


def test_vote_ties_go_to_the_higher_mean_probability():
    probs = torch.tensor([[[0.9, 0.1]], [[0.4, 0.6]]], dtype=torch.float64)  # one vote each
    assert combine(probs, "vote").tolist() == [0]
    with pytest.raises(ConfigError, match="unknown ensemble method"):
        combine(probs, "median")


def test_bootstrap_resample_draws_with_replacement_reproducibly():
    ds = load_dataset("digits", "train")
    a, b, c = bootstrap_resample(ds, seed=1), bootstrap_resample(ds, seed=1), bootstrap_resample(ds, seed=2)
    assert len(a) == len(ds) and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    distinct = len({bytes(img.numpy()) for img in a.images})
    assert 0.58 < distinct / len(ds) < 0.68  # about 1 - 1/e of the images appear


def save_random(path, seed, scale=1.0):
    torch.manual_seed(seed)
    model = create_model("mlp", hidden_sizes=(16,))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    meta = {"model": "mlp", "num_classes": 10, "in_chans": 1, "img_size": 28, "dataset": "digits",
            "model_kwargs": {"hidden_sizes": [16]}}  # fmt: skip
    save_weights(model, path, meta)
    return path


def test_evaluate_ensemble_scores_members_and_the_ensemble(tmp_path):
    a = save_random(tmp_path / "a.safetensors", 1)
    b = save_random(tmp_path / "b.safetensors", 2)
    same = evaluate_ensemble([a, a], method="vote")
    assert same["ensemble_accuracy"] == same["members"][0]["accuracy"] == same["mean_accuracy"]
    r = evaluate_ensemble([a, b])
    assert r["data"] == "digits" and r["images"] == 360 and len(r["members"]) == 2
    # recompute the mean-of-probabilities ensemble by hand
    from deeper.models import model_from_weights

    test = load_dataset("digits", "test")
    x = test.images.float() / 255
    probs = sum(torch.softmax(model_from_weights(p)[0].eval()(x).double(), 1) for p in (a, b))
    expected = float((probs.argmax(1) == test.labels).double().mean())
    assert r["mean_accuracy"] == pytest.approx(expected)
    # the images it gets wrong, with what it predicts and how many members get them right
    wrong = (probs.argmax(1) != test.labels).nonzero().flatten()
    assert r["wrong"] == wrong.tolist() and len(r["wrong"]) == round((1 - expected) * 360)
    assert r["true"] == test.labels[wrong].tolist() and r["predicted"] == probs.argmax(1)[wrong].tolist()
    each = [model_from_weights(p)[0].eval()(x).argmax(1)[wrong] == test.labels[wrong] for p in (a, b)]
    assert r["members_right"] == (each[0].int() + each[1].int()).tolist()
    assert all(n < 2 for n in r["members_right"])  # a mean of two both get right is right


def test_evaluate_ensemble_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such run"):
        evaluate_ensemble([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        evaluate_ensemble([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="at least one"):
        evaluate_ensemble([])


def test_the_prediction_cache_is_reused_only_for_the_same_weights_and_labels(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    weights = save_random(run / "model.safetensors", 1)
    uncached = ensemble_probabilities([run], device="cpu")
    assert not (run / "predictions").exists()  # nothing is written without cache
    first = ensemble_probabilities([run], device="cpu", cache=True)
    kept = predictions_path(weights, "digits", "test", "none", "cpu")
    assert kept.is_file() and torch.equal(first[0], uncached[0])

    runs_of_the_model = []
    real = ensemble_module.member_probabilities

    def counting(*args, **kwargs):
        runs_of_the_model.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ensemble_module, "member_probabilities", counting)
    again = ensemble_probabilities([run], device="cpu", cache=True)
    assert runs_of_the_model == [] and torch.equal(again[0], first[0]) and again[2] == first[2]

    save_random(weights, 2)  # retrained: the kept probabilities no longer apply
    retrained = ensemble_probabilities([run], device="cpu", cache=True)
    assert len(runs_of_the_model) == 1 and not torch.equal(retrained[0], first[0])
    assert torch.equal(retrained[0], ensemble_probabilities([run], device="cpu")[0])

    # kept for other labels (another dataset file under the same name): scored again
    p, labels = retrained[0][0], retrained[1]
    ensemble_module._store_probabilities(kept, file_digest(weights), p, labels.flip(0))
    ensemble_probabilities([run], device="cpu", cache=True)
    assert len(runs_of_the_model) == 3  # + the uncached call above

    kept.write_bytes(b"not a safetensors file")  # a damaged file is scored again, not an error
    damaged = ensemble_probabilities([run], device="cpu", cache=True)
    assert len(runs_of_the_model) == 4 and torch.equal(damaged[0], retrained[0])
    ensemble_probabilities([run], device="cpu", cache=True)
    assert len(runs_of_the_model) == 4  # and written back whole


@pytest.mark.slow
def test_train_ensemble_trains_members_with_other_seeds_and_resumes(tmp_path):
    cfg = TrainConfig(**TINY, epochs=1, subset=256, ensemble=2, bootstrap=True, out=str(tmp_path / "e"))
    result = train_ensemble(cfg)
    assert [m["seed"] for m in result["members"]] == [0, 1]
    w0 = (tmp_path / "e" / "member-0" / "model.safetensors").read_bytes()
    w1 = (tmp_path / "e" / "member-1" / "model.safetensors").read_bytes()
    assert w0 != w1
    assert (
        json.loads((tmp_path / "e" / "result.json").read_text())["test_accuracy"] == result["test_accuracy"]
    )
    assert 0 <= result["test_accuracy"] <= 1 and result["ensemble"] == 2
    with pytest.raises(ConfigError, match="already holds an ensemble"):
        train_ensemble(cfg)
    mtime = (tmp_path / "e" / "member-0" / "model.safetensors").stat().st_mtime_ns
    again = train_ensemble(cfg, resume=True)  # finished members are not trained again
    assert (tmp_path / "e" / "member-0" / "model.safetensors").stat().st_mtime_ns == mtime
    assert again["test_accuracy"] == result["test_accuracy"]


def test_kfold_folds_partition_the_data_and_are_stratified():
    labels = torch.arange(100) % 4
    vals = []
    for fold in range(5):
        train, val = kfold_indices(labels, 5, fold)
        assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
        assert np.bincount(labels[val].numpy()).tolist() == [5, 5, 5, 5]
        vals.append(set(val.tolist()))
    assert set().union(*vals) == set(range(100))
    ds = load_dataset("digits", "train")
    tr, va = kfold_split(ds, 3, 0)
    assert len(tr) + len(va) == len(ds)
    with pytest.raises(ConfigError, match="need folds >= 2"):
        kfold_indices(labels, 5, 5)


def test_parse_grid():
    assert parse_grid(["lr=0.001,0.01", "augment=none;rotate=10,elastic=20", "restore-best=true,false"]) == {
        "lr": [0.001, 0.01],
        "augment": ["none", "rotate=10,elastic=20"],
        "restore_best": [True, False],
    }
    with pytest.raises(ConfigError, match="not a training option"):
        parse_grid(["learning_rate=0.1"])
    with pytest.raises(ConfigError, match="KEY=V1"):
        parse_grid(["lr"])


@pytest.mark.slow
def test_cross_validate_ranks_the_candidates_and_reuses_finished_folds(tmp_path):
    cfg = TrainConfig(**TINY, epochs=1, subset=96, batch_size=32, optimizer="sgd", schedule="constant")
    result = cross_validate(cfg, {"lr": [1e-6, 0.05]}, folds=2, out=tmp_path / "cv", log=lambda m: None)
    rows = {r["params"]["lr"]: r for r in result["results"]}
    assert set(rows) == {1e-6, 0.05} and all(len(r["val_accuracy"]) == 2 for r in rows.values())
    assert result["best"]["params"] == {"lr": 0.05}  # a learning rate of 1e-6 learns nothing in 3 steps
    with pytest.raises(ConfigError, match="no validation score"):
        cross_validate(
            TrainConfig(**TINY, max_steps=1), {}, folds=2, out=tmp_path / "short", log=lambda m: None
        )
    assert rows[0.05]["mean"] == pytest.approx(sum(rows[0.05]["val_accuracy"]) / 2)
    fold_cfg = (tmp_path / "cv" / "lr-0.05" / "fold-1" / "config.yaml").read_text()
    assert "folds: 2" in fold_cfg and "fold: 1" in fold_cfg
    marker = tmp_path / "cv" / "lr-0.05" / "fold-0" / "result.json"
    mtime = marker.stat().st_mtime_ns
    again = cross_validate(cfg, {"lr": [1e-6, 0.05]}, folds=2, out=tmp_path / "cv", log=lambda m: None)
    assert marker.stat().st_mtime_ns == mtime and again["best"] == result["best"]


def test_flip_tta_averages_each_image_with_its_mirror():
    from deeper.data import BatchLoader
    from deeper.train.ensemble import member_probabilities

    torch.manual_seed(0)
    model = create_model("deep-convnet").eval()
    ds = load_dataset("digits", "test").subset(slice(0, 50))
    loader = BatchLoader(ds, 20)
    plain, flipped = member_probabilities(model, loader), member_probabilities(model, loader, "flip")
    x = ds.images.float() / 255
    with torch.no_grad():
        mirror = torch.softmax(model(x.flip(3)).double(), 1)
    assert torch.allclose(flipped, (plain + mirror) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="test-time augmentation"):
        member_probabilities(model, loader, "rotate")


def test_shift_tta_averages_each_image_with_its_four_one_pixel_shifts():
    from deeper.data import BatchLoader
    from deeper.train.ensemble import member_probabilities, shift_images

    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert shift_images(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]  # down
    assert shift_images(x, 0, -1)[0, 0].tolist() == [[1, 2, 0], [4, 5, 0], [7, 8, 0]]  # left
    assert shift_images(x, -2, 2)[0, 0].tolist() == [[0, 0, 6], [0, 0, 0], [0, 0, 0]]  # two up, two right
    torch.manual_seed(0)
    model = create_model("deep-convnet").eval()
    ds = load_dataset("digits", "test").subset(slice(0, 30))
    imgs = ds.images.float() / 255
    with torch.no_grad():
        views = [imgs] + [shift_images(imgs, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        expected = sum(torch.softmax(model(v).double(), 1) for v in views) / 5
    got = member_probabilities(model, BatchLoader(ds, 16), "shift")
    assert torch.allclose(got, expected, atol=1e-6)
