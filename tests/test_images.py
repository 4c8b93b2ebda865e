import numpy as np
import pytest
from PIL import Image

from deeper.data.images import mnist_style, prepare_image, read_image
from deeper.errors import DataError


def drawn_digit(size=(90, 60), dark_on_light=True):
    """A fake '1': a thick vertical bar, off-centre, on a plain background."""
    img = np.zeros(size, dtype=np.float32)
    img[10:70, 40:48] = 1.0
    return 1.0 - img if dark_on_light else img


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_mnist_style_centres_a_bright_digit_in_a_20px_box(dark_on_light):
    out = mnist_style(drawn_digit(dark_on_light=dark_on_light))
    assert out.shape == (28, 28) and out.min() >= 0 and out.max() <= 1
    rows, cols = np.nonzero(out > 0.2)
    assert rows.max() - rows.min() + 1 in (19, 20, 21)  # the long side fills the 20-pixel box
    total = out.sum()
    cy, cx = (np.indices(out.shape)[0] * out).sum() / total, (np.indices(out.shape)[1] * out).sum() / total
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert out[0].max() == 0 and out[:, 0].max() == 0  # background is black


def test_both_polarities_give_the_same_result():
    assert np.allclose(
        mnist_style(drawn_digit(dark_on_light=True)), mnist_style(drawn_digit(dark_on_light=False)), atol=1e-3
    )


def test_blank_image_gives_blank_input():
    assert mnist_style(np.ones((30, 30))).max() == 0


def test_reading_files(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray((drawn_digit() * 255).astype(np.uint8)).convert("RGB").save(path)
    assert read_image(path).shape == (90, 60)
    assert prepare_image(path, (1, 28, 28)).shape == (1, 28, 28)
    assert prepare_image(path, (3, 32, 32)).shape == (3, 32, 32)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.png")
