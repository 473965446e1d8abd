"""Readers, splits and bad input: every problem names the file and line, nothing is dropped silently."""

from __future__ import annotations

import gzip
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
from classiformer.data.batching import EncodedDataset, batch_of, bucketed_batches, collate

CSV = 'label,title,body\nsport,Goal!,"A late goal, at last"\ntech,New chip,Faster\n'


def test_csv_with_several_text_columns(write_csv) -> None:
    ds = read_dataset(write_csv("a.csv", CSV), Columns(label="label", text=["title", "body"]))
    assert ds.texts == ["Goal! A late goal, at last", "New chip Faster"]
    assert ds.labels == ["sport", "tech"]
    assert ds.lines == [2, 3]


def test_one_number_written_two_ways_as_labels_is_named(write_csv, caplog: pytest.LogCaptureFixture) -> None:
    p = write_csv("n.csv", "text,label\ngood,1.0\nbad,0\nfine,1\nawful,0\n")
    with caplog.at_level("WARNING", logger="classiformer.data.datasets"):
        ds = read_dataset(p)
    assert sorted(set(ds.labels or [])) == ["0", "1", "1.0"]  # read as written: nothing merged behind the user's back
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(p) in warning and "'1' and '1.0'" in warning and "'0'" not in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="classiformer.data.datasets"):
        read_dataset(write_csv("ok.csv", "text,label\ngood,1\nbad,0\nfine,10\nodd,one\n"))
    assert not caplog.records


def test_a_missing_column_suggests_the_files_own(write_csv) -> None:
    with pytest.raises(DataError, match=r"n\.csv:1: missing column 'text'.*--text-column review --label-column Sentiment"):
        read_dataset(write_csv("n.csv", "id,review,Sentiment\n1,good,pos\n"))
    with pytest.raises(DataError, match=r"--text-column NAME --label-column NAME"):
        read_dataset(write_csv("m.csv", "a,b\n1,2\n"))


def test_headerless_csv_with_label_map(write_csv) -> None:
    p = write_csv("ag.csv", '"3","Oil up","Prices rise"\n"1","Vote","Election today"\n')
    ds = read_dataset(p, Columns(label=0, text=[1, 2], header=False, label_map={"1": "World", "3": "Business"}))
    assert ds.labels == ["Business", "World"]
    assert ds.texts[0] == "Oil up Prices rise"


def test_tsv_jsonl_gz_and_folder(tmp_path: Path, write_csv) -> None:
    tsv = read_dataset(write_csv("a.tsv", "text\tlabel\nhello there\tpos\nawful\tneg\n"))
    assert tsv.labels == ["pos", "neg"]
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    ds = read_dataset(gz)
    assert ds.texts == ["good", "bad"] and ds.labels == ["1", "0"]
    assert ds.label_names() == ["0", "1"]
    root = tmp_path / "folder"
    for label, texts in {"neg": ["meh", "bad"], "pos": ["great"]}.items():
        (root / label).mkdir(parents=True)
        for i, t in enumerate(texts):
            (root / label / f"{i}.txt").write_text(t, encoding="utf-8")
    folder = read_dataset(root)
    assert sorted(zip(folder.labels or [], folder.texts)) == [("neg", "bad"), ("neg", "meh"), ("pos", "great")]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["one", "two"], "label": ["a", "b"]}), p)
    assert read_dataset(p).labels == ["a", "b"]


