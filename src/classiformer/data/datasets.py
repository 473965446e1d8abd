"""Labelled text datasets and their readers: CSV/TSV, JSON Lines (optionally gzipped),
folder-per-class and Parquet; and the streaming reader of texts to predict (``iter_texts``).

Training and prediction read rows through the same code, so a file that trains also predicts:
UTF-8 with or without a byte-order mark, ``.gz`` for any text format, lines ending in ``\n`` or
``\r\n`` (split on those only, never on U+2028 and the other ``str.splitlines`` breaks, which are
valid inside JSON strings), CSV as in RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180) with every
record as wide as the header, JSON Lines as in https://jsonlines.org.

Every bad row is reported with its file and line; with ``skip_bad_rows=True`` it is skipped and
counted instead (the count is on ``TextDataset.skipped`` and logged). Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import io
import json
import logging
import random
import sys
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import numpy as np

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Input data is malformed; the message names the file, line and problem."""


@dataclass
class TextDataset:
    """Texts with optional string labels (``None`` for unlabelled data).

    Multi-label data (a list of labels per example, possibly empty) has ``label_sets`` instead of
    ``labels``; ``is_multi_label`` tells which."""

    texts: list[str]
    labels: list[str] | None
    source: str = "<memory>"
    lines: list[int] | None = None  # source line of each example, for error messages
    skipped: int = 0
    # How the file was read (set by read_dataset); a trained model keeps it, so that evaluating it
    # on another file of the same layout needs no column options again.
    columns: Columns | None = None
    label_sets: list[list[str]] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.label_sets is not None:
            if self.labels is not None:
                raise ValueError("a dataset has either labels (one per text) or label_sets (multi-label), not both")
            if len(self.label_sets) != len(self.texts):
                raise ValueError(f"{len(self.texts)} texts but {len(self.label_sets)} label sets")

    @property
    def is_multi_label(self) -> bool:
        return self.label_sets is not None

    @property
    def labelled(self) -> bool:
        return self.labels is not None or self.label_sets is not None

    def as_multi_label(self) -> TextDataset:
        """The same examples with each label as a one-label set (to train a multi-label model on
        single-label data, ``--multi-label``)."""
        if self.label_sets is not None or self.labels is None:
            return self
        return TextDataset(self.texts, None, self.source, self.lines, self.skipped, self.columns,
                           [[lbl] for lbl in self.labels])

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextDataset:
        return TextDataset(
            texts=[self.texts[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            source=self.source,
            lines=None if self.lines is None else [self.lines[i] for i in indices],
            columns=self.columns,
            label_sets=None if self.label_sets is None else [self.label_sets[i] for i in indices],
        )

    def label_names(self) -> list[str]:
        """Distinct labels, sorted (numerically when all labels are integers)."""
        if self.label_sets is not None:
            names = {lbl for s in self.label_sets for lbl in s}
            if not names:
                raise DataError(f"{self.source}: no example has a label")
            return sort_labels(names)
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
    known_set = set(known)
    if dataset.label_sets is not None:
        for i, labels in enumerate(dataset.label_sets):
            for label in labels:
                if label not in known_set:
                    line = dataset.lines[i] if dataset.lines else i + 1
                    raise DataError(f"{dataset.source}:{line}: label {label!r} was not seen in training "
                                    f"(known labels: {list(known)})")
        return
    if dataset.labels is None:
        return
    for i, label in enumerate(dataset.labels):
        if label not in known_set:
            line = dataset.lines[i] if dataset.lines else i + 1
            raise DataError(
                f"{dataset.source}:{line}: label {label!r} was not seen in training "
                f"(known labels: {list(known)})"
            )


def encode_labels(dataset: TextDataset, labels: list[str]) -> np.ndarray:
    """Class ids (N,), or for multi-label data 0/1 targets (N, L) with columns in the order of
    ``labels``, so files that list labels in different orders map them to the same columns."""
    check_labels_known(dataset, labels)
    index = {lbl: i for i, lbl in enumerate(labels)}
    if dataset.label_sets is not None:
        targets = np.zeros((len(dataset), len(labels)), dtype=np.int64)
        for i, label_set in enumerate(dataset.label_sets):
            targets[i, [index[lbl] for lbl in label_set]] = 1
        return targets
    assert dataset.labels is not None
    return np.array([index[lbl] for lbl in dataset.labels], dtype=np.int64)


def stratified_split(
    dataset: TextDataset, fraction: float, seed: int
) -> tuple[TextDataset, TextDataset]:
    """Carve a validation split of ``fraction`` from ``dataset``, per class, seeded; multi-label
    data by iterative stratification (stratify.py), so rare labels land on both sides."""
    if dataset.label_sets is not None:
        from .stratify import iterative_split

        try:
            train, val = iterative_split(dataset.label_sets, fraction, seed)
        except ValueError as e:
            raise DataError(f"{dataset.source}: {e}") from None
        return dataset.subset(train), dataset.subset(val)
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
#
# One row-reading core per format (``_csv_rows``, ``_jsonl_rows``, ``_txt_rows``) serves both
# training (``read_dataset``, which collects rows) and prediction (``iter_texts``, which streams
# them), so decoding, BOM, gzip, line numbers and the checks on texts and labels are the same in
# both. A core streams the file line by line and yields one ``_Row`` per record: either a valid
# text (and label) or the problem that makes the row bad; the consumer decides whether a bad row
# is an error or a counted skip. Problems with the whole file (not found, not UTF-8, broken gzip,
# malformed CSV, missing columns) raise ``DataError`` at once.


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
    # CSV/TSV multi-label data: the label field holds labels joined by this (e.g. "|"); an empty
    # field is an example with no label. JSON needs none: a list in the label field is a label set.
    label_sep: str | None = None


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")

# The csv module refuses fields over 131,072 characters by default, so a long document was called
# "malformed". The limit stays finite on purpose: a quote that is never closed swallows the rest of
# the file into one field, and a bound keeps that from filling memory before it is reported.
# 2**24 characters is over five times "War and Peace", far beyond what a classifier reads.
CSV_FIELD_LIMIT = 2**24


class _Row(NamedTuple):
    """One record of a file: a valid ``text`` (and ``label``) or the ``problem`` that makes it bad."""

    line: int
    text: str = ""
    label: str | None = None
    problem: str | None = None
    label_set: tuple[str, ...] | None = None  # a list of labels (multi-label data); ``label`` is then None


def _json_kind(value: object) -> str:
    """A value's type in JSON's words, for messages about JSON input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _make_row(line: int, values: list[object], names: Sequence[str], label: object, labelled: bool) -> _Row:
    """Validate a record's text fields (``values``, from fields ``names``) and label, the same way
    for every format.

    Texts must be strings (a JSON number or null is not silently turned into ``"None"``); they are
    stripped and joined with a space and must not be empty. Labels are strings (stripped) or
    integers (their decimal string); booleans and fractional numbers are refused, since ``true``
    becoming a class "True" or ``1.0`` a class "1.0" is a data error, not a class name.
    """
    for i, value in enumerate(values):
        if not isinstance(value, str):
            return _Row(line, problem=f"text field {names[i]!r} is {_json_kind(value)}, not a string")
    # One field (the common case) needs no join; mypy cannot see that the loop proved str.
    text = str(values[0]).strip() if len(values) == 1 else " ".join([str(v).strip() for v in values]).strip()
    if not text:
        return _Row(line, problem="empty text")
    if not labelled:
        return _Row(line, text)
    if isinstance(label, (list, tuple)):
        chosen: list[str] = []
        for value in label:
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                return _Row(line, problem=f"the label list holds {_json_kind(value)}; labels must be strings or integers")
            name = value.strip() if isinstance(value, str) else str(value)
            if not name:
                return _Row(line, problem="an empty label in the label list")
            if name in chosen:
                return _Row(line, problem=f"label {name!r} listed twice")
            chosen.append(name)
        return _Row(line, text, label_set=tuple(chosen))
    if label is None or (isinstance(label, str) and not label.strip()):
        return _Row(line, problem="missing label")
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        return _Row(line, problem=f"label is {_json_kind(label)}; labels must be strings or integers")
    return _Row(line, text, label.strip() if isinstance(label, str) else str(label))


def _not_utf8(raw: bytes, line: int, pos: int) -> str:
    """The problem with line ``line`` (bytes ``raw``, not UTF-8 at ``pos``), with a hint at the cause."""
    hint = "re-encode the file as UTF-8"
    if line == 1 and raw.startswith(b"\x1f\x8b"):
        hint = "the file looks gzip-compressed; name it with a .gz suffix"
    elif line == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = "the file looks UTF-16; re-encode it as UTF-8"
    return f"bytes that are not UTF-8 ({raw[pos:pos + 4]!r} at byte {pos + 1} of the line); {hint}"


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _lines(path: Path) -> Iterator[str]:
    """Stream the lines of a UTF-8 text file, gunzipped when it is named ``.gz``.

    Lines are split on ``\\n`` only (``\\r\\n`` endings are kept for the caller to strip), never on the
    other characters that ``str.splitlines`` treats as line breaks (U+2028, U+0085, ...), which are
    valid inside JSON strings and CSV fields. A UTF-8 byte-order mark is dropped. Bytes that are not
    UTF-8 are reported with their line; a truncated or corrupted gzip file is a ``DataError`` naming
    the file, not a traceback.
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    line_no = 0
    try:
        # newline="\n": split on "\n" alone and translate nothing (newline="" would also split on a lone "\r").
        with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="\n") as f:
            for line in f:
                line_no += 1
                yield line
    except UnicodeDecodeError:
        raise _find_bad_bytes(path, line_no) from None
    except gzip.BadGzipFile as e:
        raise DataError(f"{path}: not a valid gzip file ({e}); if it is plain text, drop the .gz suffix") from None
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip file: it ends inside the compressed data, after line {line_no} "
            "(was a download or copy cut short?)"
        ) from None
    except zlib.error as e:
        raise DataError(f"{path}:{line_no + 1}: corrupted gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e})") from None


