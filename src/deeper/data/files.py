"""Finding a dataset's files in the offline directory or the cache, and fetching them."""

from __future__ import annotations

from pathlib import Path

from deeper.data.download import RemoteFile, downloads_disabled, fetch
from deeper.data.idx import read_maybe_gzip
from deeper.data.registry import DataSources
from deeper.errors import ChecksumError, DataError
from deeper.fileio import bytes_digest


def find_local(sources: DataSources, folder: str, names: list[str]) -> tuple[str, Path] | None:
    """The first existing ``<root>/<folder>/<name>`` over the roots, as ``(kind, path)``."""
    for kind, root in sources.roots():
        for name in names:
            path = root / folder / name
            if path.is_file():
                return kind, path
    return None


def searched(sources: DataSources, folder: str, names: list[str]) -> str:
    return ", ".join(
        str(root / folder / names[0]) + ("[.gz]" if len(names) > 1 else "") for _, root in sources.roots()
    )


def read_content(
    sources: DataSources,
    folder: str,
    basename: str,
    content_md5: str | None,
    remote: RemoteFile | None,
    max_bytes: int | None = None,
) -> bytes:
    """The decompressed bytes of ``basename`` (stored plain or as ``basename.gz``).

    Looks in the offline directory, then the cache; downloads ``remote`` into the
    cache when neither has it.  ``content_md5`` is checked on the decompressed
    bytes, so a re-compressed ``.gz`` is accepted.  A corrupt file in the cache is
    deleted and fetched again; a corrupt file in the user's offline directory is an
    error (we never delete the user's files).  Nothing larger than ``max_bytes`` is read or inflated.
    """
    names = [basename, basename + ".gz"]
    for kind, root in sources.roots():
        for name in names:
            path = root / folder / name
            if not path.is_file():
                continue
            data = read_maybe_gzip(path, max_bytes)
            if content_md5 is None or bytes_digest(data) == content_md5:
                return data
            if kind == "offline":
                raise ChecksumError(
                    f"{path}: content MD5 {bytes_digest(data)} does not match the published {content_md5}"
                )
            path.unlink()  # corrupt cache entry: fetch it again below
    if remote is None or not sources.download or downloads_disabled():
        raise DataError(
            f"{basename} not found (looked for {searched(sources, folder, names)}); "
            "point --data-dir or DEEPER_DATA at a folder holding it"
            + ("" if remote is None else ", or allow downloads")
        )
    path = fetch(remote, sources.cache_dir / folder)
    data = read_maybe_gzip(path, max_bytes)
    if content_md5 is not None and bytes_digest(data) != content_md5:
        path.unlink()
        raise ChecksumError(f"{path}: downloaded file decompresses to content with the wrong MD5")
    return data


def describe_location(sources: DataSources, folder: str, names: list[str], remote_urls: list[str]) -> str:
    found = find_local(sources, folder, names)
    if found is not None:
        kind, path = found
        return f"{kind}: {path.parent}"
    if remote_urls:
        host = remote_urls[0].split("/")[2] if "://" in remote_urls[0] else remote_urls[0]
        return f"not present; downloads from {host}" + (
            f" (+{len(remote_urls) - 1} mirror)" if len(remote_urls) > 1 else ""
        )
    return "not present"
