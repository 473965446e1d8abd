"""The shared row readers: training (``read_dataset``) and prediction (``iter_texts``) read the
same files the same way, and every bad row or file is a ``DataError`` naming file and line."""

from __future__ import annotations

import csv
import gzip
import json
import logging
from itertools import islice
from pathlib import Path

import pytest

from classiformer.data import Columns, DataError, iter_texts, read_dataset

# ---------------------------------------------------------------------------------------------
# CSV/TSV: field counts, quotes, long fields


@pytest.mark.parametrize(
    "name, content, columns, message",
    [
        ("long.csv", "label,text\npos,fine\nneg,bad, really bad\n", None,
         r"long.csv:3: expected 2 fields \(as in the header\), found 3; quote texts that contain ','"),
        ("long.tsv", "label\ttext\npos\tfine\nneg\tbad\textra\n", None, r"long.tsv:3: expected 2 fields .*found 3; .*a tab"),
        ("nohead.csv", '"1","a","b"\n"2","c","d","e"\n', Columns(label=0, text=[1, 2], header=False),
         r"nohead.csv:2: expected 3 fields \(as in line 1\), found 4"),
    ],
)
def test_a_row_with_more_fields_than_the_header_is_an_error(write_csv, name, content, columns, message) -> None:
    p = write_csv(name, content)
    with pytest.raises(DataError, match=message):
        read_dataset(p, columns)
    with pytest.raises(DataError, match=message.split(r" \(")[0].split(" expected")[0]):
        list(iter_texts(p, columns.text if columns else ["text"], header=columns.header if columns else True))


def test_long_rows_are_skipped_and_counted_like_short_ones(write_csv, caplog) -> None:
    p = write_csv("mixed.csv", "label,text\npos,good\nneg,bad,worse\npos\nneg,fine\n")
    with caplog.at_level(logging.WARNING):
        ds = read_dataset(p, skip_bad_rows=True)
    assert ds.texts == ["good", "fine"] and ds.lines == [2, 5] and ds.skipped == 2
    assert "mixed.csv:3: skipped: expected 2 fields" in caplog.text
    assert [t for _, t in iter_texts(p, skip_bad_rows=True)] == ["good", "fine"]


def _quote_file(tmp_path: Path, tail: str) -> Path:
    rows = ["label,text"] + [f"pos,row {i}" for i in range(2, 12)] + ['neg,"opened here'] + tail.split("|")
    p = tmp_path / "quote.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "tail, message",
    [
        ("pos,row 13|pos,row 14|pos,row 15", r"quote.csv:12: malformed CSV: a quoted field opened .* line 12 is never closed"),
        ('pos,row 13|pos,"row" 14|pos,row 15', r"quote.csv:12: malformed CSV: .* at line 14, in a record that starts at line 12"),
    ],
)
def test_an_unbalanced_quote_is_reported_where_it_opens(tmp_path: Path, tail: str, message: str) -> None:
    p = _quote_file(tmp_path, tail)
    with pytest.raises(DataError, match=message):
        read_dataset(p)
    with pytest.raises(DataError, match=message):
        list(iter_texts(p))


def test_csv_texts_longer_than_the_csv_modules_default_limit_are_read(write_csv) -> None:
    long = "word " * 40_000  # 200,000 characters; csv's default field limit is 131,072
    p = write_csv("long.csv", f'label,text\npos,"{long}"\nneg,short\n')
    ds = read_dataset(p)
    assert ds.texts == [long.strip(), "short"]
    assert [t for _, t in iter_texts(p)] == [long.strip(), "short"]
    assert csv.field_size_limit() >= 200_000


def test_a_bare_carriage_return_is_reported_with_a_hint(write_csv) -> None:
    p = write_csv("mac.csv", b"label,text\rpos,fine\rneg,bad\r")
    with pytest.raises(DataError, match=r"mac.csv:1: malformed CSV: a carriage return .* convert \\r line endings"):
        read_dataset(p)


# ---------------------------------------------------------------------------------------------
# JSON Lines: line breaks inside strings, label and text types

SEPARATORS = "\u2028\u2029\x85"  # line and paragraph separators, NEL: str.splitlines breaks on all


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    rows = [{"text": f"one{SEPARATORS}two", "label": "a"}, {"text": "three", "label": "b"}]
    p = tmp_path / "sep.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows) + '{"text": 1, "label": "a"}\n',
                 encoding="utf-8")
    # The third line is bad: its number shows the separators did not shift the line count.
    with pytest.raises(DataError, match=r"sep.jsonl:3: text field 'text' is a number \(1\), not a string"):
        read_dataset(p)
    with pytest.raises(DataError, match=r"sep.jsonl:3: text field 'text' is a number"):
        list(iter_texts(p))
    ds = read_dataset(p, skip_bad_rows=True)
    assert ds.texts == [f"one{SEPARATORS}two", "three"] and ds.lines == [1, 2]
    assert list(iter_texts(p, skip_bad_rows=True)) == [(1, f"one{SEPARATORS}two"), (2, "three")]