def _find_bad_bytes(path: Path, good_lines: int) -> DataError:
    """The error for bytes that are not UTF-8 after line ``good_lines``, naming their line.

    The decoder works on blocks of the file, so its error carries no line; this slow path decodes
    line by line from there (it runs once, only for a file that fails anyway)."""
    try:
        with _open_binary(path) as f:
            for line_no, raw in enumerate(f, start=1):
                if line_no <= good_lines:
                    continue
                try:
                    raw.decode("utf-8")  # a byte-order mark is valid UTF-8 (U+FEFF)
                except UnicodeDecodeError as e:
                    return DataError(f"{path}:{line_no}: {_not_utf8(raw, line_no, e.start)}")
    except (OSError, EOFError, zlib.error):
        pass
    return DataError(f"{path}: bytes that are not UTF-8 after line {good_lines}; re-encode the file as UTF-8")


def _empty(path: Path) -> DataError:
    return DataError(f"{path}: file is empty")


# Column names that usually hold the text or the label, for the hint when the asked-for one is missing.
_TEXT_NAMES = ("sentence", "review", "content", "body", "document", "comment", "tweet", "question", "title", "abstract")
_LABEL_NAMES = ("sentiment", "category", "class", "target", "labels", "topic", "intent", "y")


def missing_column_hint(names: Sequence[str]) -> str:
    """What to pass when a file's columns are not the default ``text`` / ``label``: the options,
    with the file's likely text and label columns filled in where its names suggest them."""
    lower = {n.lower(): n for n in names}
    text = next((lower[n] for n in _TEXT_NAMES if n in lower), "NAME")
    label = next((lower[n] for n in _LABEL_NAMES if n in lower), "NAME")
    return f"name the columns to read: --text-column {text} --label-column {label}"


