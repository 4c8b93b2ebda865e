import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch

from deeper.data import (
    BatchLoader,
    DataSources,
    ImageDataset,
    get_dataset_spec,
    list_datasets,
    load_dataset,
)
from deeper.data.cifar import RECORD, CifarBinarySource
from deeper.data.download import RemoteFile
from deeper.data.idx import encode_idx
from deeper.data.mnist import MNIST_SOURCE, IdxSource
from deeper.data.registry import DatasetSpec, register_dataset
from deeper.errors import ChecksumError, ConfigError, DataError
from tests.conftest import write_fake_mnist
from tests.http_server import LocalServer


def test_registry_lists_the_required_datasets():
    assert {"mnist", "fashion-mnist", "cifar10", "digits"} <= set(list_datasets())
    assert list_datasets("*mnist") == ["fashion-mnist", "mnist"]


def test_unknown_dataset_suggests_a_close_name():
    with pytest.raises(ConfigError, match="did you mean mnist"):
        get_dataset_spec("mnsit")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(get_dataset_spec("mnist"))


def test_missing_offline_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        DataSources.resolve(tmp_path / "nope")


def test_env_var_selects_the_offline_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPER_DATA", str(tmp_path))
    assert DataSources.resolve().offline_dir == tmp_path
    other = tmp_path / "x"
    other.mkdir()
    assert DataSources.resolve(other).offline_dir == other  # the flag wins over the variable


def test_offline_files_are_checked_against_the_published_checksums(tmp_path):
    write_fake_mnist(tmp_path)  # right format, wrong content
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz: content MD5"):
        load_dataset("mnist", data_dir=tmp_path)
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()  # the user's file is never deleted


def test_missing_dataset_without_network_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="not found.*looked for.*mnist/train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)


def _fake_source(arrays, **kw) -> IdxSource:
    md5 = {name: hashlib.md5(encode_idx(a)).hexdigest() for name, a in arrays.items()}
    return IdxSource(
        "fake",
        "fake",
        kw.pop("mirrors", ()),
        kw.pop("gz_md5", {}),
        md5,
        tuple("0123456789"),
        {"train": len(arrays["train-labels-idx1-ubyte"]), "test": len(arrays["t10k-labels-idx1-ubyte"])},
    )


