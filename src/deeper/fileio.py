"""Crash-safe file writing, run-folder locks and checksums.

A file written with :func:`atomic_write` is either the complete new content or
whatever was there before: the bytes go to a temporary file in the same folder,
are flushed to disk, and only then renamed over the target (``os.replace`` is
atomic on POSIX and Windows).  The new file gets the permissions the user's
umask gives any new file (not the temporary file's 0600); an error names the
target, never the temporary file; temporary files a killed writer left behind
are removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the permissions of a new file under the process's umask (read once: os.umask can only be read by setting it)
NEW_FILE_MODE = 0o666 & ~_umask()


def remove_stale_partials(path: str | os.PathLike) -> None:
    """Delete the temporary files of earlier, killed writes of ``path`` (never one a live process writes:
    its name carries the writer's pid)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        pid = stale.name[len(path.name) + 2 :].split(".", 1)[0]
        if not (pid.isdigit() and _alive(int(pid))):
            with contextlib.suppress(OSError):
                stale.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:
            raise type(e)(
                e.errno, e.strerror, str(path)
            ) from None  # name the user's file, not the temporary one
        raise


class RunLock:
    """An exclusive lock on a run folder while one process writes into it (``fcntl.flock`` on ``.lock``).

    A second writer is refused at once with a message naming the holder; the kernel drops the lock
    when its process ends, however it ends, so a killed run never leaves a stale lock behind.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        from deeper.errors import ConfigError

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"{self.folder} is being written by {holder}; wait for it to end or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def bytes_digest(data: bytes, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    h.update(data)
    return h.hexdigest()