def _column_index(header: list[str] | None, col: str | int, path: Path, header_line: int = 1) -> int:
    if isinstance(col, int) or (isinstance(col, str) and col.isdigit() and header is None):
        return int(col)
    if header is None:
        raise DataError(f"{path}: column {col!r} named, but the file has no header; use a 0-based index")
    if col not in header:
        raise DataError(f"{path}:{header_line}: missing column {col!r}; the header has {header}: "
                        f"{missing_column_hint(header)}")
    return header.index(col)


def _raise_csv_field_limit() -> None:
    # Process-wide, so only ever raised (never lowered below what the caller set); clipped to a C
    # long, the most the csv module accepts on every platform.
    limit = min(CSV_FIELD_LIMIT, sys.maxsize, 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1)
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _csv_rows(
    path: Path, delimiter: str, text_cols: Sequence[str | int], label_col: str | int | None, header: bool,
    label_sep: str | None = None,
) -> Iterator[_Row]:
    """Records of a CSV/TSV file. ``label_col=None``: no label is read (prediction). With
    ``label_sep`` the label field is a list of labels joined by it (empty: no label).

    Every record must have as many fields as the header (or, without a header, as the first
    record): a row with more fields than that usually holds an unquoted delimiter, and taking the
    first fields would silently cut its text. Errors name the line where the record starts, so an
    unbalanced quote is reported where it was opened, not where the parser gave up.
    """
    _raise_csv_field_limit()
    reader = csv.reader(_lines(path), delimiter=delimiter, strict=True)
    sep = "a tab" if delimiter == "\t" else repr(delimiter)
    start = 0  # lines read before the current record
    try:
        names: list[str] | None = None
        expected: int | None = None  # fields per record
        counted_at = "the header"
        if header:
            for row in reader:
                if not _blank(row):
                    break
            else:
                raise _empty(path)
            names = [h.strip() for h in row]
            expected = len(names)
        text_idx = [_column_index(names, c, path, reader.line_num) for c in text_cols]
        label_idx = None if label_col is None else _column_index(names, label_col, path, reader.line_num)
        need = max(text_idx + ([] if label_idx is None else [label_idx])) + 1
        if expected is not None and need > expected:
            raise DataError(f"{path}:{reader.line_num}: column index {need - 1} is beyond the header's {expected} fields")
        text_names = [names[i] if names else str(i) for i in text_idx]
        labelled = label_idx is not None
        seen = header
        start = reader.line_num
        for row in reader:
            line, start = start + 1, reader.line_num
            if len(row) <= 1 and _blank(row):
                continue
            seen = True
            if expected is None and len(row) >= need:
                expected, counted_at = len(row), f"line {line}"
            if expected is None or len(row) != expected:
                if expected is None:
                    problem = f"expected at least {need} fields, found {len(row)}"
                else:
                    problem = f"expected {expected} fields (as in {counted_at}), found {len(row)}"
                    if len(row) > expected:
                        problem += f"; quote texts that contain {sep}"
                yield _Row(line, problem=problem)
                continue
            label: str | list[str] | None = None if label_idx is None else row[label_idx]
            if label_sep and isinstance(label, str):
                label = label.split(label_sep) if label.strip() else []
            yield _make_row(line, [row[i] for i in text_idx], text_names, label, labelled)
        if not seen:
            raise _empty(path)
    except csv.Error as e:
        first = start + 1
        if "unexpected end of data" in str(e):
            problem = f"a quoted field opened in the record starting at line {first} is never closed (unbalanced quote)"
        elif "new-line character seen in unquoted field" in str(e):
            # Lines end in \n or \r\n only: a bare \r outside quotes is a classic Mac line ending.
            problem = ("a carriage return (\\r) inside an unquoted field; quote the field, or convert \\r line "
                       "endings to \\n")
        elif "field larger than field limit" in str(e):
            problem = (f"a field longer than {csv.field_size_limit():,} characters in the record starting at "
                       f"line {first}; is a quote there left open?")
        else:
            problem = str(e)
            if reader.line_num > first:
                problem += f" at line {reader.line_num}, in a record that starts at line {first} (is a quote there unbalanced?)"
        raise DataError(f"{path}:{first}: malformed CSV: {problem}") from None


