"""The book's parameter file: safe loading and an exact conversion (checked against a NumPy oracle)."""

import pickle

import numpy as np
import pytest
import torch

from deeper.errors import CheckpointError, ConfigError
from deeper.models import create_model
from deeper.models.book import BOOK_SHAPES, book_to_state_dict, load_book_params


def book_forward(p, x):
    """The book's DeepConvNet inference (``train_flg=False``), written independently in NumPy."""

    def conv(x, w, b, pad):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
        return np.einsum("nchwij,fcij->nfhw", win, w) + b[None, :, None, None]

    def pool(x):
        n, c, h, w = x.shape
        return x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = x
    for i, pad in zip(range(1, 7), (1, 1, 1, 2, 1, 1)):
        h = relu(conv(h, p[f"W{i}"], p[f"b{i}"], pad))
        if i % 2 == 0:
            h = pool(h)
    h = h.reshape(len(h), -1)
    h = relu(h @ p["W7"] + p["b7"]) * (1 - 0.5)  # the book's Dropout at test time
    return (h @ p["W8"] + p["b8"]) * (1 - 0.5)


def random_book_params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.3, s) for k, s in BOOK_SHAPES.items()}


def test_conversion_reproduces_the_books_scores_exactly():
    params = random_book_params()
    net = create_model("deep-convnet").double().eval()
    net.load_state_dict({k: v.double() for k, v in book_to_state_dict(params).items()})
    x = np.random.default_rng(1).random((4, 1, 28, 28))
    ours = net(torch.from_numpy(x)).detach().numpy()
    # the state dict is float32, so compare at float32 precision
    np.testing.assert_allclose(ours, book_forward(params, x), rtol=1e-5, atol=1e-5)


def test_pickle_is_refused_without_explicit_trust(tmp_path):
    f = tmp_path / "p.pkl"
    f.write_bytes(pickle.dumps(random_book_params()))
    with pytest.raises(ConfigError, match="can run arbitrary code.*--trust-pickle"):
        load_book_params(f)


def test_even_trusted_pickles_may_only_hold_arrays(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pkl"
    f.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(CheckpointError, match="refusing to load os.system"):
        load_book_params(f, trust_pickle=True)
    assert not marker.exists()


def test_trusted_array_pickle_loads_and_shapes_are_checked(tmp_path):
    params = random_book_params()
    f = tmp_path / "p.pkl"
    f.write_bytes(pickle.dumps(params))
    loaded = load_book_params(f, trust_pickle=True)
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    params["W7"] = params["W7"].T
    with pytest.raises(CheckpointError, match=r"W7 has shape \(50, 1024\)"):
        book_to_state_dict(params)
    del params["b8"]
    with pytest.raises(CheckpointError, match="missing b8"):
        book_to_state_dict(params)


def test_real_book_file_loads_with_the_allow_list(book_pkl):
    params = load_book_params(book_pkl, trust_pickle=True)
    assert {k: v.shape for k, v in params.items()} == BOOK_SHAPES
