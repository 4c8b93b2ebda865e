import numpy as np
import pytest
import torch

from deeper.errors import ConfigError
from deeper.models import create_model
from deeper.models.preprocess import WidthNormalize
from deeper.models.weights import model_from_weights, save_weights
from deeper.scratch import create_net
from deeper.scratch.layers import WidthNormalize as ScratchWidthNormalize


def ink_columns(x: torch.Tensor, threshold: float = 0.1) -> list[tuple[int, int]]:
    """(first, last) column holding ink, per image of (N, 1, H, W)."""
    ink = x.amax(dim=(1, 2)) > threshold
    return [(int(r.nonzero().min()), int(r.nonzero().max())) for r in ink]


def bars(specs: list[tuple[int, int, int, int]], size: int = 28) -> torch.Tensor:
    """Images with one rectangle of ink each: (top, bottom, left, right), inclusive."""
    x = torch.zeros(len(specs), 1, size, size)
    for i, (top, bottom, left, right) in enumerate(specs):
        x[i, 0, top : bottom + 1, left : right + 1] = 1.0
    return x


@pytest.mark.parametrize("width", [10, 14, 20])
def test_width_normalize_stretches_every_digit_to_the_width_centred(width):
    # narrow and wide strokes, off-centre: a "1" of 3 pixels, a wide "0" of 18, one at the edge
    x = bars([(4, 23, 3, 5), (4, 23, 5, 22), (6, 20, 20, 27), (4, 23, 12, 15)])
    y = WidthNormalize(width)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    for first, last in ink_columns(y, threshold=0.5):
        assert abs((last - first + 1) - width) <= 1  # ink now spans `width` pixels
        assert abs((first + last + 1) / 2 - 14) <= 0.5  # centred on the image's middle
    # the height is left alone: the same rows hold ink
    assert torch.equal(y.amax(dim=3) > 0.5, x.amax(dim=3) > 0.5)
    assert y.min() >= 0 and y.max() <= 1


def test_width_normalize_is_per_image_and_leaves_blank_images_alone():
    x = torch.rand(5, 1, 28, 28) * (torch.rand(5, 1, 1, 1) > 0.3)
    x[2] = 0
    norm = WidthNormalize(12)
    batched = norm(x)
    one_by_one = torch.cat([norm(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, one_by_one)
    assert torch.equal(batched[2], x[2])


def test_width_normalize_of_an_image_already_at_the_width_is_the_identity():
    x = bars([(5, 22, 9, 18)])  # 10 columns wide, centred
    torch.testing.assert_close(WidthNormalize(10)(x), x)


def test_deep_convnet_width_norm_travels_with_the_weights(tmp_path):
    torch.manual_seed(0)
    net = create_model("deep-convnet", width_norm=12, norm="batch").eval()
    assert isinstance(net.width_norm, WidthNormalize) and net.width_norm.width == 12
    assert create_model("deep-convnet").width_norm is None  # the book's network is unchanged
    x = bars([(4, 23, 3, 5), (4, 23, 5, 22)])
    path = save_weights(net, tmp_path / "w.safetensors", {
        "model": "deep-convnet", "model_kwargs": {"width_norm": 12, "norm": "batch"},
    })  # fmt: skip
    again, _ = model_from_weights(path)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), net(x))
    assert again.width_norm.width == 12
    plain, _ = model_from_weights(path, width_norm=0.0)  # the same weights without it see other inputs
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(x), net(x))
    with pytest.raises(ConfigError, match=r"option width_norm must be a number in \[0, 10000\], got -3"):
        create_model("deep-convnet", width_norm=-3)


def test_resnet20_width_norm_runs_first_and_travels_with_the_weights(tmp_path):
    torch.manual_seed(0)
    kw = {"in_chans": 1, "img_size": 28, "width_norm": 16}
    net = create_model("resnet20", **kw).eval()
    assert next(iter(net.stem.named_children()))[0] == "width_norm"  # before the first convolution
    plain = create_model("resnet20", in_chans=1, img_size=28).eval()
    assert "width_norm" not in dict(plain.stem.named_children())
    # parameter-free: the same weights names, so a plain ResNet's weights load into it and back
    assert net.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(net.state_dict())
    x = bars([(4, 23, 3, 5), (4, 23, 5, 22)])
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(net.stem.width_norm(x)))
        assert not torch.allclose(net(x), plain(x))
    path = save_weights(net, tmp_path / "r.safetensors", {"model": "resnet20", "model_kwargs": kw})
    again, _ = model_from_weights(path)
    assert again.stem.width_norm.width == 16
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), net(x))
    with pytest.raises(ConfigError, match=r"option width_norm must be a number in \[0, 10000\], got -1"):
        create_model("resnet20", width_norm=-1)


def test_the_scratch_layer_equals_torch_forward_and_backward():
    """The NumPy twin: the same images out, and its backward is the input gradient autograd finds."""
    x = bars([(4, 23, 3, 5), (4, 23, 5, 22), (6, 20, 20, 27), (2, 9, 0, 27)]).double()
    x = x * torch.rand(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[3] = 0  # a blank image too
    x.requires_grad_(True)
    y = WidthNormalize(14)(x)
    dout = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * dout).sum().backward()
    layer = ScratchWidthNormalize(14)
    ours = layer.forward(x.detach().numpy())
    np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dout.numpy()), x.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_the_scratch_deep_convnet_takes_width_norm_like_torch():
    net = create_net("deep-convnet", width_norm=16)
    assert next(iter(net.layers)) == "width_norm"
    with pytest.raises(ConfigError, match="positive width"):
        create_net("deep-convnet", width_norm=-1)


def test_int8_quantization_keeps_width_norm_whole_and_in_float():
    from deeper.accel.quantize import int8_static

    torch.manual_seed(0)
    net = create_model("deep-convnet", width_norm=14, norm="batch").eval()
    x = bars([(4, 23, 3, 5), (4, 23, 5, 22), (6, 20, 20, 27), (2, 9, 0, 27)])
    q = int8_static(net, [x])
    assert "self.width_norm(x)" in q.code  # one float module, not traced op by op
    with torch.no_grad():
        torch.testing.assert_close(q.width_norm(x), net.width_norm(x))
        assert (q(x) - net(x)).abs().max() < 0.1 * net(x).abs().max()


@pytest.mark.slow
def test_onnx_export_of_width_norm_matches_eager(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from deeper.accel.export import export_onnx

    torch.manual_seed(0)
    net = create_model("deep-convnet", width_norm=12).eval()
    x = bars([(4, 23, 3, 5), (6, 20, 20, 27)])
    session = ort.InferenceSession(str(export_onnx(net, x[:1], tmp_path / "m.onnx")))
    for i in range(len(x)):  # each digit is normalised by its own width
        (out,) = session.run(None, {session.get_inputs()[0].name: x[i : i + 1].numpy()})
        np.testing.assert_allclose(out, net(x[i : i + 1]).detach().numpy(), atol=1e-4)