def _jsonl_rows(path: Path, text_keys: Sequence[str], label_key: str | None) -> Iterator[_Row]:
    """Records of a JSON Lines file: one object per line. ``label_key=None``: no label is read."""
    wanted = list(text_keys) + ([] if label_key is None else [label_key])
    seen = False
    for line_no, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        seen = True
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield _Row(line_no, problem=f"invalid JSON: {e.msg} (column {e.colno})")
            continue
        if not isinstance(obj, dict):
            yield _Row(line_no, problem=f"expected a JSON object, found {_json_kind(obj)}")
            continue
        if label_key == "label" and "label" not in obj and "labels" in obj:
            obj["label"] = obj["labels"]  # the usual name of a multi-label field
        missing = [k for k in wanted if k not in obj]
        if missing:
            yield _Row(line_no, problem=f"missing field(s) {missing}; found {sorted(obj)}: {missing_column_hint(list(obj))}")
            continue
        label = None if label_key is None else obj[label_key]
        yield _make_row(line_no, [obj[k] for k in text_keys], text_keys, label, labelled=label_key is not None)
    if not seen:
        raise _empty(path)


def _txt_rows(path: Path) -> Iterator[_Row]:
    """Records of a plain text file: one text per line, blank lines skipped (prediction only)."""
    seen = False
    for line_no, line in enumerate(_lines(path), start=1):
        text = line.strip()  # also drops the \r of a \r\n ending
        if text:
            seen = True
            yield _Row(line_no, text)
    if not seen:
        raise _empty(path)


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _row_labels(row: _Row, label_map: dict[str, str] | None) -> tuple[list[str], str | None]:
    """The labels of a valid labelled row, named through ``label_map`` when one is given; or the
    problem (a code the map does not name). Shared by the in-memory and the streaming readers."""
    given = list(row.label_set) if row.label_set is not None else [row.label]
    names: list[str] = []
    for label in given:
        assert label is not None  # _make_row gives every valid labelled row a label
        if label_map is not None:
            if label not in label_map:
                return [], f"unknown class {label!r}; expected one of {list(label_map)}"
            label = label_map[label]
        names.append(label)
    return names, None


