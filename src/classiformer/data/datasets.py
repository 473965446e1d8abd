"""Labelled text datasets and their readers: CSV/TSV, JSON Lines (optionally gzipped),
folder-per-class and Parquet.

Every bad row is reported with its file and line; with ``skip_bad_rows=True`` it is skipped and
counted instead (the count is on ``TextDataset.skipped`` and logged). Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Input data is malformed; the message names the file, line and problem."""


@dataclass
class TextDataset:
    """Texts with optional string labels (``None`` for unlabelled data)."""

    texts: list[str]
    labels: list[str] | None
    source: str = "<memory>"
    lines: list[int] | None = None  # source line of each example, for error messages
    skipped: int = 0

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextDataset:
        return TextDataset(
            texts=[self.texts[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            source=self.source,
            lines=None if self.lines is None else [self.lines[i] for i in indices],
        )

    def label_names(self) -> list[str]:
        """Distinct labels, sorted (numerically when all labels are integers)."""
        if self.labels is None:
            raise DataError(f"{self.source}: dataset has no labels")
        return sort_labels(set(self.labels))


def sort_labels(labels: set[str] | list[str]) -> list[str]:
    values = list(set(labels))
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values)


def check_labels_known(dataset: TextDataset, known: Sequence[str]) -> None:
    """Fail on labels that the model was not trained on, naming the first offending line."""
    if dataset.labels is None:
        return
    known_set = set(known)
    for i, label in enumerate(dataset.labels):
        if label not in known_set:
            line = dataset.lines[i] if dataset.lines else i + 1
            raise DataError(
                f"{dataset.source}:{line}: label {label!r} was not seen in training "
                f"(known labels: {list(known)})"
            )


def stratified_split(
    dataset: TextDataset, fraction: float, seed: int
) -> tuple[TextDataset, TextDataset]:
    """Carve a validation split of ``fraction`` from ``dataset``, per class, seeded."""
    if dataset.labels is None:
        raise DataError(f"{dataset.source}: cannot split an unlabelled dataset")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(dataset.labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in sort_labels(list(by_label)):
        idx = by_label[label]
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val_idx.extend(idx[:n_val])
        train_idx.extend(idx[n_val:])
    if not val_idx:
        raise DataError(f"{dataset.source}: too few examples to carve a validation split")
    return dataset.subset(sorted(train_idx)), dataset.subset(sorted(val_idx))


# ---------------------------------------------------------------------------------------------
# Reading files


@dataclass
class Columns:
    """Which fields hold the label and the text.

    Names refer to a header row (CSV/TSV) or JSON keys; for header-less CSV give 0-based indices.
    Several text columns are joined with a space (AG News: title + " " + description).
    """

    label: str | int | None = "label"
    text: list[str | int] = field(default_factory=lambda: ["text"])
    header: bool = True
    label_map: dict[str, str] | None = None  # e.g. {"1": "World", ...}


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}:{line}: bytes that are not UTF-8 ({raw[e.start:e.start + 4]!r}); "
            "re-encode the file as UTF-8"
        ) from None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
    if not raw.strip():
        raise DataError(f"{path}: file is empty")
    return raw


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