@pytest.mark.parametrize(
    "name, content, columns, message",
    [
        ("short.csv", "label,text\npos,fine\nneg\n", None, r"short.csv:3: expected 2 fields \(as in the header\), found 1"),
        ("cols.csv", "label,body\npos,fine\n", None, r"cols.csv:1: missing column 'text'"),
        ("empty_text.csv", 'label,text\npos,fine\nneg,"   "\n', None, r"empty_text.csv:3: empty text"),
        ("nolabel.csv", "label,text\n,fine\n", None, r"nolabel.csv:2: missing label"),
        ("bad.jsonl", '{"text": "ok", "label": "a"}\n{"text": "oops"\n', None, r"bad.jsonl:2: invalid JSON"),
        ("field.jsonl", '{"text": "ok", "label": "a"}\n{"txt": "x", "label": "a"}\n', None, r"field.jsonl:2: missing field"),
        ("empty.csv", "", None, r"empty.csv: file is empty"),
        ("quote.csv", 'label,text\npos,"unclosed\n', None, r"quote.csv:2: malformed CSV"),
        ("ag.csv", '"7","a","b"\n', Columns(label=0, text=[1, 2], header=False, label_map={"1": "World"}), r"ag.csv:1: unknown class '7'"),
    ],
)
def test_bad_rows_name_file_and_line(write_csv, name: str, content: str, columns, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_dataset(write_csv(name, content), columns)


def test_non_utf8_bytes_name_the_line(write_csv) -> None:
    p = write_csv("latin.csv", "label,text\npos,fine\nneg,caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv:3: bytes that are not UTF-8"):
        read_dataset(p)


def test_skip_bad_rows_counts_what_it_skips(write_csv, caplog) -> None:
    p = write_csv("mixed.csv", 'label,text\npos,good\nneg\npos,"  "\nneg,bad\n')
    ds = read_dataset(p, skip_bad_rows=True)
    assert ds.texts == ["good", "bad"]
    assert ds.skipped == 2
    assert "skipped 2 bad row(s)" in caplog.text


def test_unseen_test_label_is_an_error(write_csv) -> None:
    ds = read_dataset(write_csv("test.csv", "label,text\npos,a\nmaybe,b\n"))
    with pytest.raises(DataError, match=r"test.csv:3: label 'maybe' was not seen in training"):
        check_labels_known(ds, ["neg", "pos"])


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_dataset(tmp_path / "nope.csv")
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(DataError, match="unknown format .xml"):
        read_dataset(tmp_path / "x.xml")


def test_stratified_split_is_seeded_and_keeps_every_class() -> None:
    ds = TextDataset([f"t{i}" for i in range(100)], ["a"] * 80 + ["b"] * 20)
    tr, va = stratified_split(ds, 0.1, seed=3)
    tr2, va2 = stratified_split(ds, 0.1, seed=3)
    assert va.texts == va2.texts and tr.texts == tr2.texts
    assert sorted(va.labels or []) == ["a"] * 8 + ["b"] * 2
    assert set(tr.texts) | set(va.texts) == set(ds.texts) and not set(tr.texts) & set(va.texts)
    assert stratified_split(ds, 0.1, seed=4)[1].texts != va.texts


def test_bucketed_batches_cover_every_example_once_and_group_lengths() -> None:
    import numpy as np

    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    batches = bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_factor=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 40  # random batches would spread ~190
    again = bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_factor=10)
    assert all((a == b).all() for a, b in zip(batches, again))
    assert not all((a == b).all() for a, b in zip(batches, bucketed_batches(lengths, 32, seed=1, epoch=1, bucket_factor=10)))


def test_bucketed_batches_group_keeps_each_steps_batches_together() -> None:
    """With ``group`` 2 (2 processes, one batch each per step) the 2 batches of a step are halves of
    the batch one process would take at twice the batch size, so they have similar lengths (neither
    process waits long for the other), and the short run of the last pool comes last."""
    import numpy as np

    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    pairs = bucketed_batches(lengths, 16, seed=1, epoch=0, bucket_factor=10, group=2)
    single = bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_factor=10)
    assert sorted(np.concatenate(pairs).tolist()) == list(range(1000))
    # 1000 = 3 pools of 320 + 40 examples: 63 batches of 16 (the last of 8), the last pool's 3 batches
    # in runs of 2 and 1; one process at 32 takes 32 batches
    assert len(pairs) == 63 and len(single) == 32 and len(pairs[-1]) == 8
    whole = [np.concatenate(pairs[k : k + 2]) for k in range(0, 62, 2)]
    assert sorted(map(sorted, map(np.ndarray.tolist, whole + [pairs[-1]]))) == sorted(
        map(sorted, map(np.ndarray.tolist, single)))
    assert [a.tolist() for a in whole] == [b.tolist() for b in single if len(b) == 32]
    gap = np.mean([abs(int(lengths[a].max()) - int(lengths[b].max())) for a, b in zip(pairs[0:62:2], pairs[1:62:2])])
    assert gap < 20  # neighbours in a sorted pool of 320; two batches drawn apart differ by ~60
    ungrouped = bucketed_batches(lengths, 16, seed=1, epoch=0, bucket_factor=20)
    assert np.mean([abs(int(lengths[a].max()) - int(lengths[b].max()))
                    for a, b in zip(ungrouped[0:62:2], ungrouped[1:62:2])]) > 30


def test_collate_pads_dynamically() -> None:
    import numpy as np

    b = collate([np.array([5, 6, 7]), np.array([8])], pad_id=0, labels=np.array([1, 0]))
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [1, 0]


def test_batch_lengths_round_up_to_a_multiple_within_the_longest_example() -> None:
    """The GPU path pads to a multiple of 64 (few distinct shapes), never past the set's longest."""
    import numpy as np

    data = EncodedDataset([np.arange(1, n + 1) for n in (3, 70, 130, 150)])
    widths = {n: batch_of(data, np.array([i]), 0, multiple=64, limit=150)["input_ids"].shape[1] for i, n in enumerate((3, 70, 130, 150))}
    assert widths == {3: 64, 70: 128, 130: 150, 150: 150}
    b = batch_of(data, np.array([0]), 0, multiple=64, limit=150)
    assert b["attention_mask"].sum().item() == 3 and b["input_ids"][0, 3:].eq(0).all()
    assert batch_of(data, np.array([0, 1]), 0)["input_ids"].shape == (2, 70)  # CPU: the longest member