class _RowSink:
    """Collects rows, turning problems into errors or counted skips."""

    def __init__(self, path: Path, columns: Columns, skip_bad_rows: bool, labelled: bool) -> None:
        self.path, self.columns, self.skip, self.labelled = path, columns, skip_bad_rows, labelled
        self.texts: list[str] = []
        self.labels: list[str] = []
        self.label_sets: list[list[str]] = []
        self.any_list = bool(columns.label_sep)  # multi-label as soon as one row has a label list
        self.lines: list[int] = []
        self.skipped = 0

    def bad(self, line: int, problem: str, source: Path | None = None) -> None:
        where = f"{source or self.path}:{line}"
        if not self.skip:
            raise DataError(f"{where}: {problem} (pass skip_bad_rows / --skip-bad-rows to skip such rows)")
        self.skipped += 1
        log.warning("%s: skipped: %s", where, problem)

    def take(self, row: _Row, source: Path | None = None) -> None:
        if row.problem is not None:
            return self.bad(row.line, row.problem, source)
        if self.labelled:
            self.any_list = self.any_list or row.label_set is not None
            names, problem = _row_labels(row, self.columns.label_map)
            if problem is not None:
                return self.bad(row.line, problem, source)
            self.label_sets.append(names)
            if row.label_set is None:
                self.labels.append(names[0])
        self.texts.append(row.text)
        self.lines.append(row.line)

    def finish(self) -> TextDataset:
        if self.skipped:
            log.warning("%s: skipped %d bad row(s)", self.path, self.skipped)
        if not self.texts:
            raise DataError(f"{self.path}: no usable rows")
        multi = self.labelled and self.any_list
        if multi:
            empty = sum(1 for s in self.label_sets if not s)
            log.info("%s: multi-label data, %d example(s), %d without any label", self.path, len(self.texts), empty)
        return TextDataset(
            texts=self.texts,
            labels=self.labels if self.labelled and not multi else None,
            source=str(self.path),
            lines=self.lines,
            skipped=self.skipped,
            label_sets=self.label_sets if multi else None,
        )


