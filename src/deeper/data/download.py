"""Checksummed downloads with mirrors.

torchvision's ``download_url`` writes straight to the final path and leaves a
corrupt file there when the checksum fails; this module adds what it lacks:
bytes stream into a temporary file beside the target, the MD5 is checked before
the rename, each mirror is tried in turn, and a corrupt file already in the cache
is detected and fetched again.  The transport is :func:`urllib.request.urlopen`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from deeper.errors import ChecksumError, DownloadError
from deeper.fileio import atomic_write, file_digest

USER_AGENT = "deeper/0.1 (+https://pypi.org/project/deeper)"
CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file published at one or more URLs, with the MD5 of its bytes as served."""

    filename: str
    urls: tuple[str, ...]
    md5: str | None = None

    @classmethod
    def from_mirrors(cls, filename: str, mirrors: list[str] | tuple[str, ...], md5: str | None):
        return cls(filename, tuple(m.rstrip("/") + "/" + filename for m in mirrors), md5)


def downloads_disabled() -> bool:
    return os.environ.get("DEEPER_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def fetch(remote: RemoteFile, dest_dir: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Return a verified local copy of ``remote`` in ``dest_dir``, downloading it if needed."""
    dest_dir = Path(dest_dir)
    final = dest_dir / remote.filename
    if final.exists():
        if remote.md5 is None or file_digest(final, "md5") == remote.md5:
            return final
        print(f"deeper: {final} fails its checksum; fetching it again", file=sys.stderr)
        final.unlink()
    if downloads_disabled():
        raise DownloadError(f"{remote.filename} is not available locally and DEEPER_OFFLINE is set")
    failures = []
    for url in remote.urls:
        try:
            _download(url, final, remote.md5, timeout)
            return final
        except ChecksumError as e:
            failures.append(f"{url}: {e}")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
    raise DownloadError(
        f"could not download {remote.filename} from any of {len(remote.urls)} mirror(s): "
        + "; ".join(failures)
    )


def _download(url: str, final: Path, md5: str | None, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.length
        digest = hashlib.md5(usedforsecurity=False)
        with (
            atomic_write(final, "wb") as fh,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=final.name,
                disable=None,
                leave=False,
                file=sys.stderr,
            ) as bar,
        ):
            received = 0
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            if total is not None and received != total:
                raise ChecksumError(f"connection closed after {received} of {total} bytes")
            if md5 is not None and digest.hexdigest() != md5:
                raise ChecksumError(f"MD5 {digest.hexdigest()} does not match the published {md5}")