class _RowSink:
    """Collects rows, turning problems into errors or counted skips."""

    def __init__(self, path: Path, columns: Columns, skip_bad_rows: bool, labelled: bool) -> None:
        self.path, self.columns, self.skip, self.labelled = path, columns, skip_bad_rows, labelled
        self.texts: list[str] = []
        self.labels: list[str] = []
        self.lines: list[int] = []
        self.skipped = 0

    def bad(self, line: int, problem: str) -> None:
        if not self.skip:
            raise DataError(f"{self.path}:{line}: {problem} (pass skip_bad_rows / --skip-bad-rows to skip such rows)")
        self.skipped += 1
        log.warning("%s:%d: skipped: %s", self.path, line, problem)

    def add(self, line: int, text: object, label: object) -> None:
        if not isinstance(text, str):
            return self.bad(line, f"text is {type(text).__name__}, not a string")
        if not text.strip():
            return self.bad(line, "empty text")
        if self.labelled:
            if label is None or (isinstance(label, str) and not label.strip()):
                return self.bad(line, "missing label")
            if isinstance(label, (dict, list)):
                return self.bad(line, f"label must be a string or number, got {type(label).__name__}")
            label = str(label).strip()
            if self.columns.label_map is not None:
                if label not in self.columns.label_map:
                    return self.bad(line, f"unknown class {label!r}; expected one of {list(self.columns.label_map)}")
                label = self.columns.label_map[label]
            self.labels.append(label)
        self.texts.append(text)
        self.lines.append(line)

    def finish(self) -> TextDataset:
        if self.skipped:
            log.warning("%s: skipped %d bad row(s)", self.path, self.skipped)
        if not self.texts:
            raise DataError(f"{self.path}: no usable rows")
        return TextDataset(
            texts=self.texts,
            labels=self.labels if self.labelled else None,
            source=str(self.path),
            lines=self.lines,
            skipped=self.skipped,
        )


def _column_index(header: list[str] | None, col: str | int, path: Path) -> int:
    if isinstance(col, int) or (isinstance(col, str) and col.isdigit() and header is None):
        return int(col)
    if header is None:
        raise DataError(f"{path}: column {col!r} named, but the file has no header; use a 0-based index")
    if col not in header:
        raise DataError(f"{path}:1: missing column {col!r}; the header has {header}")
    return header.index(col)


def read_delimited(
    path: Path, columns: Columns, delimiter: str, skip_bad_rows: bool = False, labelled: bool = True
) -> TextDataset:
    text = _decode(_read_bytes(path), path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    header: list[str] | None = None
    try:
        if columns.header:
            header = [h.strip() for h in next(reader)]
        text_idx = [_column_index(header, c, path) for c in columns.text]
        label_idx = _column_index(header, columns.label, path) if labelled and columns.label is not None else None
        need = max(text_idx + ([label_idx] if label_idx is not None else [])) + 1
        start = reader.line_num
        for row in reader:
            line = start + 1
            start = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) < need:
                sink.bad(line, f"expected at least {need} fields, found {len(row)}")
                continue
            joined = " ".join(row[i].strip() for i in text_idx)
            sink.add(line, joined, row[label_idx] if label_idx is not None else None)
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    return sink.finish()


def read_jsonl(path: Path, columns: Columns, skip_bad_rows: bool = False, labelled: bool = True) -> TextDataset:
    text = _decode(_read_bytes(path), path)
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    text_keys = [str(c) for c in columns.text]
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            sink.bad(line_no, f"invalid JSON: {e.msg}")
            continue
        if not isinstance(obj, dict):
            sink.bad(line_no, "expected a JSON object")
            continue
        missing = [k for k in text_keys + ([str(columns.label)] if labelled else []) if k not in obj]
        if missing:
            sink.bad(line_no, f"missing field(s) {missing}; found {sorted(obj)}")
            continue
        parts = [obj[k] for k in text_keys]
        if not all(isinstance(p, str) for p in parts):
            sink.bad(line_no, "text field is not a string")
            continue
        sink.add(line_no, " ".join(p.strip() for p in parts), obj.get(str(columns.label)) if labelled else None)
    return sink.finish()


def read_parquet(path: Path, columns: Columns, skip_bad_rows: bool = False, labelled: bool = True) -> TextDataset:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'classiformer[parquet]'") from None
    if not path.exists():
        raise DataError(f"{path}: file not found")
    table = pq.read_table(path)
    names = table.column_names
    wanted = [str(c) for c in columns.text] + ([str(columns.label)] if labelled else [])
    for c in wanted:
        if c not in names:
            raise DataError(f"{path}: missing column {c!r}; the file has {names}")
    data = table.to_pydict()
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    for i in range(table.num_rows):
        parts = [data[str(c)][i] for c in columns.text]
        if not all(isinstance(p, str) for p in parts):
            sink.bad(i + 1, "text is missing or not a string")
            continue
        sink.add(i + 1, " ".join(p.strip() for p in parts), data[str(columns.label)][i] if labelled else None)
    return sink.finish()