def _label_column(path: Path, columns: Columns, labelled: bool) -> str | int | None:
    if not labelled:
        return None
    if columns.label is None:
        raise DataError(f"{path}: no label column given for labelled data")
    return columns.label


def read_delimited(
    path: Path, columns: Columns, delimiter: str, skip_bad_rows: bool = False, labelled: bool = True
) -> TextDataset:
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    for row in _csv_rows(path, delimiter, columns.text, _label_column(path, columns, labelled), columns.header,
                         columns.label_sep):
        sink.take(row)
    return sink.finish()


def read_jsonl(path: Path, columns: Columns, skip_bad_rows: bool = False, labelled: bool = True) -> TextDataset:
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    label = _label_column(path, columns, labelled)
    for row in _jsonl_rows(path, [str(c) for c in columns.text], None if label is None else str(label)):
        sink.take(row)
    return sink.finish()


def parquet_module(path: Path) -> Any:
    """``pyarrow.parquet``, once ``path`` is known to exist (the in-memory and the streaming
    readers): a clear error naming the extra when pyarrow is missing, and naming the file."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'classiformer[parquet]'") from None
    if not path.exists():
        raise DataError(f"{path}: file not found")
    return pq


def read_parquet(path: Path, columns: Columns, skip_bad_rows: bool = False, labelled: bool = True) -> TextDataset:
    pq = parquet_module(path)
    table = pq.read_table(path)
    names = table.column_names
    label = _label_column(path, columns, labelled)
    wanted = [str(c) for c in columns.text] + ([] if label is None else [str(label)])
    for c in wanted:
        if c not in names:
            raise DataError(f"{path}: missing column {c!r}; the file has {names}: {missing_column_hint(names)}")
    data = table.to_pydict()
    text_names = [str(c) for c in columns.text]
    sink = _RowSink(path, columns, skip_bad_rows, labelled)
    for i in range(table.num_rows):  # "line" is the 1-based row number
        values = [data[c][i] for c in text_names]
        sink.take(_make_row(i + 1, values, text_names, None if label is None else data[str(label)][i], labelled))
    return sink.finish()


def _file_row(path: Path, label: str) -> _Row:
    """One example file of a folder dataset, decoded and checked like a row of any other format."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        return _Row(line, problem=_not_utf8(raw[line_start:], line, e.start - line_start))
    return _make_row(1, [text], ["file"], label, labelled=True)


