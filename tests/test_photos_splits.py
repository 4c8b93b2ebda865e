"""The photographs' splits swapped for a block (``deeper.data.photos.splits``) and the super-resolution benchmark's
cross-validation built on it: which photographs each fold trains and scores on, and how the folds combine."""

from __future__ import annotations

import pytest

from deeper.data import photos
from deeper.errors import ConfigError
from tests.helpers import load_benchmark


def test_splits_hold_other_photographs_inside_the_block_only():
    before = dict(photos.SPLITS)
    with photos.splits(train=("astronaut",), test=["coffee", "flower"]):
        assert photos.load_photos("train").names == ["astronaut"]
        assert photos.load_photos("test").names == ["coffee", "flower"]
        assert photos.load_photos("val").names == list(photos.VAL)  # a split not named is left alone
    assert before == photos.SPLITS
    assert photos.load_photos("train").names == list(photos.TRAIN)


def test_splits_come_back_after_an_error_and_unknown_splits_are_refused():
    with pytest.raises(RuntimeError), photos.splits(test=("camera",)):
        raise RuntimeError("inside")
    assert photos.SPLITS["test"] == photos.TEST
    with pytest.raises(ConfigError, match="unknown split 'holdout'"), photos.splits(holdout=("camera",)):
        pass


@pytest.fixture(scope="module")
def superres():
    return load_benchmark("superres")


def test_each_fold_trains_on_every_photograph_but_the_one_it_scores(superres):
    for held_out in photos.TEST:
        train = superres._train_photos(held_out)
        assert held_out not in train and set(train) | {held_out} == set(photos.TEST)
    assert set(superres.FOLDED.values()) <= set(superres.CONFIGS)
    for name, base in superres.FOLDED.items():  # the same run as its base but for the validation photograph
        assert superres.CONFIGS[name][:4] == superres.CONFIGS[base][:4]
        assert superres.CONFIGS[name][4] == {**superres.CONFIGS[base][4], "val_size": 0}


def test_folds_combine_into_the_mean_over_the_photographs(superres):
    def fold(psnr, bicubic, seconds, steps):
        return {"test_psnr": psnr, "test_ssim": 0.9, "test_bicubic_psnr": bicubic, "test_bicubic_ssim": 0.8,
                "test_single_psnr": None, "train_seconds": seconds, "steps": steps, "epochs": steps // 10,
                "stopped": f"after {seconds}", "params": 7, "task": "superres", "run_dir": f"runs/{psnr}"}  # fmt: skip

    r = superres.combine_folds({"a": fold(30.0, 29.0, 500.0, 100), "b": fold(34.0, 31.0, 700.0, 90)})
    assert r["test_psnr"] == 32.0 and r["test_bicubic_psnr"] == 30.0 and r["test_ssim"] == pytest.approx(0.9)
    assert r["test_single_psnr"] is None  # no self-ensemble: no single pass to average
    assert (r["train_seconds"], r["stopped"], r["steps"], r["epochs"]) == (700.0, "after 700.0", 90, 9)
    assert r["run_dir"] == "runs/30.0" and list(r["folds"]) == ["a", "b"]
    assert r["folds"]["b"]["test_psnr"] == 34.0


def test_fold_applies_to_the_cross_validated_configurations_only(superres, capsys):
    with pytest.raises(SystemExit) as e:
        superres.main(["--only", "srcnn-x2-bf16-x8", "--fold", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("--fold trains folds of the cross-validated configurations (srcnn-x2-cv) only")
