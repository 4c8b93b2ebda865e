"""The scratch engine on the real MNIST test set (skipped without DEEPER_DATA / the book's file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from deeper.data import load_dataset
from deeper.models import model_from_weights
from deeper.scratch.trainer import net_from_weights


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrix products are slower with several BLAS threads, badly so on a busy machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


pytestmark = pytest.mark.mnist


def torch_predictions(model, x) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate(
            [model(torch.from_numpy(x[i : i + 1000])).argmax(1).numpy() for i in range(0, len(x), 1000)]
        )


def test_book_weights_score_0_9797_and_both_engines_predict_the_same_classes(mnist_dir, book_pkl, tmp_path):
    """The book's weights, converted: 0.9797 as in the book's own NumPy code, and the same class as
    the torch engine for at least 99.99% of the 10,000 test images (float32 in both)."""
    from deeper.models import save_weights
    from deeper.models.book import book_to_state_dict, load_book_params

    weights = tmp_path / "book.safetensors"
    save_weights(
        book_to_state_dict(load_book_params(book_pkl, trust_pickle=True)), weights, {"model": "deep-convnet"}
    )
    ds = load_dataset("mnist", "test")  # from DEEPER_DATA, set by the mnist_dir fixture
    x, y = ds.images.numpy().astype(np.float32) / 255.0, ds.labels.numpy()
    model, _ = model_from_weights(weights)
    net, _ = net_from_weights(weights, dtype="float32")
    theirs = torch_predictions(model.eval(), x)
    ours = net.predict(x).argmax(axis=1)
    assert (ours == theirs).mean() >= 0.9999  # at most 1 image of 10,000 differs
    assert (ours == y).sum() == 9797
