import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeper.data.idx import encode_idx, parse_idx, read_idx
from deeper.errors import DataError


def test_roundtrip_uint8_images():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = parse_idx(encode_idx(arr), "x", dtype=np.uint8, shape=(None, 3, 4))
    assert out.dtype == np.uint8 and np.array_equal(out, arr)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_roundtrip_every_idx_type(dtype):
    arr = (np.arange(12) - 5).astype(dtype).reshape(3, 4)
    out = parse_idx(encode_idx(arr), "x")
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, arr)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x01" + b[1:], "magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type"),
        (lambda b: b[:2] + b"\x0c" + b[3:], "type code 0x0c"),
        (lambda b: b[:3] + b"\x02" + b[4:], "dimensions, expected 3"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b[:3], "only 3 bytes"),
    ],
)
def test_malformed_files_name_the_file(mutate, message):
    good = encode_idx(np.zeros((2, 3, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=message) as err:
        parse_idx(mutate(good), "data/train-images", dtype=np.uint8, ndim=3)
    assert str(err.value).startswith("data/train-images:")


def test_wrong_count_and_size_are_reported():
    data = encode_idx(np.zeros((5, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="dimension 0 is 5, expected 6"):
        parse_idx(data, "f", shape=(6, 28, 28))
    with pytest.raises(DataError, match="dimension 2 is 28, expected 32"):
        parse_idx(data, "f", shape=(None, 28, 32))


def test_read_idx_plain_and_gzip(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    (tmp_path / "a").write_bytes(encode_idx(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(encode_idx(arr)))
    assert np.array_equal(read_idx(tmp_path / "a"), arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_corrupt_gzip_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(encode_idx(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(DataError, match=str(bad)):
        read_idx(bad)
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "missing")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes_only_raise_data_errors(data):
    try:
        out = parse_idx(data, "fuzz")
    except DataError as e:
        assert str(e).startswith("fuzz:")
    else:  # whatever parses must be exactly consistent with its header
        assert 4 + 4 * out.ndim + out.nbytes == len(data)


_arrays = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)).flatmap(
    lambda s: st.lists(st.integers(0, 255), min_size=s[0] * s[1] * s[2], max_size=s[0] * s[1] * s[2]).map(
        lambda v: np.array(v, dtype=np.uint8).reshape(s)
    )
)


@settings(max_examples=200, deadline=None)
@given(_arrays, st.integers(0, 10_000), st.sampled_from(["truncate", "append", "flip"]))
def test_fuzz_mutations_of_valid_files_are_caught(arr, where, how):
    data = bytearray(encode_idx(arr))
    if how == "truncate":
        data = data[: where % len(data)]
    elif how == "append":
        data += bytes([where % 256]) * (1 + where % 7)
    else:  # flip a header byte: magic, type, rank or a dimension
        pos = where % (4 + 4 * arr.ndim)
        data[pos] ^= 0xFF
    with pytest.raises(DataError, match="^f:"):
        parse_idx(bytes(data), "f", dtype=np.uint8, shape=arr.shape)
