"""The ``scenes`` datasets: layout rules, boxes and masks against an independent renderer,
captions against their grammar, the digit protocol (train/val/test), the cache and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from deeper.cli import main
from deeper.data import ImageDataset, get_dataset_spec, list_datasets, load_dataset
from deeper.data import scenes as sc
from deeper.data.captions import (
    NUM_CAPTIONS,
    CaptionError,
    CaptionMeaning,
    caption_holds,
    meaning_holds,
    parse_caption,
)
from deeper.data.mnist import FASHION_SOURCE
from deeper.data.scenes import (
    CHUNK,
    PRESETS,
    SceneDataset,
    digit_pools,
    generate_scenes,
    load_scenes,
    scale_digits,
)
from tests.helpers import run

DIGITS = tuple(str(i) for i in range(10))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The machine is shared: one torch thread for every test here."""


def fake_digits(n: int, seed: int, name: str = "mnist", classes=DIGITS) -> ImageDataset:
    """``n`` distinct 28x28 'digits': random strokes of ink in the central 20x20 box."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(6, 21, (2,), generator=g))
        y, x = (int(v) for v in torch.randint(4, 25 - max(h, w) + 1, (2,), generator=g))
        ink = torch.randint(0, 256, (h, w), generator=g, dtype=torch.int64)
        ink[ink < 90] = 0
        ink[h // 2, :] = 255  # every digit has strong ink
        images[i, 0, y : y + h, x : x + w] = ink.to(torch.uint8)
    return ImageDataset(name, images, torch.arange(n) % len(classes), tuple(classes))


@pytest.fixture(scope="module")
def train_digits() -> ImageDataset:
    return fake_digits(400, 0)


@pytest.fixture(scope="module")
def test_digits() -> ImageDataset:
    return fake_digits(100, 1)


@pytest.fixture(scope="module")
def made(train_digits, test_digits) -> dict[str, SceneDataset]:
    """One chunk of train scenes per preset, and test scenes of scenes-det."""
    out = {name: generate_scenes(name, train_digits, "train", n=CHUNK) for name in PRESETS}
    out["test"] = generate_scenes("scenes-det", test_digits, "test", n=64)
    return out


def render(ds: SceneDataset, digits: ImageDataset, scenes, *, strict: bool = True):
    """Paste each object again from its recorded digit, size and box: images, instance and class masks.

    Checks on the way that each box is exactly as large as the ink of the scaled digit
    (with ``strict=False`` a box of another size makes the result None).
    """
    h, w = ds.image_shape[1:]
    images = torch.zeros(len(scenes), h, w, dtype=torch.uint8)
    inst, cls = torch.zeros_like(images), torch.zeros_like(images)
    for row, n in enumerate(scenes):
        for i in range(int(ds.counts[n])):
            crop = scale_digits(digits.images[ds.source_index[n, i], 0][None], int(ds.sizes[n, i]))[0]
            ys, xs = torch.nonzero(crop, as_tuple=True)
            ink = crop[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
            x1, y1, x2, y2 = ds.boxes[n, i].long().tolist()
            if not strict and (y2 - y1, x2 - x1) != tuple(ink.shape):
                return None
            assert (y2 - y1, x2 - x1) == tuple(ink.shape), "the box is the ink's bounding box"
            images[row, y1:y2, x1:x2] = torch.maximum(images[row, y1:y2, x1:x2], ink)
            on = ink > 0
            inst[row, y1:y2, x1:x2][on] = i + 1
            cls[row, y1:y2, x1:x2][on] = int(ds.labels[n, i]) + 1
    return images, inst, cls


# ---------------------------------------------------------------------------------------------
# registry and dataset API


def test_presets_are_registered_with_their_shapes():
    names = list_datasets("scenes-*")
    assert set(sc.scene_names()) == set(names) and len(names) == 2 * len(PRESETS)
    assert {"scenes-det", "scenes-seg", "scenes-cap", "scenes-det-300", "scenes-det-fashion"} <= set(names)
    assert get_dataset_spec("scenes-seg").image_shape == (1, 64, 84)
    assert get_dataset_spec("scenes-det-300").image_shape == (1, 300, 300)
    assert get_dataset_spec("scenes-det").classes == DIGITS
    assert get_dataset_spec("scenes-cap-fashion").classes == FASHION_SOURCE.classes
    assert "mnist" in get_dataset_spec("scenes-det").source.locate(sc.DataSources())


def test_fields_dtypes_and_shapes(made):
    ds = made["scenes-det"]
    assert len(ds) == CHUNK and ds.image_shape == (1, 128, 128) and ds.max_objects == 5
    assert ds.num_classes == 10 and ds.device.type == "cpu" and ds.split_name == "train"
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (CHUNK, 1, 128, 128)
    assert ds.class_masks.shape == ds.instance_masks.shape == (CHUNK, 128, 128)
    assert ds.class_masks.dtype == ds.instance_masks.dtype == torch.uint8
    assert ds.boxes.dtype == torch.float32 and ds.boxes.shape == (CHUNK, 5, 4)
    assert ds.labels.dtype == ds.counts.dtype == ds.source_index.dtype == ds.sizes.dtype == torch.int64
    k = torch.arange(5)[None, :] < ds.counts[:, None]
    assert (
        ((ds.labels >= 0) == k).all() and ((ds.source_index >= 0) == k).all() and ((ds.sizes > 0) == k).all()
    )
    assert (ds.labels[~k] == -1).all() and (ds.boxes[~k] == 0).all()
    assert all(len(c) == NUM_CAPTIONS and len(set(c)) >= 5 for c in ds.captions)


def test_subset_split_float_images_and_targets(made):
    ds = made["scenes-seg"]
    sub = ds.subset([3, 1])
    assert len(sub) == 2 and torch.equal(sub.images[0], ds.images[3]) and sub.captions[1] == ds.captions[1]
    assert len(ds.subset(slice(0, 5))) == 5
    train, val = ds.split(0.25, seed=0)
    assert len(train) + len(val) == len(ds) and len(val) == 64
    x = ds.float_images([0, 2])
    assert x.dtype == torch.float32 and x.shape == (2, 1, 64, 84) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(x[1], ds.images[2].float() / 255)
    targets = ds.targets([0, 2], masks=True)
    for t, n in zip(targets, (0, 2), strict=True):
        k = int(ds.counts[n])
        assert t["boxes"].shape == (k, 4) and t["boxes"].dtype == torch.float32
        assert t["labels"].dtype == torch.int64 and torch.equal(t["labels"], ds.labels[n, :k])
        assert t["masks"].shape == (k, 64, 84) and t["masks"].dtype == torch.uint8
        assert torch.equal(
            (t["masks"] * torch.arange(1, k + 1)[:, None, None]).sum(0).byte(), ds.instance_masks[n]
        )
    assert len(ds.targets()) == len(ds) and "masks" not in ds.targets([1])[0]


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_scenes_other_seed_other_scenes(train_digits):
    a = generate_scenes("scenes-det", train_digits, "train", n=40, seed=5)
    b = generate_scenes("scenes-det", train_digits, "train", n=40, seed=5)
    c = generate_scenes("scenes-det", train_digits, "train", n=40, seed=6)
    assert all(torch.equal(a.tensors()[k], b.tensors()[k]) for k in a.tensors()) and a.captions == b.captions
    assert not torch.equal(a.images, c.images) and a.captions != c.captions


def test_first_scenes_do_not_depend_on_the_count(train_digits):
    small = generate_scenes("scenes-cap", train_digits, "train", n=10)
    big = generate_scenes("scenes-cap", train_digits, "train", n=CHUNK + 20)  # crosses a chunk boundary
    assert all(torch.equal(v, big.tensors()[k][:10]) for k, v in small.tensors().items())
    assert small.captions == big.captions[:10]
    assert not torch.equal(big.images[:20], big.images[CHUNK : CHUNK + 20])


def test_splits_use_different_streams(train_digits):
    train = generate_scenes("scenes-seg", train_digits, "train", n=20)
    val = generate_scenes("scenes-seg", train_digits, "val", n=20)
    assert not torch.equal(train.counts, val.counts) or not torch.equal(train.boxes, val.boxes)


# ---------------------------------------------------------------------------------------------
# boxes, masks and layout


@pytest.mark.parametrize("name", list(PRESETS))
def test_images_and_masks_are_the_recorded_digits_pasted_at_the_boxes(made, train_digits, name):
    ds = made[name]
    scenes = list(range(24))
    images, inst, cls = render(ds, train_digits, scenes)
    assert torch.equal(images, ds.images[scenes, 0]), "ink is the max over the digits"
    assert torch.equal(inst, ds.instance_masks[scenes]), "later digits own the overlapped pixels"
    assert torch.equal(cls, ds.class_masks[scenes])


@pytest.mark.parametrize("name", list(PRESETS))
def test_masks_agree_with_boxes_and_labels(made, name):
    ds, p = made[name], PRESETS[name]
    assert torch.equal(ds.images[:, 0] > 0, ds.instance_masks > 0), "every ink pixel belongs to one digit"
    for n in range(len(ds)):
        k = int(ds.counts[n])
        lut = torch.cat([torch.zeros(1, dtype=torch.long), ds.labels[n, :k] + 1])
        assert torch.equal(lut[ds.instance_masks[n].long()].byte(), ds.class_masks[n])
        assert int(ds.instance_masks[n].max()) == k
        boxes = ds.boxes[n, :k]
        for i in range(k):
            ys, xs = torch.nonzero(ds.instance_masks[n] == i + 1, as_tuple=True)
            mask_box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            x1, y1, x2, y2 = boxes[i]
            assert x1 <= mask_box[0] and y1 <= mask_box[1] and mask_box[2] <= x2 and mask_box[3] <= y2
            later = boxes[i + 1 :]
            covered = (
                (later[:, 0] < x2) & (later[:, 2] > x1) & (later[:, 1] < y2) & (later[:, 3] > y1)
            ).any()
            if p.max_iou == 0 or not covered:  # an unhidden digit's mask spans its box exactly
                assert torch.equal(mask_box, boxes[i]), (n, i)


@pytest.mark.parametrize("name", list(PRESETS))
def test_layout_rules(made, name):
    ds, p = made[name], PRESETS[name]
    assert int(ds.counts.min()) >= p.min_objects and int(ds.counts.max()) <= p.max_objects
    assert set(ds.counts.tolist()) >= {p.min_objects, min(p.max_objects, p.min_objects + 2)}
    k = torch.arange(p.max_objects)[None, :] < ds.counts[:, None]
    sizes = ds.sizes[k]
    assert int(sizes.min()) >= p.min_size and int(sizes.max()) <= p.max_size
    b = ds.boxes[k]
    assert (
        (b[:, 0] >= 0).all()
        and (b[:, 1] >= 0).all()
        and (b[:, 2] <= p.width).all()
        and (b[:, 3] <= p.height).all()
    )
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all() and torch.equal(b, b.round())
    assert ((b[:, 2] - b[:, 0]) <= sizes).all() and ((b[:, 3] - b[:, 1]) <= sizes).all()
    for n in range(len(ds)):
        bn = ds.boxes[n, : ds.counts[n]]
        off = ~torch.eye(len(bn), dtype=torch.bool)
        if p.max_iou > 0:
            assert (box_iou(bn, bn)[off] < p.max_iou).all()
        else:  # apart by at least `gap` pixels along x or along y
            dx = torch.maximum(bn[:, None, 0] - bn[None, :, 2], bn[None, :, 0] - bn[:, None, 2])
            dy = torch.maximum(bn[:, None, 1] - bn[None, :, 3], bn[None, :, 1] - bn[:, None, 3])
            assert (torch.maximum(dx, dy)[off] >= p.gap).all()


def test_overlapping_digits_take_the_max_of_the_ink(made):
    ds = made["scenes-det"]
    overlaps = 0
    for n in range(len(ds)):
        bn = ds.boxes[n, : ds.counts[n]]
        iou = box_iou(bn, bn)
        overlaps += int((iou.triu(1) > 0).sum())
    assert overlaps > 10, "scenes-det digits do overlap (rendering over overlaps is checked against render())"


def test_a_preset_that_cannot_fit_its_digits_is_an_error(train_digits):
    crowded = sc.ScenePreset("crowded", 40, 40, 4, 4, 36, 40, gap=2)
    with pytest.raises(sc.DataError, match="could not place 4 digits"):
        generate_scenes(crowded, train_digits, "train", n=4)
    with pytest.raises(sc.ConfigError, match="must fit"):
        sc.ScenePreset("big", 40, 40, 1, 2, 20, 50)


# ---------------------------------------------------------------------------------------------
# captions


@pytest.mark.parametrize("name", [*PRESETS, "test"])
def test_every_caption_parses_back_to_facts_true_of_its_scene(made, name):
    ds = made[name]
    forms = set()
    for n in range(len(ds)):
        k = int(ds.counts[n])
        for text in ds.captions[n]:
            meaning = parse_caption(text, ds.classes)
            forms.add(meaning.form)
            assert meaning_holds(meaning, ds.boxes[n, :k], ds.labels[n, :k]), (n, text)
    assert forms >= {"count", "order", "tally", "relation", "extreme"}


def test_fashion_scene_captions(train_digits):
    items = fake_digits(200, 3, name="fashion-mnist", classes=FASHION_SOURCE.classes)
    ds = generate_scenes("scenes-cap-fashion", items, "train", n=60)
    assert ds.name == "scenes-cap-fashion" and ds.source == "fashion-mnist"
    assert any("items:" in c for caps in ds.captions for c in caps)
    for n in range(len(ds)):
        k = int(ds.counts[n])
        assert all(caption_holds(t, ds.boxes[n, :k], ds.labels[n, :k], ds.classes) for t in ds.captions[n])


BOXES = [[0, 0, 10, 10], [20, 0, 30, 10], [22, 30, 28, 40]]  # a 3 left of a 7, and a 1 below the 7
LABELS = [3, 7, 1]


@pytest.mark.parametrize(
    "text, true",
    [
        ("three digits: 3, 7 and 1", True),
        ("three digits: 1, 3 and 7", True),  # a count caption names the multiset
        ("two digits: 3 and 7", False),
        ("from left to right: 3, 7 and 1", True),
        ("from left to right: 3, 1 and 7", True),  # 7 and 1 share cx = 25: either order
        ("from left to right: 7, 3 and 1", False),
        ("a 3, a 7 and a 1", True),
        ("two 3s and a 7", False),
        ("a 3", False),  # a tally is the whole scene
        ("a 3 to the left of a 7", True),
        ("There is a 7 right of a 3.", True),
        ("a 7 to the left of a 3", False),
        ("a 3 left of a 1", True),
        ("a 7 above a 1", True),
        ("a 1 below a 7", True),
        ("a 3 above a 1", True),
        ("a 1 above a 7", False),
        ("the leftmost digit is a 3", True),
        ("the bottommost digit is a 1", True),
        ("the topmost digit is a 1", False),
        ("there is a 7", True),
        ("there is a 9", False),
        ("a single 3", False),
        ("the only digit is a 3", False),
    ],
)
def test_caption_truth(text, true):
    assert caption_holds(text, BOXES, LABELS) is true


def test_parse_caption_meanings_and_rejections():
    assert parse_caption("two 3s and an 8") == CaptionMeaning("tally", (3, 3, 8), exhaustive=True)
    assert parse_caption("three digits: 3, 7 and 1") == CaptionMeaning(
        "count", (3, 7, 1), count=3, exhaustive=True
    )
    assert parse_caption("a 3 to the left of a 7").relation == (3, "left", 7)
    assert parse_caption("there is a 7 right of a 3").relation == (7, "right", 3)
    assert parse_caption("the topmost digit is a 4") == CaptionMeaning("extreme", (4,), extreme="topmost")
    assert parse_caption("a single 5") == parse_caption("the only digit is a 5")
    assert parse_caption("from left to right: 1, 2").ordered
    fashion = FASHION_SOURCE.classes
    m = parse_caption("there is an ankle boot left of a t-shirt/top", fashion)
    assert m.relation == (9, "left", 0)
    assert parse_caption("two shirts and a dress", fashion).labels == (6, 6, 3)
    for bad in ("a 3 next to a 7", "two digits: 3", "a 12", "", "the leftmost digit is 3", "three 3"):
        with pytest.raises(CaptionError):
            parse_caption(bad)
        assert not caption_holds(bad, BOXES, LABELS)


# ---------------------------------------------------------------------------------------------
# which digits each split uses


def test_train_val_test_digits_are_separate(train_digits, test_digits, made):
    train_pool, val_pool = digit_pools(len(train_digits))
    assert len(set(train_pool.tolist()) & set(val_pool.tolist())) == 0
    assert len(train_pool) + len(val_pool) == len(train_digits)
    train = made["scenes-det"]
    val = generate_scenes("scenes-det", train_digits, "val", n=CHUNK)
    used_train = set(train.source_index[train.source_index >= 0].tolist())
    used_val = set(val.source_index[val.source_index >= 0].tolist())
    assert used_train <= set(train_pool.tolist()) and used_val <= set(val_pool.tolist())
    assert train.source_split == val.source_split == "train" and made["test"].source_split == "test"
    test = made["test"]
    assert int(test.source_index.max()) < len(test_digits)
    images, _, _ = render(test, test_digits, range(10))  # the pixels are those of the test digits
    assert torch.equal(images, test.images[:10, 0])


@pytest.mark.mnist
def test_real_mnist_protocol(mnist_dir):
    pools = digit_pools(60_000)
    assert len(pools[1]) == 5000
    ds = {
        s: load_scenes("scenes-seg", s, n=60, data_dir=mnist_dir, cache=False)
        for s in ("train", "val", "test")
    }
    for split, pool in (("train", pools[0]), ("val", pools[1])):
        used = ds[split].source_index[ds[split].source_index >= 0]
        assert torch.isin(used, pool).all() and ds[split].source_split == "train"
    mnist_train = load_dataset("mnist", "train", data_dir=mnist_dir)
    mnist_test = load_dataset("mnist", "test", data_dir=mnist_dir)
    test = ds["test"]
    assert test.source_split == "test" and int(test.source_index.max()) < 10_000
    assert torch.equal(render(test, mnist_test, range(20))[0], test.images[:20, 0])
    assert render(test, mnist_train, range(20), strict=False) is None
    assert torch.equal(render(ds["val"], mnist_train, range(20))[0], ds["val"].images[:20, 0])
    for n in range(60):
        k = int(test.counts[n])
        labels = mnist_test.labels[test.source_index[n, :k]]
        assert torch.equal(labels, test.labels[n, :k])


@pytest.mark.mnist
def test_load_dataset_returns_scenes(mnist_dir, monkeypatch):
    monkeypatch.setitem(PRESETS, "scenes-cap", replace(PRESETS["scenes-cap"], train=12, test=7))
    ds = load_dataset("scenes-cap", "train")
    assert isinstance(ds, SceneDataset) and len(ds) == 12 and ds.image_shape == (1, 64, 64)
    assert len(load_dataset("scenes-cap", "test")) == 7
    fashion = load_dataset("scenes-cap-fashion", "test")
    assert fashion.classes == FASHION_SOURCE.classes and fashion.source == "fashion-mnist"


# ---------------------------------------------------------------------------------------------
# cache


def test_cache_hit_and_corrupt_entries_are_remade(train_digits, tmp_path, monkeypatch):
    first = load_scenes("scenes-seg", "train", n=30, digits=train_digits)
    root = sc.default_cache_dir() / "scenes"
    files = sorted(p.name for p in root.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    tensor_file = next(root.glob("*.safetensors"))
    json_file = next(root.glob("*.json"))
    meta = json.loads(json_file.read_text())
    assert meta["captions"] == [list(c) for c in first.captions]

    def boom(*a, **k):
        raise AssertionError("generated again")

    with monkeypatch.context() as m:
        m.setattr(sc, "generate_scenes", boom)
        hit = load_scenes("scenes-seg", "train", n=30, digits=train_digits)
    assert all(torch.equal(v, hit.tensors()[k]) for k, v in first.tensors().items())
    assert hit.captions == first.captions and hit.name == first.name

    good = tensor_file.read_bytes()
    for corrupt in (b"garbage", good[: len(good) // 2], good[:-1] + bytes([good[-1] ^ 1])):
        tensor_file.write_bytes(corrupt)
        again = load_scenes("scenes-seg", "train", n=30, digits=train_digits)
        assert all(torch.equal(v, again.tensors()[k]) for k, v in first.tensors().items())
        assert sc.read_scenes(tensor_file, json_file, meta["key"]) is not None, "the entry is whole again"
    json_file.write_text("{not json")
    assert load_scenes("scenes-seg", "train", n=30, digits=train_digits).captions == first.captions
    assert json.loads(json_file.read_text())["key"] == meta["key"]

    # another count, seed or source gets its own entry
    load_scenes("scenes-seg", "train", n=31, digits=train_digits)
    load_scenes("scenes-seg", "train", n=30, seed=1, digits=train_digits)
    load_scenes("scenes-seg", "train", n=30, digits=fake_digits(400, 9))
    assert len(list(root.glob("*.safetensors"))) == 4
    assert not list(root.glob("*.partial"))


def test_no_cache_reads_and_writes_nothing(train_digits):
    ds = load_scenes("scenes-cap", "val", n=5, digits=train_digits, cache=False)
    assert len(ds) == 5 and not (sc.default_cache_dir() / "scenes").exists()


def test_bad_names_and_arguments(train_digits):
    with pytest.raises(sc.ConfigError, match="unknown scene preset 'scenes-dte'; did you mean scenes-det"):
        load_scenes("scenes-dte", digits=train_digits)
    with pytest.raises(sc.ConfigError, match="unknown scene split"):
        load_scenes("scenes-det", "valid", digits=train_digits)
    with pytest.raises(sc.ConfigError, match="takes its digits from fashion-mnist"):
        load_scenes("scenes-det-fashion", source="mnist", digits=train_digits)
    with pytest.raises(sc.ConfigError, match="at least 1"):
        generate_scenes("scenes-det", train_digits, n=0)
    assert sc.resolve_preset("scenes-det-300-fashion")[:2] == (PRESETS["scenes-det-300"], "fashion-mnist")


# ---------------------------------------------------------------------------------------------
# pictures and the command line


def test_preview_picture_is_a_png(made, tmp_path):
    from deeper.analysis.scene_preview import draw_scenes

    path = tmp_path / "p.png"
    draw_scenes(
        [("det", made["scenes-det"].subset(range(3))), ("seg", made["scenes-seg"].subset(range(2)))], path
    )
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "scenes-nope", "-o", "x.png"], "unknown scene preset 'scenes-nope'"),
        (["--preset", "scenes-det", "-o", "x.jpg"], "must be a .png file"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    code, _, err = run(capsys, "scenes", "preview", *argv)
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_digits_is_one_line(tmp_path, capsys):
    code, _, err = run(
        capsys, "scenes", "preview", "--data-dir", str(tmp_path), "-o", str(tmp_path / "x.png")
    )
    assert code == 1 and "not found" in err and len(err.strip().splitlines()) == 1


def test_cli_needs_an_action(capsys):
    assert main(["scenes"]) == 2 and "deeper scenes: error:" in capsys.readouterr().err


@pytest.mark.mnist
def test_cli_preview_writes_the_first_scenes(mnist_dir, tmp_path, capsys):
    out = tmp_path / "cap.png"
    code, stdout, _ = run(
        capsys, "scenes", "preview", "--preset", "scenes-cap", "--n", "3", "-o", str(out), "--json"
    )
    assert code == 0
    result = json.loads(stdout.strip().splitlines()[-1])
    with Image.open(out) as im:
        im.verify()
    ds = load_scenes("scenes-cap", "train", n=3, cache=False)
    assert result["scenes"] == 3 and result["presets"][0]["captions"] == [list(c) for c in ds.captions]
