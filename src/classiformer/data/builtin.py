"""Built-in datasets, downloaded on first use into a cache folder and checked by MD5.

AG News (Zhang, Zhao & LeCun, 2015, "Character-level Convolutional Networks for Text
Classification") is fetched from the same mirror torchtext used. The URL list is configurable
(``CLASSIFORMER_AG_NEWS_MIRRORS``, comma-separated base URLs) and each file is written atomically:
a download that fails or does not match its MD5 leaves nothing in the cache.

A file that is already in the data folder is the user's (placed there by hand, or by an earlier
download): one whose MD5 differs from the canonical file's is used all the same, with a warning
that gives both hashes. When files cannot be had, one error names every missing file at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .datasets import Columns, DataError, TextDataset, read_dataset, sort_labels

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A dataset file could not be fetched or failed verification."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    files: dict[str, RemoteFile]  # split -> file
    mirrors: tuple[str, ...]
    mirrors_env: str
    columns: Columns
    citation: str


AG_NEWS = BuiltinDataset(
    name="ag_news",
    files={
        "train": RemoteFile("train.csv", "b1a00f826fdfbd249f79597b59e1dc12"),
        "test": RemoteFile("test.csv", "d52ea96a97a2d943681189a97654912d"),
    },
    mirrors=("https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/",),
    mirrors_env="CLASSIFORMER_AG_NEWS_MIRRORS",
    columns=Columns(
        label=0,
        text=[1, 2],
        header=False,
        label_map={"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
    ),
    citation="Zhang, Zhao & LeCun (2015), Character-level Convolutional Networks for Text Classification",
)

BUILTINS: dict[str, BuiltinDataset] = {AG_NEWS.name: AG_NEWS}


def default_data_dir() -> Path:
    """``$CLASSIFORMER_DATA`` or ``~/.cache/classiformer/data``."""
    env = os.environ.get("CLASSIFORMER_DATA")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "classiformer" / "data"


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Fetch ``url`` into ``dest`` atomically, verifying ``md5``; raise DownloadError otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        if h.hexdigest() != md5:
            raise DownloadError(f"{url}: MD5 mismatch (got {h.hexdigest()}, expected {md5}); the file was discarded")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise DownloadError(f"{url}: {getattr(e, 'reason', e)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    dataset: BuiltinDataset,
    split: str,
    data_dir: str | Path | None = None,
    mirrors: list[str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return the local path of ``split``, downloading and verifying it if needed."""
    return fetch_splits(dataset, [split], data_dir, mirrors, timeout)[split]


def fetch_splits(
    dataset: BuiltinDataset,
    splits: list[str],
    data_dir: str | Path | None = None,
    mirrors: list[str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Path]:
    """Local paths of ``splits``, downloading what is missing. Fails once, naming every file that
    could not be had, so an offline user learns the whole list on the first try."""
    for split in splits:
        if split not in dataset.files:
            raise DataError(f"{dataset.name} has splits {sorted(dataset.files)}, not {split!r}")
    folder = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / dataset.name
    if mirrors is None:
        env = os.environ.get(dataset.mirrors_env)
        mirrors = [m.strip() for m in env.split(",") if m.strip()] if env else list(dataset.mirrors)
    paths: dict[str, Path] = {}
    failed: dict[str, list[str]] = {}
    for split in dict.fromkeys(splits):
        remote = dataset.files[split]
        dest = folder / remote.name
        if dest.exists():
            _check_placed(dest, remote)
            paths[split] = dest
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + remote.name
            log.info("downloading %s", url)
            try:
                _download(url, dest, remote.md5, timeout)
                paths[split] = dest
                break
            except DownloadError as e:
                errors.append(str(e))
        else:
            failed[remote.name] = errors or ["no mirror configured"]
    if failed:
        raise DownloadError(_missing_message(dataset, folder, failed))
    return paths


def _check_placed(path: Path, remote: RemoteFile) -> None:
    """A file already in the data folder is the user's to use: warn when it is not the canonical one."""
    got = md5sum(path)
    if got != remote.md5:
        log.warning(
            "%s is not the canonical %s (MD5 %s, expected %s); using it as it is. Delete it to download "
            "the canonical file.", path, remote.name, got, remote.md5,
        )


def _missing_message(dataset: BuiltinDataset, folder: Path, failed: dict[str, list[str]]) -> str:
    names = list(failed)
    tried = "".join(f"\n  {name}: {err}" for name, errs in failed.items() for err in errs)
    files = "\n".join(f"  {folder / name}   (MD5 {_md5_of(dataset, name)})" for name in names)
    own = " ".join(f"--{split} FILE" for split in dataset.files)
    return (
        f"could not download {dataset.name} ({', '.join(names)}):{tried}\n"
        f"If this machine is offline, put the file(s) here:\n{files}\n"
        f"(or pass --data-dir DIR / set CLASSIFORMER_DATA to a folder that holds "
        f"{' and '.join(f'{dataset.name}/{n}' for n in names)}), set {dataset.mirrors_env} to a mirror you can reach, "
        f"or pass files of your own with {own} instead of --dataset (for {dataset.name}'s own CSVs: "
        f"{reader_flags(dataset.columns)})."
    )


def reader_flags(columns: Columns) -> str:
    """The command-line data options that read files laid out as ``columns`` describes."""
    flags = [] if columns.header else ["--no-header"]
    flags += ["--label-column", str(columns.label)]
    for c in columns.text:
        flags += ["--text-column", str(c)]
    if columns.label_map:
        names = [columns.label_map[k] for k in sort_labels(list(columns.label_map))]
        flags += ["--label-names", ",".join(names)]
    return " ".join(flags)


def _md5_of(dataset: BuiltinDataset, name: str) -> str:
    return next(r.md5 for r in dataset.files.values() if r.name == name)


def load_builtin(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    skip_bad_rows: bool = False,
    also: tuple[str, ...] = (),
) -> TextDataset:
    """Load a built-in dataset's split (downloading it if needed). ``also``: further splits the
    caller will need next, fetched now so that a missing file of any of them is reported at once."""
    if name not in BUILTINS:
        raise DataError(f"unknown built-in dataset {name!r}; available: {sorted(BUILTINS)}")
    ds = BUILTINS[name]
    paths = fetch_splits(ds, [split, *(s for s in also if s in ds.files)], data_dir)
    return read_dataset(paths[split], ds.columns, skip_bad_rows)
