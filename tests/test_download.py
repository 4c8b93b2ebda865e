"""Downloads over a real HTTP transport (a server on loopback): checksums, mirrors, atomicity."""

import hashlib

import pytest

from deeper.data.download import RemoteFile, fetch
from deeper.errors import DownloadError
from tests.http_server import LocalServer

PAYLOAD = b"the real file content\n" * 100
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("DEEPER_OFFLINE", raising=False)
    with LocalServer() as s:
        yield s


def remote(server, *paths):
    return RemoteFile("file.bin", tuple(server.url + p for p in paths), MD5)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_mirror_downloads_and_verifies(server, tmp_path):
    server.routes["/a/file.bin"] = (200, PAYLOAD, None)
    path = fetch(remote(server, "/a/file.bin"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["file.bin"]


def test_checksum_mismatch_deletes_and_tries_next_mirror(server, tmp_path):
    server.routes["/bad/file.bin"] = (200, PAYLOAD[:-1] + b"X", None)
    server.routes["/good/file.bin"] = (200, PAYLOAD, None)
    path = fetch(remote(server, "/missing/file.bin", "/bad/file.bin", "/good/file.bin"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.hits == ["/missing/file.bin", "/bad/file.bin", "/good/file.bin"]
    assert leftovers(tmp_path) == ["file.bin"]


def test_all_mirrors_failing_is_one_clear_error_and_leaves_nothing(server, tmp_path):
    server.routes["/bad/file.bin"] = (200, b"corrupt", None)
    with pytest.raises(DownloadError) as err:
        fetch(remote(server, "/missing/file.bin", "/bad/file.bin"), tmp_path)
    msg = str(err.value)
    assert "2 mirror(s)" in msg and "404" in msg and "does not match" in msg
    assert leftovers(tmp_path) == []


def test_connection_closed_early_never_leaves_a_partial_file(server, tmp_path):
    server.routes["/short/file.bin"] = (200, PAYLOAD[:100], len(PAYLOAD))  # promises more than it sends
    with pytest.raises(DownloadError):
        fetch(remote(server, "/short/file.bin"), tmp_path)
    assert leftovers(tmp_path) == []


def test_corrupt_cached_file_is_fetched_again(server, tmp_path):
    (tmp_path / "file.bin").write_bytes(b"stale and corrupt")
    server.routes["/a/file.bin"] = (200, PAYLOAD, None)
    assert fetch(remote(server, "/a/file.bin"), tmp_path).read_bytes() == PAYLOAD
    assert server.hits == ["/a/file.bin"]


def test_valid_cached_file_is_not_downloaded_again(server, tmp_path):
    (tmp_path / "file.bin").write_bytes(PAYLOAD)
    fetch(remote(server, "/a/file.bin"), tmp_path)
    assert server.hits == []


def test_offline_mode_refuses_to_download(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPER_OFFLINE", "1")
    server.routes["/a/file.bin"] = (200, PAYLOAD, None)
    with pytest.raises(DownloadError, match="DEEPER_OFFLINE"):
        fetch(remote(server, "/a/file.bin"), tmp_path)
    assert server.hits == []


def test_unreachable_host_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPER_OFFLINE", raising=False)
    r = RemoteFile("file.bin", ("http://127.0.0.1:9/file.bin",), MD5)  # port 9: nothing listens
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        fetch(r, tmp_path, timeout=5)
