"""MovieLens: each release's format, the local path, the cache, and the checked download (from a
server on 127.0.0.1: tests never reach the network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latentmf import datasets

from conftest import ML100K

ROWS = [(3, 10, 4.0, 100), (1, 10, 3.5, 50), (3, 7, 1.0, 60)]


def _check_rows(ratings):
    assert len(ratings) == 3 and ratings.values.dtype == np.float32
    assert ratings.user_ids.to_ids(ratings.users).tolist() == [3, 1, 3]
    assert ratings.item_ids.to_ids(ratings.items).tolist() == [10, 10, 7]
    assert ratings.values.tolist() == [4.0, 3.5, 1.0] and ratings.timestamps.tolist() == [100, 50, 60]


def _release_text(release):
    """ROWS in the release's format ("::" or CSV; the tab-separated 100k is read from the real file)."""
    if release.format == "::":
        return "".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in ROWS)
    return "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:g},{t}\n" for u, i, r, t in ROWS)


@pytest.mark.parametrize("name", ["1m", "ml-10m", "20m", "latest-small"])
def test_each_release_format_is_parsed_from_a_local_path(tmp_path, name):
    release = datasets.MOVIELENS_RELEASES[name.removeprefix("ml-")]
    folder = tmp_path / release.folder
    folder.mkdir()
    (folder / release.ratings).write_text(_release_text(release))
    _check_rows(datasets.load_movielens(name, path=folder))
    _check_rows(datasets.load_movielens(name, path=tmp_path))  # the folder that holds the release


def test_movielens_100k_from_the_shared_data():
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    ratings = datasets.load_movielens("100k", path=ML100K)
    assert (len(ratings), ratings.n_users, ratings.n_items) == (100_000, 943, 1682)
    assert ratings.user_ids.ids.tolist() == list(range(1, 944)) and ratings.item_ids.ids[-1] == 1682
    assert ratings.mean == pytest.approx(3.52986)
    assert ratings.timestamps.min() == 874724710 and ratings.timestamps.max() == 893286638
    table = np.loadtxt(ML100K / "u.data", dtype=np.int64)
    np.testing.assert_array_equal(ratings.user_ids.to_ids(ratings.users), table[:, 0])
    train, test = ratings.split_by_time(1)
    assert len(test) == 943
    same = datasets.load_movielens("ml-100k", cache_dir=ML100K.parent, download=False)
    np.testing.assert_array_equal(same.values, ratings.values)


def test_bad_names_and_missing_data(tmp_path):
    with pytest.raises(ValueError, match="name must be one of '100k'"):
        datasets.load_movielens("5k")
    with pytest.raises(FileNotFoundError, match="no u.data of MovieLens 100k"):
        datasets.load_movielens("100k", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load_movielens("100k", cache_dir=tmp_path, download=False)


def _zip_release(release):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(f"{release.folder}/{release.ratings}", _release_text(release))
        bundle.writestr(f"{release.folder}/README", "test release")
    return buffer.getvalue()


@pytest.fixture
def server():
    """A file server on 127.0.0.1 for the test's files: {url path: bytes}; records the requests."""
    files, requests = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/movielens/", files, requests
    httpd.shutdown()
    httpd.server_close()


def _serve(monkeypatch, server, name, checksum="sha256"):
    url, files, requests = server
    release = datasets.MOVIELENS_RELEASES[name]
    payload = _zip_release(release)
    if checksum == "sha256":
        release = release._replace(sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    else:
        release = release._replace(sha256=None, size=None)
        files[f"/movielens/{release.archive}.md5"] = f"MD5 ({release.archive}) = {checksum}\n".encode()
    files[f"/movielens/{release.archive}"] = payload
    monkeypatch.setattr(datasets, "MOVIELENS_URL", url)
    monkeypatch.setitem(datasets.MOVIELENS_RELEASES, name, release)
    return payload, requests


def test_download_checks_unpacks_and_caches(tmp_path, monkeypatch, server):
    _, requests = _serve(monkeypatch, server, "1m")
    monkeypatch.setenv("LATENTMF_DATA", str(tmp_path / "cache"))
    _check_rows(datasets.load_movielens("1m"))
    assert requests == ["/movielens/ml-1m.zip"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ml-1m"]
    assert (tmp_path / "cache" / "ml-1m" / "README").read_text() == "test release"
    _check_rows(datasets.load_movielens("1m"))  # from the cache, without a request
    assert len(requests) == 1


def test_download_verifies_the_published_md5_when_no_sha256_is_pinned(tmp_path, monkeypatch, server):
    payload = _zip_release(datasets.MOVIELENS_RELEASES["10m"])
    _, requests = _serve(monkeypatch, server, "10m", checksum=hashlib.md5(payload).hexdigest())
    _check_rows(datasets.load_movielens("10m", cache_dir=tmp_path))
    assert requests == ["/movielens/ml-10m.zip", "/movielens/ml-10m.zip.md5"]


@pytest.mark.parametrize("checksum", ["sha256", "0" * 32])
def test_a_damaged_download_is_refused_and_leaves_nothing(tmp_path, monkeypatch, server, checksum):
    _serve(monkeypatch, server, "latest-small", checksum=checksum)
    if checksum == "sha256":
        release = datasets.MOVIELENS_RELEASES["latest-small"]
        monkeypatch.setitem(datasets.MOVIELENS_RELEASES, "latest-small", release._replace(sha256="f" * 64))
    with pytest.raises(ValueError, match="does not match"):
        datasets.load_movielens("latest-small", cache_dir=tmp_path)
    assert list(Path(tmp_path).iterdir()) == []