@pytest.mark.parametrize("gz", [True, False])
def test_offline_dir_with_plain_or_gzipped_files(tmp_path, gz):
    arrays = write_fake_mnist(tmp_path, folder="fake", gz=gz)
    src = _fake_source(arrays)
    ds = src.load("train", DataSources(offline_dir=tmp_path, cache_dir=tmp_path / "cache"))
    assert ds.images.shape == (60, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert ds.labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert src.locate(DataSources(offline_dir=tmp_path, cache_dir=tmp_path / "c")).startswith("offline:")


def test_corrupt_cache_entry_is_downloaded_again(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPER_OFFLINE")
    arrays = write_fake_mnist(tmp_path / "upstream", folder="fake")
    cache = tmp_path / "cache"
    with LocalServer() as server:
        gz_md5 = {}
        for f in (tmp_path / "upstream" / "fake").iterdir():
            server.routes[f"/m/{f.name}"] = (200, f.read_bytes(), None)
            gz_md5[f.name] = hashlib.md5(f.read_bytes()).hexdigest()
        src = _fake_source(arrays, mirrors=(server.url + "/m/",), gz_md5=gz_md5)
        sources = DataSources(offline_dir=None, cache_dir=cache)
        src.load("test", sources)
        assert len(server.hits) == 2  # images + labels
        # damage the cached images: same size, different bytes
        cached = cache / "fake" / "t10k-images-idx3-ubyte.gz"
        cached.write_bytes(gzip.compress(b"\0\0\x08\x03" + bytes(12)))
        ds = src.load("test", sources)
        assert server.hits.count("/m/t10k-images-idx3-ubyte.gz") == 2
        assert torch.equal(ds.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))


@pytest.mark.mnist
def test_real_mnist_matches_the_published_label_counts(mnist_dir):
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert train.class_counts() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test.class_counts() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert MNIST_SOURCE.locate(DataSources.resolve()).startswith("offline:")


@pytest.mark.mnist
def test_real_fashion_mnist_loads(mnist_dir):
    ds = load_dataset("fashion-mnist", "test")
    assert len(ds) == 10000 and ds.class_counts() == [1000] * 10
    assert ds.classes[9] == "Ankle boot"


def test_digits_is_offline_mnist_shaped_and_stable():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1437, 1, 28, 28) and test.images.shape == (360, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    # the 4-pixel MNIST margin is empty, the digit box is not
    assert int(train.images[:, :, :4].max()) == 0 and int(train.images[:, :, :, -4:].max()) == 0
    assert min(test.class_counts()) >= 35
    assert torch.equal(load_dataset("digits", "test").images, test.images)


def _cifar_records():
    recs = (np.arange(10000 * RECORD, dtype=np.int64) % 251).astype(np.uint8).reshape(10000, RECORD)
    recs[:, 0] = np.arange(10000) % 10
    return recs


def test_cifar_binary_archive_and_extracted_files(tmp_path, monkeypatch):
    recs = _cifar_records()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name in [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ]:
            data = recs.tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buf.getvalue()
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").write_bytes(archive)
    src = CifarBinarySource(RemoteFile("cifar-10-binary.tar.gz", (), hashlib.md5(archive).hexdigest()))
    sources = DataSources(offline_dir=tmp_path, cache_dir=tmp_path / "cache")
    test = src.load("test", sources)
    assert test.images.shape == (10000, 3, 32, 32)
    assert torch.equal(test.images[5, :, 0, 0], torch.from_numpy(recs[5, [1, 1025, 2049]]))  # R, G, B planes
    assert len(src.load("train", sources)) == 50000
    # a wrong checksum on the user's archive is reported, not deleted
    bad = CifarBinarySource(RemoteFile("cifar-10-binary.tar.gz", (), "0" * 32))
    with pytest.raises(ChecksumError):
        bad.load("test", sources)
    # extracted files are used directly, and their size is checked
    (tmp_path / "cifar10" / "test_batch.bin").write_bytes(recs.tobytes()[:-1])
    with pytest.raises(DataError, match="test_batch.bin: 30729999 bytes"):
        src.load("test", sources)


def test_split_is_disjoint_fixed_and_independent_of_training_seed():
    ds = load_dataset("digits", "train")
    tr, va = ds.split(100, seed=0)
    assert len(tr) == len(ds) - 100 and len(va) == 100
    tr2, va2 = ds.split(100, seed=0)
    assert torch.equal(va.images, va2.images)
    key = lambda d: {bytes(im.numpy().tobytes()) for im in d.images}  # noqa: E731
    assert not key(tr) & key(va)
    tr3, va3 = ds.split(0.25, seed=1)
    assert len(va3) == round(0.25 * len(ds)) and not torch.equal(va3.images[:100], va.images)
    with pytest.raises(ConfigError):
        ds.split(len(ds))


def test_dataset_validates_its_tensors():
    with pytest.raises(DataError, match="uint8"):
        ImageDataset("x", torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ("a",))
    with pytest.raises(DataError, match="labels"):
        ImageDataset(
            "x", torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ("a",)
        )


def _toy(n=103):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageDataset("toy", images, torch.arange(n) % 3, ("a", "b", "c"))


def test_loader_visits_every_image_once_per_epoch_in_a_seeded_order():
    loader = BatchLoader(_toy(), 10, shuffle=True, seed=7)
    assert len(loader) == 11
    seen = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in loader])
    assert sorted(seen.tolist()) == list(range(103))
    again = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in loader])
    assert torch.equal(seen, again)  # same epoch, same order
    loader.set_epoch(1)
    assert not torch.equal(loader.order(1), loader.order(0))
    assert not torch.equal(BatchLoader(_toy(), 10, shuffle=True, seed=8).order(0), loader.order(0))


def test_loader_batches_are_float_in_unit_range_with_matching_labels():
    ds = _toy()
    x, y = next(iter(BatchLoader(ds, 16, shuffle=True)))
    assert x.dtype == torch.float32 and x.shape == (16, 1, 2, 2) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(y, (x[:, 0, 0, 0] * 255).round().long() % 3)


def test_loader_resumes_mid_epoch_by_skipping_batches():
    loader = BatchLoader(_toy(), 10, shuffle=True, seed=3)
    loader.set_epoch(2)
    full = [x for x, _ in loader]
    loader.set_epoch(2, skip_batches=4)
    rest = [x for x, _ in loader]
    assert len(rest) == len(full) - 4 and all(torch.equal(a, b) for a, b in zip(full[4:], rest))


def test_loader_shards_for_data_parallel_ranks():
    orders = [BatchLoader(_toy(), 10, shuffle=True, rank=r, world_size=2).order(0) for r in range(2)]
    assert len(orders[0]) == len(orders[1]) == 52
    assert set(orders[0].tolist()) | set(orders[1].tolist()) == set(range(103))


def test_loader_drop_last_and_transform_hook():
    calls = []

    def flip(x, y):
        calls.append(x.shape[0])
        return x.flip(-1), y

    loader = BatchLoader(_toy(), 10, drop_last=True, transform=flip)
    assert len(loader) == 10 and sum(1 for _ in loader) == 10 and calls == [10] * 10


def test_loader_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        BatchLoader(_toy(), 0)
    with pytest.raises(ConfigError):
        BatchLoader(_toy(), 4, rank=2, world_size=2)


def test_spec_shape_is_enforced(tmp_path):
    class Wrong:
        def load(self, split, sources):
            return ImageDataset(
                "w", torch.zeros(1, 1, 5, 5, dtype=torch.uint8), torch.zeros(1, dtype=torch.long), ("a",)
            )

        def locate(self, sources):
            return "here"

    register_dataset(DatasetSpec("wrong-shape-test", "", (1, 28, 28), ("a",), Wrong()))
    with pytest.raises(DataError, match="expected"):
        load_dataset("wrong-shape-test")