def read_folder(path: Path, skip_bad_rows: bool = False) -> TextDataset:
    """One sub-folder per class, one UTF-8 text file per example."""
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: no class sub-folders found (expected {path}/<label>/<example>.txt)")
    sink = _RowSink(path, Columns(label_map=None), skip_bad_rows, labelled=True)
    for d in class_dirs:
        for f in sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                text = f.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as e:
                sink.path = f
                sink.bad(1, f"bytes that are not UTF-8 at offset {e.start}")
                sink.path = path
                continue
            if not text.strip():
                sink.path = f
                sink.bad(1, "empty text")
                sink.path = path
                continue
            sink.texts.append(text)
            sink.labels.append(d.name)
            sink.lines.append(1)
    return sink.finish()


def read_dataset(
    path: str | Path,
    columns: Columns | None = None,
    skip_bad_rows: bool = False,
    labelled: bool = True,
) -> TextDataset:
    """Read a labelled dataset from a file or folder, choosing the reader by extension."""
    p = Path(path)
    columns = columns or Columns()
    if p.is_dir():
        return read_folder(p, skip_bad_rows)
    kind = _base_suffix(p)
    if kind == ".csv":
        return read_delimited(p, columns, ",", skip_bad_rows, labelled)
    if kind == ".tsv":
        return read_delimited(p, columns, "\t", skip_bad_rows, labelled)
    if kind in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(p, columns, skip_bad_rows, labelled)
    if kind == ".parquet":
        return read_parquet(p, columns, skip_bad_rows, labelled)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    raise DataError(f"{p}: unknown format {kind or '(no extension)'}; use .csv, .tsv, .jsonl[.gz], .parquet or a folder")


def iter_texts(path: str | Path, text_columns: Sequence[str | int] = ("text",), header: bool = True) -> Iterator[tuple[int, str]]:
    """Stream ``(line, text)`` from a CSV/TSV/JSONL(.gz) file in constant memory (for prediction)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    kind = _base_suffix(p)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8", newline="") as f:
        try:
            if kind in (".jsonl", ".ndjson", ".json"):
                for line_no, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{p}:{line_no}: invalid JSON: {e.msg}") from None
                    if not isinstance(obj, dict):
                        raise DataError(f"{p}:{line_no}: expected a JSON object")
                    missing = [str(c) for c in text_columns if str(c) not in obj]
                    if missing:
                        raise DataError(f"{p}:{line_no}: missing field(s) {missing}")
                    yield line_no, " ".join(str(obj[str(c)]) for c in text_columns)
            elif kind in (".csv", ".tsv"):
                reader = csv.reader(f, delimiter="\t" if kind == ".tsv" else ",", strict=True)
                hdr = [h.strip() for h in next(reader)] if header else None
                idx = [_column_index(hdr, c, p) for c in text_columns]
                start = reader.line_num
                for row in reader:
                    line_no, start = start + 1, reader.line_num
                    if not row:
                        continue
                    if len(row) <= max(idx):
                        raise DataError(f"{p}:{line_no}: expected at least {max(idx) + 1} fields, found {len(row)}")
                    yield line_no, " ".join(row[i].strip() for i in idx)
            elif kind == ".txt":
                for line_no, line in enumerate(f, start=1):
                    if line.strip():
                        yield line_no, line.rstrip("\n")
            else:
                raise DataError(f"{p}: unknown format {kind!r} for prediction input; use .csv, .tsv, .jsonl[.gz] or .txt")
        except UnicodeDecodeError as e:
            raise DataError(f"{p}: bytes that are not UTF-8 near byte {e.start} of a line; re-encode as UTF-8") from None
        except csv.Error as e:
            raise DataError(f"{p}: malformed CSV: {e}") from None
