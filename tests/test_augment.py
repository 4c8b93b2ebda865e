"""Batched augmentations: shapes, ranges, layouts, reproducibility, and that each op does what it says."""

import math

import pytest
import torch

from deeper.data import BatchLoader, load_dataset
from deeper.data.augment import OPS, PRESETS, Augment, parse_augment
from deeper.errors import ConfigError
from deeper.train.regularize import TrainTransform

STRONG = {
    "rotate": 30.0,
    "scale": 0.3,
    "translate": 0.2,
    "elastic": 34.0,
    "crop": 4.0,
    "flip": 0.5,
    "brightness": 0.3,
    "contrast": 0.5,
    "erase": 0.8,
}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(n=16, c=1, size=28, seed=0):
    return torch.rand(n, c, size, size, generator=gen(seed))


@pytest.mark.parametrize("op", sorted(STRONG))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_keeps_shape_dtype_range_and_is_seeded(op, channels):
    x = batch(c=channels)
    aug = Augment({op: STRONG[op]})
    a, b, c = aug(x, gen(1)), aug(x, gen(1)), aug(x, gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b), "same seed, same images"
    assert not torch.equal(a, c), "another seed, other images"
    assert not torch.equal(a, x), "the op changed something"


def test_channels_last_batches_stay_channels_last():
    x = batch(c=3).contiguous(memory_format=torch.channels_last)
    y = Augment(STRONG)(x, gen())
    assert y.is_contiguous(memory_format=torch.channels_last) and y.shape == x.shape


def test_all_ops_together_on_float64_and_empty_spec_is_identity():
    x = batch().double()
    y = Augment(STRONG)(x, gen())
    assert y.dtype == torch.float64 and float(y.min()) >= 0 and float(y.max()) <= 1
    assert not Augment({})
    assert torch.equal(Augment({})(x, gen()), x)


def test_geometric_ops_at_zero_strength_leave_the_image():
    x = batch()
    y = Augment({"rotate": 1e-9, "translate": 1e-9, "scale": 1e-9})(x, gen())
    assert torch.allclose(x, y, atol=1e-5)


def test_flip_mirrors_left_right():
    x = batch()
    assert torch.equal(Augment({"flip": 1.0})(x, gen()), x.flip(3))


def test_crop_with_padding_is_a_whole_pixel_shift_with_zero_fill():
    x = batch(n=32)
    y = Augment({"crop": 3.0})(x, gen())
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    shifts = set()
    for i in range(x.shape[0]):
        found = [
            (dy, dx)
            for dy in range(7)
            for dx in range(7)
            if torch.equal(padded[i, :, dy : dy + 28, dx : dx + 28], y[i])
        ]
        assert found, f"image {i} is not a crop of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 5  # per-image offsets, not one for the batch


def centre_of_mass(img):
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    m = img.sum()
    return float((img * ys).sum() / m), float((img * xs).sum() / m)


def blob():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 11:17, 11:17] = 1.0  # a centred square
    return x


def test_translate_moves_the_centre_by_at_most_t_times_the_size():
    y = Augment({"translate": 0.1})(blob(), gen())
    moves = [centre_of_mass(img[0]) for img in y]
    dy = [abs(cy - 13.5) for cy, _ in moves]
    dx = [abs(cx - 13.5) for _, cx in moves]
    assert max(dy) <= 2.8 + 0.05 and max(dx) <= 2.8 + 0.05  # 0.1 * 28 pixels
    assert max(dy) > 1.0 and max(dx) > 1.0


def test_scale_changes_the_area_by_the_square_of_the_factor():
    y = Augment({"scale": 0.3})(blob(), gen())
    areas = y.sum(dim=(1, 2, 3)) / 36.0
    assert float(areas.min()) >= 0.7**2 - 0.05 and float(areas.max()) <= 1.3**2 + 0.05
    assert float(areas.max()) - float(areas.min()) > 0.3


def principal_angle(img):
    cy, cx = centre_of_mass(img)
    h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    ys, xs = ys - cy, xs - cx
    cov_xy, cov_xx, cov_yy = (img * xs * ys).sum(), (img * xs * xs).sum(), (img * ys * ys).sum()
    return math.degrees(0.5 * math.atan2(2 * float(cov_xy), float(cov_xx - cov_yy)))


