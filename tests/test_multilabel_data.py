"""Multi-label data: label lists in JSONL/Parquet, a label separator in CSV/TSV, rows with no label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classiformer.data import (
    Columns,
    DataError,
    TextDataset,
    check_labels_known,
    read_dataset,
    stratified_split,
)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_label_lists_with_empty_sets_and_plain_labels(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "m.jsonl", [
        {"text": "goal and stock", "labels": ["sports", "money"]},
        {"text": "nothing here", "labels": []},
        {"text": "chip", "labels": "tech"},  # a plain label is a set of one
        {"text": "code", "labels": [" tech ", 7]},
    ])
    ds = read_dataset(p)
    assert ds.is_multi_label and ds.labels is None
    assert ds.label_sets == [["sports", "money"], [], ["tech"], ["tech", "7"]]
    assert ds.label_names() == ["7", "money", "sports", "tech"]
    assert ds.lines == [1, 2, 3, 4]
    sub = ds.subset([3, 1])
    assert sub.label_sets == [["tech", "7"], []] and sub.lines == [4, 2]
    # The label column may be named explicitly and hold lists too.
    q = write_jsonl(tmp_path / "named.jsonl", [{"text": "a", "tags": ["x"]}, {"text": "b", "tags": ["y", "x"]}])
    assert read_dataset(q, Columns(label="tags")).label_sets == [["x"], ["y", "x"]]


def test_only_plain_labels_stay_single_label(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "s.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    ds = read_dataset(p)
    assert not ds.is_multi_label and ds.labels == ["x", "y"] and ds.label_sets is None
    multi = ds.as_multi_label()
    assert multi.is_multi_label and multi.label_sets == [["x"], ["y"]] and multi.labels is None


@pytest.mark.parametrize(
    ("labels", "problem"),
    [([True], "the label list holds a boolean"), ([1.5], "the label list holds a number"),
     (["a", " "], "an empty label in the label list"), (["a", "a"], "label 'a' listed twice"),
     ([["a"]], "the label list holds an array")],
)
def test_bad_label_lists_name_file_and_line(tmp_path: Path, labels: list[object], problem: str) -> None:
    p = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine", "labels": ["a"]}, {"text": "bad", "labels": labels}])
    with pytest.raises(DataError, match=rf"bad.jsonl:2: {problem}"):
        read_dataset(p)
    ds = read_dataset(p, skip_bad_rows=True)
    assert ds.label_sets == [["a"]] and ds.skipped == 1


def test_csv_and_tsv_with_a_label_separator(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text('text,label\n"goal, stock",sports|money\nnothing,\nchip, tech \n"code","tech|7"\n')
    ds = read_dataset(p, Columns(label_sep="|"))
    assert ds.label_sets == [["sports", "money"], [], ["tech"], ["tech", "7"]] and ds.lines == [2, 3, 4, 5]
    t = tmp_path / "m.tsv"
    t.write_text("label\ttext\nsports;money\tgoal stock\n\tnothing\n")
    assert read_dataset(t, Columns(label_sep=";")).label_sets == [["sports", "money"], []]
    # Without a separator a "|" is part of the class name, as before.
    assert read_dataset(p, Columns(), skip_bad_rows=True).labels == ["sports|money", "tech", "tech|7"]
    p.write_text("text,label\nfine,a|b\nbad,a||b\n")
    with pytest.raises(DataError, match=r"m.csv:3: an empty label in the label list"):
        read_dataset(p, Columns(label_sep="|"))


def test_label_map_applies_to_every_label_of_a_set(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text("1|2,first\n,second\n3,third\n")
    cols = Columns(label=0, text=[1], header=False, label_map={"1": "World", "2": "Sports", "3": "Business"}, label_sep="|")
    assert read_dataset(p, cols).label_sets == [["World", "Sports"], [], ["Business"]]
    p.write_text("1|9,first\n")
    with pytest.raises(DataError, match=r"h.csv:1: unknown class '9'"):
        read_dataset(p, cols)


def test_parquet_list_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "m.parquet"
    pq.write_table(pa.table({"text": ["a b", "c", "d"], "label": [["x", "y"], [], ["y"]]}), p)
    assert read_dataset(p).label_sets == [["x", "y"], [], ["y"]]


def test_labels_seen_only_in_test_are_an_error(tmp_path: Path) -> None:
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["x", "new"]}])
    with pytest.raises(DataError, match=r"test.jsonl:2: label 'new' was not seen in training"):
        check_labels_known(read_dataset(test), ["x", "y"])
    check_labels_known(read_dataset(test).subset([0]), ["x", "y"])


def test_multi_label_split_is_iteratively_stratified() -> None:
    sets = [["common"]] * 60 + [["common", "rare"], ["rare"], ["other"]] + [["other"]] * 20 + [[]] * 17
    ds = TextDataset([f"text {i}" for i in range(len(sets))], None, "<toy>", label_sets=[list(s) for s in sets])
    train, val = stratified_split(ds, 0.1, seed=0)
    assert train.is_multi_label and val.is_multi_label and len(train) + len(val) == len(ds)
    for part in (train, val):
        assert "rare" in {lbl for s in part.label_sets or [] for lbl in s}
    assert 9 <= len(val) <= 12
    with pytest.raises(DataError, match="no example has a label"):
        TextDataset(["a"], None, label_sets=[[]]).label_names()
    with pytest.raises(ValueError, match="not both"):
        TextDataset(["a"], ["x"], label_sets=[["x"]])
