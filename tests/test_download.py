"""The AG News download path, against a local HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from classiformer.data import DownloadError, fetch
from classiformer.data.builtin import AG_NEWS, BuiltinDataset, RemoteFile, load_builtin

GOOD = b'"1","Vote","Election today"\n"2","Goal","Late winner"\n"3","Oil","Prices up"\n"4","Chip","Faster"\n'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):  # keep test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ag_news_csv/", root
    httpd.shutdown()


def dataset_with(md5: str) -> BuiltinDataset:
    return BuiltinDataset(
        name="ag_news", files={"test": RemoteFile("test.csv", md5)}, mirrors=(), mirrors_env="NO_SUCH_ENV",
        columns=AG_NEWS.columns, citation="",
    )


def test_download_verifies_and_caches(server, tmp_path: Path) -> None:
    base, root = server
    (root / "ag_news_csv").mkdir()
    (root / "ag_news_csv" / "test.csv").write_bytes(GOOD)
    ds = dataset_with(hashlib.md5(GOOD).hexdigest())
    cache = tmp_path / "cache"
    path = fetch(ds, "test", cache, mirrors=["http://127.0.0.1:9/dead/", base])  # first mirror is down
    assert path == cache / "ag_news" / "test.csv" and path.read_bytes() == GOOD
    (root / "ag_news_csv" / "test.csv").unlink()
    assert fetch(ds, "test", cache, mirrors=[base]) == path  # served from the cache now


def test_md5_mismatch_leaves_nothing_in_the_cache(server, tmp_path: Path) -> None:
    base, root = server
    (root / "ag_news_csv").mkdir()
    (root / "ag_news_csv" / "test.csv").write_bytes(GOOD[:-10] + b"corrupted\n")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        fetch(dataset_with(hashlib.md5(GOOD).hexdigest()), "test", cache, mirrors=[base])
    assert list((cache / "ag_news").iterdir()) == []


def test_offline_message_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as e:
        load_builtin("ag_news", "train", data_dir=tmp_path)
    msg = str(e.value)
    assert f"copy train.csv (MD5 {AG_NEWS.files['train'].md5}) into {tmp_path / 'ag_news'}" in msg
    assert "CLASSIFORMER_AG_NEWS_MIRRORS" in msg


def test_cached_files_are_read_with_class_names(tmp_path: Path) -> None:
    ds = dataset_with(hashlib.md5(GOOD).hexdigest())
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_bytes(GOOD)
    path = fetch(ds, "test", tmp_path, mirrors=[])
    from classiformer.data import read_dataset

    data = read_dataset(path, AG_NEWS.columns)
    assert data.labels == ["World", "Sports", "Business", "Sci/Tech"]
    assert data.texts[0] == "Vote Election today"