def read_folder(path: Path, skip_bad_rows: bool = False) -> TextDataset:
    """One sub-folder per class, one UTF-8 text file per example.

    A class folder without a usable example is an error naming the folder: a class left out would
    be missing from the model without a word. With ``skip_bad_rows`` it is left out with a warning.
    """
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: no class sub-folders found (expected {path}/<label>/<example>.txt)")
    sink = _RowSink(path, Columns(label_map=None), skip_bad_rows, labelled=True)
    for d in class_dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
        before = len(sink.texts)
        for f in files:
            sink.take(_file_row(f, d.name), source=f)
        if len(sink.texts) > before:
            continue
        what = "no usable example files (all were skipped)" if files else "no example files"
        if not skip_bad_rows:
            raise DataError(
                f"{d}: class folder {d.name!r} has {what}; add examples or remove the folder "
                "(or pass skip_bad_rows / --skip-bad-rows to leave the class out)"
            )
        log.warning("%s: class %r has %s; it is LEFT OUT of the dataset and the model", d, d.name, what)
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
        return _read_with(read_delimited(p, columns, ",", skip_bad_rows, labelled), columns)
    if kind == ".tsv":
        return _read_with(read_delimited(p, columns, "\t", skip_bad_rows, labelled), columns)
    if kind in JSONL_SUFFIXES:
        return _read_with(read_jsonl(p, columns, skip_bad_rows, labelled), columns)
    if kind == ".parquet":
        return _read_with(read_parquet(p, columns, skip_bad_rows, labelled), columns)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    raise DataError(f"{p}: unknown format {kind or '(no extension)'}; use .csv, .tsv, .jsonl[.gz], .parquet or a folder")


def _read_with(dataset: TextDataset, columns: Columns) -> TextDataset:
    dataset.columns = columns
    warn_of_numbers_written_twice(set(dataset.labels or ()) | {x for row in dataset.label_sets or () for x in row},
                                  dataset.source)
    return dataset


def warn_of_numbers_written_twice(labels: Iterable[str], source: str) -> None:
    """Labels are strings, so "1" and "1.0" (a column pandas wrote as floats in one file and as
    integers in another, or a hand edit) would train as two classes: say so, naming the spellings."""
    by_value: dict[float, list[str]] = {}
    for label in set(labels):
        try:
            by_value.setdefault(float(label), []).append(label)
        except ValueError:
            continue
    for spellings in by_value.values():
        if len(spellings) > 1:
            log.warning("%s: labels %s are one number written %d ways; each is trained as a class of its own "
                        "(write them one way, or give them one name with --label-names FILE.json)", source,
                        " and ".join(repr(x) for x in sorted(spellings)), len(spellings))


def iter_texts(
    path: str | Path,
    text_columns: Sequence[str | int] = ("text",),
    header: bool = True,
    skip_bad_rows: bool = False,
) -> Iterator[tuple[int, str]]:
    """Stream ``(line, text)`` from a CSV/TSV/JSONL/TXT file (each optionally ``.gz``) in constant
    memory, for prediction.

    Rows are read and checked by the same code as training data (``read_dataset``): a bad row is a
    ``DataError`` naming file and line, or with ``skip_bad_rows`` a logged, counted skip.
    """
    p = Path(path)
    kind = _base_suffix(p)
    rows: Iterator[_Row]
    if kind in JSONL_SUFFIXES:
        rows = _jsonl_rows(p, [str(c) for c in text_columns], None)
    elif kind in (".csv", ".tsv"):
        rows = _csv_rows(p, "\t" if kind == ".tsv" else ",", list(text_columns), None, header)
    elif kind == ".txt":
        rows = _txt_rows(p)
    elif not p.exists():
        raise DataError(f"{p}: file not found")
    else:
        raise DataError(f"{p}: unknown format {kind or '(no extension)'} for prediction input; "
                        "use .csv, .tsv, .jsonl or .txt (each optionally .gz)")
    skipped = 0
    for row in rows:
        line, text, problem = row.line, row.text, row.problem
        if problem is None:
            yield line, text
        elif skip_bad_rows:
            skipped += 1
            log.warning("%s:%d: skipped: %s", p, line, problem)
        else:
            raise DataError(f"{p}:{line}: {problem}")
    if skipped:
        log.warning("%s: skipped %d bad row(s)", p, skipped)
