"""A strict reader for the IDX format of MNIST and Fashion-MNIST.

Layout (all integers big-endian): two zero bytes, one type byte, one byte with
the number of dimensions ``d``, ``d`` unsigned 32-bit sizes, then the values.
Anything else (wrong magic, unknown or unexpected type, wrong rank or sizes,
a truncated body, trailing bytes) is a :class:`~deeper.errors.DataError` whose
message names the file.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from deeper.errors import DataError

#: IDX type byte -> NumPy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {dt: code for code, dt in IDX_DTYPES.items()}


def parse_idx(
    data: bytes,
    name: str,
    *,
    dtype: np.dtype | type | None = None,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """Parse IDX bytes into an array, checking every field.

    ``name`` is used in error messages.  ``dtype``, ``ndim`` and ``shape`` (``None``
    entries match any size) state what the caller expects.
    """
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes, the header needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (magic starts with {data[0]:#04x} {data[1]:#04x}, expected 0x00 0x00)"
        )
    code, rank = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{name}: unknown IDX type code {code:#04x}")
    found = IDX_DTYPES[code]
    if dtype is not None and found.newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        big = np.dtype(dtype) if np.dtype(dtype).itemsize == 1 else np.dtype(dtype).newbyteorder(">")
        want = _DTYPE_CODES.get(big)
        want_s = f"{want:#04x}" if want is not None else str(np.dtype(dtype))
        raise DataError(f"{name}: IDX type code {code:#04x} ({found}), expected {want_s} ({np.dtype(dtype)})")
    if rank == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    expected_rank = len(shape) if shape is not None else ndim
    if expected_rank is not None and rank != expected_rank:
        raise DataError(f"{name}: IDX file has {rank} dimensions, expected {expected_rank}")
    header = 4 + 4 * rank
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, the header needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=rank, offset=4))
    if shape is not None:
        for axis, (got, want) in enumerate(zip(dims, shape)):
            if want is not None and got != want:
                raise DataError(f"{name}: dimension {axis} is {got}, expected {want} (shape {dims})")
    count = int(np.prod(dims, dtype=np.int64))
    body = len(data) - header
    need = count * found.itemsize
    if body < need:
        raise DataError(f"{name}: truncated: shape {dims} needs {need} bytes of data, file has {body}")
    if body > need:
        raise DataError(
            f"{name}: {body - need} unexpected trailing bytes after the {need} bytes of data for shape {dims}"
        )
    arr = np.frombuffer(data, dtype=found, count=count, offset=header).reshape(dims)
    return arr.astype(found.newbyteorder("="), copy=True)


#: without a stated size, no data file may hold (or inflate to) more than this
DEFAULT_MAX_BYTES = 1 << 30


def read_maybe_gzip(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, decompressed when it is gzip (told by its magic, not its name).

    Nothing larger than ``max_bytes`` (default 1 GiB) is ever held: a plain file's size is checked
    before it is read (a sparse file claiming 40 GB is refused at once), and gzip data is inflated in
    chunks and refused as soon as it grows past the limit (a gzip bomb never reaches memory).
    """
    path = Path(path)
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                fh.seek(0)
                return _inflate(fh, path, limit)
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise DataError(
                    f"{path}: {size:,} bytes, more than the {limit:,} expected; refusing to read it"
                )
            fh.seek(0)
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a data file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def _inflate(fh, path: Path, limit: int) -> bytes:
    out, total = [], 0
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    try:
        while chunk := fh.read(1 << 20):
            while chunk:
                piece = d.decompress(chunk, max(1, limit + 1 - total))
                total += len(piece)
                if total > limit:
                    raise DataError(
                        f"{path}: gzip data inflates to more than the {limit:,} bytes expected; refusing it"
                    )
                out.append(piece)
                chunk = d.unconsumed_tail
            if d.eof:
                if d.unused_data.strip(b"\x00"):  # a second gzip member: read as gzip.decompress would
                    rest = d.unused_data + fh.read()
                    return b"".join(out) + _inflate_bytes(rest, path, limit - total)
                break
        if not d.eof:
            raise DataError(f"{path}: corrupt gzip data (truncated)")
    except zlib.error as e:
        raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return b"".join(out)


def _inflate_bytes(data: bytes, path: Path, limit: int) -> bytes:
    import io

    return _inflate(io.BytesIO(data), path, limit)


def expected_size(dtype, shape: tuple[int, ...]) -> int:
    """Bytes of an IDX file holding ``shape`` values of ``dtype`` (header included)."""
    return 4 + 4 * len(shape) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def read_idx(path: str | os.PathLike, **expect) -> np.ndarray:
    """Read an IDX file (plain or gzipped) with the checks of :func:`parse_idx`; when ``dtype`` and a full
    ``shape`` are expected, nothing larger than that file is read."""
    shape, dtype = expect.get("shape"), expect.get("dtype")
    known = shape is not None and dtype is not None and None not in shape
    return parse_idx(
        read_maybe_gzip(path, expected_size(dtype, shape) if known else None), str(path), **expect
    )


def encode_idx(arr: np.ndarray) -> bytes:
    """The IDX bytes of ``arr`` (the inverse of :func:`parse_idx`; used to write test fixtures)."""
    dt = np.dtype(arr.dtype)
    big = dt if dt.itemsize == 1 else dt.newbyteorder(">")
    if big not in _DTYPE_CODES:
        raise ValueError(f"IDX cannot store dtype {dt}")
    header = bytes([0, 0, _DTYPE_CODES[big], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=big).tobytes()