def test_rotate_turns_a_bar_by_at_most_the_strength():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13:15, 4:24] = 1.0  # a horizontal bar
    y = Augment({"rotate": 20.0})(x, gen())
    angles = [abs(principal_angle(img[0])) for img in y]
    assert max(angles) <= 20.5 and max(angles) > 10
    assert abs(float(y.sum()) / float(x.sum()) - 1) < 0.02  # rotation keeps the ink


def test_elastic_distortion_is_local_and_keeps_the_ink():
    x = blob()
    y = Augment({"elastic": 34.0})(x, gen())
    assert abs(float(y.sum()) / float(x.sum()) - 1) < 0.15
    assert (y - x).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every image moved
    stronger = Augment({"elastic": 80.0})(x, gen())
    assert (stronger - x).abs().sum() > (y - x).abs().sum()


def test_brightness_and_contrast():
    x = torch.full((32, 1, 28, 28), 0.5)
    x[:, :, :14] = 0.4
    b = Augment({"brightness": 0.2})(x, gen())
    diff = b - x
    assert torch.allclose(diff, diff[:, :1, :1, :1].expand_as(diff), atol=1e-6)  # one shift per image
    assert float(diff.abs().max()) <= 0.2 + 1e-6 and float(diff.abs().max()) > 0.1
    c = Augment({"contrast": 0.5})(x, gen())
    factor = (c[:, 0, 0, 0] - c[:, 0, -1, 0]) / (x[:, 0, 0, 0] - x[:, 0, -1, 0])
    assert float(factor.min()) >= 0.5 - 1e-5 and float(factor.max()) <= 1.5 + 1e-5
    assert torch.allclose(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-6)  # around the mean


def test_random_erasing_replaces_one_rectangle_of_2_to_33_percent():
    x = torch.zeros(200, 1, 28, 28)
    y = Augment({"erase": 0.5})(x, gen())
    changed = y[:, 0] != 0
    hit = changed.flatten(1).any(1)
    assert 60 < int(hit.sum()) < 140  # about half of the images
    for img in changed[hit]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) <= 0.34 * 784 and int(box) >= 0.01 * 784


def test_parse_specs_presets_and_defaults_per_dataset():
    assert parse_augment(None) == {} and parse_augment("none") == {}
    assert parse_augment("default", "mnist") == PRESETS["digits"]
    assert "flip" not in parse_augment("default", "mnist")  # no flips for digits
    assert parse_augment("default", "fashion-mnist")["flip"] == 0.5
    assert parse_augment("default,erase=0.25", "cifar10") == {**PRESETS["cifar"], "erase": 0.25}
    assert parse_augment("digits,rotate=0") == {k: v for k, v in PRESETS["digits"].items() if k != "rotate"}
    assert parse_augment("rotate=15, elastic-sigma=5, elastic=30") == {
        "rotate": 15.0,
        "elastic_sigma": 5.0,
        "elastic": 30.0,
    }
    assert set(OPS) >= set(STRONG)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("rotat=10", "unknown op 'rotat'"),
        ("rotate=ten", "not a number"),
        ("flip=2", "flip must be in"),
        ("fancy", "unknown preset 'fancy'"),
    ],
)
def test_bad_specs_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_augment(spec, "mnist")


def test_default_needs_a_dataset_with_a_preset():
    with pytest.raises(ConfigError, match="no default augmentation"):
        parse_augment("default", "somewhere")


def test_the_loader_transform_is_reproducible_and_resumable():
    ds = load_dataset("digits", "train")

    def loader(state=None, skip=0):
        t = TrainTransform(Augment(parse_augment("default", "digits")), seed=5)
        if state is not None:
            t.load_state_dict(state)
        bl = BatchLoader(ds, 64, shuffle=True, seed=1, transform=t)
        bl.set_epoch(0, skip_batches=skip)
        return t, iter(bl)

    _, it = loader()
    full = [x for x, _ in it]
    t, it = loader()
    part = [next(it)[0] for _ in range(3)]
    state = {k: v.clone() for k, v in t.state_dict().items()}  # what a checkpoint after batch 3 holds
    _, it = loader(state, skip=3)
    rest = [x for x, _ in it]
    assert len(part + rest) == len(full)
    assert all(torch.equal(a, b) for a, b in zip(full, part + rest))
    _, it = loader(skip=3)  # without the saved state the augmentations would differ
    assert not torch.equal(next(it)[0], full[3])
    assert float(full[0].min()) >= 0 and float(full[0].max()) <= 1
