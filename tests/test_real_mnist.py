"""Checks on the real MNIST files (skipped when DEEPER_DATA does not hold them)."""

import json

import pytest

from deeper.cli import main

pytestmark = pytest.mark.mnist


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_book_weights_give_the_books_accuracy_in_every_precision(mnist_dir, book_pkl, tmp_path, capsys):
    out = tmp_path / "book.safetensors"
    run_json(capsys, "convert-book-weights", str(book_pkl), "--trust-pickle", "-o", str(out), "--json")
    acc = {}
    for dtype in ("float64", "float32", "float16", "bfloat16"):
        r = run_json(
            capsys,
            "eval",
            "--model",
            "deep-convnet",
            "--weights",
            str(out),
            "--data",
            "mnist",
            "--dtype",
            dtype,
            "--json",
        )
        assert r["images"] == 10_000
        acc[dtype] = r["test_accuracy"]
    assert abs(acc["float64"] - 0.9797) <= 0.0005  # what the book's own NumPy code scores
    assert abs(acc["float32"] - 0.9797) <= 0.0005
    assert abs(acc["float16"] - acc["float32"]) <= 0.001  # the chapter's half-precision claim
    assert abs(acc["bfloat16"] - acc["float32"]) <= 0.002


@pytest.mark.slow
def test_training_on_a_real_mnist_subset_learns(mnist_dir, tmp_path, capsys):
    r = run_json(
        capsys,
        "train",
        "--data",
        "mnist",
        "--subset",
        "3000",
        "--epochs",
        "6",  # the fast recipe's budget: 3 epochs (72 steps) end near 0.89 or 0.91 by the CPU's kernels
        "--val-size",
        "1000",
        "--no-tensorboard",
        "--out",
        str(tmp_path / "r"),
        "--json",
    )
    assert r["test_accuracy"] > 0.9  # chance is 0.1
    gallery = tmp_path / "wrong.png"
    m = run_json(
        capsys, "misclassified", "--weights", r["weights"], "--data", "mnist", "-o", str(gallery), "--json"
    )
    assert m["misclassified"] == round((1 - r["test_accuracy"]) * 10_000) and gallery.stat().st_size > 10_000