# A list is a multi-label set (issue 13); its members are checked like single labels.
@pytest.mark.parametrize("label", [True, False, 1.5, 1.0, None, [True], [1.5], [None], {"a": 1}])
def test_jsonl_labels_that_are_not_strings_or_integers_are_refused(tmp_path: Path, label: object) -> None:
    p = tmp_path / "labels.jsonl"
    p.write_text(json.dumps({"text": "fine", "label": "a"}) + "\n" + json.dumps({"text": "ok", "label": label}) + "\n")
    with pytest.raises(DataError, match=r"labels.jsonl:2: (label is|missing label|the label list holds)"):
        read_dataset(p)


def test_jsonl_integer_labels_become_their_decimal_string_and_strings_are_stripped(tmp_path: Path) -> None:
    p = tmp_path / "labels.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [{"text": "a", "label": 3}, {"text": "b", "label": " pos "},
                                                        {"text": "c", "label": -1}]))
    assert read_dataset(p).labels == ["3", "pos", "-1"]


@pytest.mark.parametrize("text", [None, 7, True, ["a"], {"a": "b"}, "   "])
def test_prediction_refuses_texts_that_are_not_strings(tmp_path: Path, text: object) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": text}) + "\n")
    rows = iter_texts(p)
    assert next(rows) == (1, "fine")
    with pytest.raises(DataError, match=r"in.jsonl:2: (text field 'text' is .*, not a string|empty text)"):
        next(rows)


# ---------------------------------------------------------------------------------------------
# Prediction input: gzip, BOM, encodings, line endings, streaming


def test_prediction_reports_broken_gzip_files_by_name(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(json.dumps({"text": f"text {i}"}).encode() + b"\n" for i in range(2000)))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.jsonl.gz: truncated gzip file"):
        list(iter_texts(truncated))
    plain = tmp_path / "plain.txt.gz"
    plain.write_text("not compressed\n")
    with pytest.raises(DataError, match=r"plain.txt.gz: not a valid gzip file"):
        list(iter_texts(plain))
    with pytest.raises(DataError, match=r"cut.jsonl.gz: truncated gzip file"):
        read_dataset(truncated, labelled=False)


def test_prediction_accepts_a_byte_order_mark_as_training_does(tmp_path: Path) -> None:
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftext,label\nhello,a\n".encode())
    assert read_dataset(p).texts == ["hello"]
    assert list(iter_texts(p)) == [(2, "hello")]
    g = tmp_path / "bom.jsonl.gz"
    g.write_bytes(gzip.compress('\ufeff{"text": "hi"}\n'.encode()))
    assert list(iter_texts(g)) == [(1, "hi")]


@pytest.mark.parametrize("name", ["latin.txt", "latin.csv", "latin.jsonl", "latin.jsonl.gz"])
def test_prediction_names_the_line_of_bytes_that_are_not_utf8(tmp_path: Path, name: str) -> None:
    lines = ["text", "fine", "caf\xe9"] if name.endswith(".csv") else [json.dumps({"text": t}, ensure_ascii=False)
                                                                      for t in ("a", "b", "caf\xe9")]
    if name.endswith(".txt"):
        lines = ["a", "b", "caf\xe9"]
    raw = ("\n".join(lines) + "\n").encode("latin-1")
    (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(DataError, match=rf"{name}:3: bytes that are not UTF-8 \(b'\\xe9"):
        list(iter_texts(tmp_path / name))


def test_a_gzip_file_without_gz_suffix_gets_a_hint(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(gzip.compress(b'{"text": "a"}\n'))
    with pytest.raises(DataError, match=r"x.jsonl:1: bytes that are not UTF-8 .*looks gzip-compressed"):
        list(iter_texts(p))


def test_crlf_line_endings_are_dropped_in_every_format(tmp_path: Path) -> None:
    txt = tmp_path / "win.txt"
    txt.write_bytes(b"first text\r\n\r\nsecond\r\n")
    assert list(iter_texts(txt)) == [(1, "first text"), (3, "second")]
    c = tmp_path / "win.csv"
    c.write_bytes(b'text,label\r\n"multi\r\nline",a\r\nplain,b\r\n')
    assert list(iter_texts(c)) == [(2, "multi\r\nline"), (4, "plain")]
    assert read_dataset(c).labels == ["a", "b"]


def test_an_empty_input_file_is_an_error(tmp_path: Path) -> None:
    for name in ("e.csv", "e.jsonl", "e.txt"):
        (tmp_path / name).write_text("\n \n")
        with pytest.raises(DataError, match=rf"{name}: file is empty"):
            list(iter_texts(tmp_path / name))


def test_prediction_input_is_streamed(tmp_path: Path) -> None:
    """Rows come out before the rest of the file is read: a bad line 4 does not stop lines 1-3."""
    p = tmp_path / "big.jsonl"
    p.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(1, 4)) + "not json\n")
    assert [t for _, t in islice(iter_texts(p), 3)] == ["t1", "t2", "t3"]


