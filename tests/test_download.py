"""The AG News download path, against a local HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from classiformer.cli import main
from classiformer.data import DownloadError, fetch
from classiformer.data.builtin import AG_NEWS, BuiltinDataset, RemoteFile, fetch_splits, load_builtin

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
    assert f"{tmp_path / 'ag_news' / 'train.csv'}   (MD5 {AG_NEWS.files['train'].md5})" in msg
    assert "CLASSIFORMER_AG_NEWS_MIRRORS" in msg


def test_offline_train_names_every_missing_file_at_once(tmp_path: Path, capsys) -> None:
    # README command 1 with no network: the user learns of train.csv and test.csv on the first try,
    # and of the --train/--test route with the flags that read AG News' own CSVs.
    code = main(["train", "--dataset", "ag_news", "--data-dir", str(tmp_path), "--preset", "tiny", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    for split in ("train", "test"):
        assert f"{tmp_path / 'ag_news' / f'{split}.csv'}   (MD5 {AG_NEWS.files[split].md5})" in err
    assert "--train FILE --test FILE" in err
    assert "--no-header --label-column 0 --text-column 1 --text-column 2 --label-names World,Sports,Business,Sci/Tech" in err
    assert not (tmp_path / "ag_news").exists() or list((tmp_path / "ag_news").iterdir()) == []


def test_a_placed_file_that_is_not_canonical_is_used_with_a_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_bytes(GOOD)  # the user's own copy, e.g. re-saved by an editor
    canonical = AG_NEWS.files["test"].md5
    with caplog.at_level(logging.WARNING, logger="classiformer.data.builtin"):
        data = load_builtin("ag_news", "test", data_dir=tmp_path)
    assert data.labels == ["World", "Sports", "Business", "Sci/Tech"] and len(data) == 4
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert hashlib.md5(GOOD).hexdigest() in warning.getMessage() and canonical in warning.getMessage()
    assert "not the canonical test.csv" in warning.getMessage()
    assert (tmp_path / "ag_news" / "test.csv").read_bytes() == GOOD  # never deleted or replaced


def test_only_the_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_bytes(GOOD)
    with pytest.raises(DownloadError) as e:
        load_builtin("ag_news", "train", data_dir=tmp_path, also=("test",))
    msg = str(e.value)
    assert "could not download ag_news (train.csv)" in msg and "test.csv   (MD5" not in msg


def test_every_split_downloads_in_one_call(server, tmp_path: Path) -> None:
    base, root = server
    (root / "ag_news_csv").mkdir()
    other = GOOD.replace(b"Vote", b"Poll")
    (root / "ag_news_csv" / "train.csv").write_bytes(GOOD)
    (root / "ag_news_csv" / "test.csv").write_bytes(other)
    ds = BuiltinDataset(
        name="ag_news", mirrors=(), mirrors_env="NO_SUCH_ENV", columns=AG_NEWS.columns, citation="",
        files={"train": RemoteFile("train.csv", hashlib.md5(GOOD).hexdigest()),
               "test": RemoteFile("test.csv", hashlib.md5(other).hexdigest())},
    )
    paths = fetch_splits(ds, ["train", "test"], tmp_path / "cache", mirrors=[base])
    assert paths["train"].read_bytes() == GOOD and paths["test"].read_bytes() == other


def test_cached_files_are_read_with_class_names(tmp_path: Path) -> None:
    ds = dataset_with(hashlib.md5(GOOD).hexdigest())
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_bytes(GOOD)
    path = fetch(ds, "test", tmp_path, mirrors=[])
    from classiformer.data import read_dataset

    data = read_dataset(path, AG_NEWS.columns)
    assert data.labels == ["World", "Sports", "Business", "Sci/Tech"]
    assert data.texts[0] == "Vote Election today"