@pytest.mark.parametrize("name", ["s.csv", "s.tsv", "s.jsonl", "s.jsonl.gz", "s.csv.gz"])
def test_training_and_prediction_read_a_file_alike(tmp_path: Path, name: str) -> None:
    texts = ["plain", "  padded  ", 'with "quotes", commas\tand tabs', "two\nlines", f"sep{SEPARATORS}arators"]
    base = name.removesuffix(".gz")
    if base.endswith(".jsonl"):
        body = "".join(json.dumps({"text": t, "label": str(i)}, ensure_ascii=False) + "\r\n" for i, t in enumerate(texts))
    else:
        import io

        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t" if base.endswith(".tsv") else ",", lineterminator="\r\n")
        w.writerow(["text", "label"])
        w.writerows([t, str(i)] for i, t in enumerate(texts))
        body = buf.getvalue()
    raw = ("\ufeff" + body).encode()
    (tmp_path / name).write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    ds = read_dataset(tmp_path / name)
    assert ds.texts == [t.strip() for t in texts]
    assert list(zip(ds.lines or [], ds.texts)) == list(iter_texts(tmp_path / name))


# ---------------------------------------------------------------------------------------------
# Folder datasets


def _folder(tmp_path: Path, classes: dict[str, list[str]]) -> Path:
    root = tmp_path / "folder"
    for label, texts in classes.items():
        (root / label).mkdir(parents=True)
        for i, t in enumerate(texts):
            (root / label / f"{i}.txt").write_text(t, encoding="utf-8")
    return root


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path: Path, caplog) -> None:
    root = _folder(tmp_path, {"neg": ["meh"], "neutral": [], "pos": ["great"]})
    (root / "neutral" / ".DS_Store").write_text("x")
    with pytest.raises(DataError, match=r"folder/neutral: class folder 'neutral' has no example files"):
        read_dataset(root)
    with caplog.at_level(logging.WARNING):
        ds = read_dataset(root, skip_bad_rows=True)
    assert ds.label_names() == ["neg", "pos"]
    assert "class 'neutral' has no example files; it is LEFT OUT" in caplog.text


def test_a_class_whose_every_file_is_bad_is_named_too(tmp_path: Path, caplog) -> None:
    root = _folder(tmp_path, {"neg": ["meh"], "pos": ["  \n"]})
    with pytest.raises(DataError, match=r"pos/0.txt:1: empty text"):
        read_dataset(root)
    with caplog.at_level(logging.WARNING):
        ds = read_dataset(root, skip_bad_rows=True)
    assert ds.labels == ["neg"] and ds.skipped == 1
    assert "class 'pos' has no usable example files (all were skipped)" in caplog.text


def test_folder_files_not_in_utf8_name_their_line(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"neg": ["meh"], "pos": ["great"]})
    (root / "pos" / "1.txt").write_bytes("fine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"pos/1.txt:2: bytes that are not UTF-8 \(b'\\xe9"):
        read_dataset(root)


# ---------------------------------------------------------------------------------------------
# predict --input end to end: bad files end with "error: FILE..." (exit 1), never a traceback


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from classiformer.cli import main

    from .conftest import write_jsonl

    root = tmp_path_factory.mktemp("readers_cli")
    train = write_jsonl(root / "train.jsonl", 60, seed=1)
    assert main(["train", "--train", str(train), "--preset", "tiny", "--epochs", "1", "--vocab-size", "60",
                 "--ngram-buckets", "16", "--output", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("cut.jsonl.gz", gzip.compress(b'{"text": "goal"}\n' * 5000)[:-20], "truncated gzip file"),
        ("plain.csv.gz", b"text\ngoal\n", "not a valid gzip file"),
        ("latin.txt", "goal\ncaf\xe9\n".encode("latin-1"), ":2: bytes that are not UTF-8"),
        ("types.jsonl", b'{"text": "goal"}\n{"text": null}\n', ':2: text field \'text\' is null, not a string'),
    ],
)
def test_predict_input_errors_name_the_file(tiny_run: Path, tmp_path: Path, capsys, name: str, content: bytes,
                                            message: str) -> None:
    from classiformer.cli import main

    p = tmp_path / name
    p.write_bytes(content)
    out = tmp_path / "out.csv"
    assert main(["predict", str(tiny_run), "--input", str(p), "--output", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {p}") and message in err and "Traceback" not in err
    assert not out.exists()  # no partial output


def test_predict_input_with_bom_and_crlf(tiny_run: Path, tmp_path: Path, capsys) -> None:
    from classiformer.cli import main

    p = tmp_path / "win.csv"
    p.write_bytes("\ufefftext\r\ngoal match\r\nstock market\r\n".encode())
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(tiny_run), "--input", str(p), "--output", str(out), "--no-progress"]) == 0
    assert [json.loads(r)["line"] for r in out.read_text().splitlines()] == [2, 3]
