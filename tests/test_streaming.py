"""Training data larger than memory (data/streaming.py): shards across ranks and DataLoader
workers, bad rows in workers, the bounded seeded shuffle window, the exact resume position,
streaming training through the one training loop, and prediction in several processes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from classiformer import Classifier, evaluate, fit, resolve_config
from classiformer.cli import main
from classiformer.config import TrainConfig
from classiformer.data import Columns, DataError
from classiformer.data import streaming as streaming_mod
from classiformer.data.streaming import StreamBatches, StreamFeed, TextStream

from .conftest import make_texts
from .test_cli import write_split


def row_ids(texts: list[str]) -> list[np.ndarray]:
    """An 'encoder' that gives away which row a text is ("r17 ..." -> [19, 19, ...]) and gives
    rows different lengths, so that batches can be traced back to their rows."""
    out = []
    for t in texts:
        k = int(t.split()[0][1:])
        out.append(np.full(1 + k % 5, k + 2, dtype=np.int64))
    return out


def rows_of(batch: dict[str, np.ndarray] | dict[str, torch.Tensor]) -> list[int]:
    return [int(x) - 2 for x in np.asarray(batch["input_ids"])[:, 0]]


def write_rows(path: Path, n: int, bad: dict[int, str] | None = None) -> Path:
    """A CSV of ``n`` records ("r<k> ..." texts, labels a/b/c), record k on line k + 2; records in
    ``bad`` are written as that raw line instead."""
    bad = bad or {}
    with path.open("w", newline="", encoding="utf-8") as f:
        f.write("label,text\n")
        w = csv.writer(f)
        for k in range(n):
            if k in bad:
                f.write(bad[k] + "\n")
            else:
                w.writerow(["abc"[k % 3], f"r{k} words"])
    return path


def one_pass(stream: TextStream, rank: int, world: int, workers: int, **kw: object) -> list[list[int]]:
    """Every batch of one pass over rank ``rank``'s shards, through a real DataLoader."""
    ds = StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, batch_size=4, window=10, seed=3, rank=rank,
                       world_size=world, workers=workers, loop=False, **kw)  # type: ignore[arg-type]
    loader = DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=streaming_mod._as_is)
    batches = []
    for batch, meta in loader:
        assert batch is not None, meta
        batches.append(rows_of(batch))
    return batches


@pytest.mark.parametrize("world, workers", [(1, 0), (1, 2), (2, 2), (3, 1)])
def test_shards_are_disjoint_and_complete_across_ranks_and_workers(tmp_path: Path, world: int, workers: int) -> None:
    stream = TextStream([write_rows(tmp_path / "a.csv", 37), write_rows(tmp_path / "b.csv", 20)])
    held_out = frozenset({5, 40})  # validation rows: in no shard
    seen = [k for rank in range(world) for batch in one_pass(stream, rank, world, workers, exclude=held_out)
            for k in batch]
    # Rows of the second file continue the first's record numbers (37 + its own "r<k>").
    expected = [k for k in range(37)] + [k for k in range(20)]
    assert sorted(seen) == sorted(k for i, k in enumerate(expected) if i not in held_out)


def test_the_first_pass_names_a_number_written_two_ways_as_labels(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "n.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{'1.0' if i % 3 == 0 else i % 2}\n" for i in range(30)))
    with caplog.at_level("WARNING", logger="classiformer.data.datasets"):
        TextStream([path]).scan(seed=0, val_fraction=0.1, sample_size=10)
    assert [r.getMessage() for r in caplog.records if "'1' and '1.0'" in r.getMessage() and str(path) in r.getMessage()]


def test_each_shard_reads_only_its_records(tmp_path: Path) -> None:
    stream = TextStream([write_rows(tmp_path / "a.csv", 40)])
    for rank in range(2):
        rows = [k for batch in one_pass(stream, rank, 2, 2) for k in batch]
        assert {k % 4 for k in rows} == {rank * 2, rank * 2 + 1}  # shards rank*2 + worker


@pytest.mark.parametrize("shard", [0, 1])
def test_a_bad_row_in_any_worker_stops_with_file_and_line(tmp_path: Path, shard: int) -> None:
    record = 10 + shard  # record 10 goes to worker 0, record 11 to worker 1
    path = write_rows(tmp_path / "bad.csv", 30, bad={record: "a,too,many"})
    feed = StreamFeed(StreamBatches(TextStream([path]), row_ids, 0, ["a", "b", "c"], False, 4, 10, seed=1,
                                    workers=2), max_steps=100, eval_every=100)
    with pytest.raises(DataError, match=rf"bad\.csv:{record + 2}: expected 2 fields .* found 3") as err:
        for _ in range(100):
            feed.next_batch()
    assert "Traceback" not in str(err.value)
    # The first pass finds it too, before any training.
    with pytest.raises(DataError, match=rf"bad\.csv:{record + 2}: expected 2 fields"):
        TextStream([path]).scan(1, 0.1, 100)


def test_skipped_bad_rows_are_counted_in_every_worker(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "bad.csv", 30, bad={10: "a,too,many", 11: "b,", 21: "c,too,many"})
    stream = TextStream([path], skip_bad_rows=True)
    assert stream.scan(1, None, 100).skipped == 3
    feed = StreamFeed(StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, 4, 10, seed=1, workers=2),
                      max_steps=100, eval_every=100)
    rows = [k for _ in range(30) for k in rows_of(feed.next_batch())]  # several passes over 27 rows
    feed.close()
    assert feed.skipped == 3  # counted once (first pass), by the worker each belongs to
    assert {10, 11, 21}.isdisjoint(rows) and set(rows) == set(range(30)) - {10, 11, 21}


def test_shuffle_window_is_bounded_and_seeded(tmp_path: Path) -> None:
    stream = TextStream([write_rows(tmp_path / "a.csv", 100)])

    def batches(seed: int) -> list[list[int]]:
        ds = StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, batch_size=4, window=20, seed=seed, loop=False)
        return [rows_of(b) for b, _ in ds]  # type: ignore[arg-type]

    first = batches(7)
    assert first == batches(7)  # seeded: the same order every time
    assert first != batches(8)
    flat = [k for b in first for k in b]
    assert sorted(flat) == list(range(100))
    # Bounded: the i-th 20 rows out are exactly the i-th window of 20 rows in, shuffled.
    for w in range(5):
        window = flat[w * 20 : (w + 1) * 20]
        assert sorted(window) == list(range(w * 20, (w + 1) * 20)) and window != sorted(window)
    # Length-bucketed within the window: a batch's rows have close lengths (1 + k % 5 tokens).
    ds = StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, batch_size=4, window=20, seed=7, loop=False)
    widths = [b["attention_mask"].sum(1) for b, _ in ds]  # type: ignore[index]
    assert sum(int(w.max() - w.min()) for w in widths) < sum(4 for _ in widths)


@pytest.mark.parametrize("workers, rank, world, cut", [(2, 0, 1, 7), (2, 1, 2, 6), (0, 0, 1, 9)])
def test_resume_position_is_exact(tmp_path: Path, workers: int, rank: int, world: int, cut: int) -> None:
    """After ``cut`` batches (an odd count, with 2 workers, puts worker 1 next), a feed restored from
    the saved position yields exactly the batches the uninterrupted feed yields, across windows
    and passes."""
    stream = TextStream([write_rows(tmp_path / "a.csv", 45)])

    def feed() -> StreamFeed:
        return StreamFeed(StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, 3, 7, seed=5, rank=rank,
                                        world_size=world, workers=workers), max_steps=100, eval_every=100)

    whole = feed()
    expected = [rows_of(whole.next_batch()) for _ in range(cut + 25)]
    whole.close()
    first = feed()
    assert [rows_of(first.next_batch()) for _ in range(cut)] == expected[:cut]
    saved = json.loads(json.dumps(first.position()))  # it travels as JSON in the trainer state
    first.close()
    resumed = feed()
    resumed.restore(saved)
    assert [rows_of(resumed.next_batch()) for _ in range(25)] == expected[cut:]
    resumed.close()
    other = StreamFeed(StreamBatches(stream, row_ids, 0, ["a", "b", "c"], False, 3, 7, seed=5, workers=3),
                       max_steps=100, eval_every=100)
    if saved["n_shards"] != 3:
        with pytest.raises(DataError, match="cannot resume exactly"):
            other.restore(saved)


def test_first_pass_knows_every_label_and_samples_within_bounds(tmp_path: Path) -> None:
    path = write_split(tmp_path / "t.csv", 300, seed=1)
    with path.open("a", encoding="utf-8") as f:
        f.write("rare,the very last row holds a class of its own\n")
    scan = TextStream([path]).scan(seed=3, val_fraction=0.1, sample_size=50)
    assert scan.labels == ["money", "rare", "sports", "tech"]  # from every row, validation rows too
    assert len(scan.validation) == 30 and len(scan.held_out) == 30
    assert len(scan.sample) <= 50 and not set(scan.sample) & set(scan.validation.texts)
    assert scan.train_rows == 271 and sum(scan.label_counts.values()) == 271
    assert TextStream([path]).scan(seed=3, val_fraction=0.1, sample_size=50).held_out == scan.held_out  # seeded


def stream_config(**train: object):  # type: ignore[no-untyped-def]
    return resolve_config(
        "tiny", model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.1},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"batch_size": 16, "lr": 3e-2, "patience": 0, "streaming": True, "shuffle_window": 48,
               "loader_workers": 2, **train},
    )


def test_streaming_training_learns_and_resumes_exactly(tmp_path: Path) -> None:
    path = write_split(tmp_path / "train.csv", 400, seed=1)
    cfg = {"max_steps": 60, "eval_every": 20}
    full = fit(stream_config(**cfg), TextStream([path]), tmp_path / "full", progress=False)
    assert [h["step"] for h in full.history] == [20, 40, 60] and full.best_val_accuracy > 0.9
    assert evaluate(Classifier.load(tmp_path / "full"), make_texts(60, seed=2), progress=False)["accuracy"] > 0.9

    def stop(step: int) -> None:
        if step == 27:  # odd, mid-round: DataLoader worker 1 is next
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(stream_config(**cfg), TextStream([path]), tmp_path / "cut", progress=False, on_step=stop)
    state = torch.load(tmp_path / "cut" / "last" / "trainer_state.pt", weights_only=True)
    assert json.loads(state["stream"])["consumed"] == 27
    fit(None, TextStream([path]), tmp_path / "cut", resume=True, progress=False)
    a = torch.load(tmp_path / "full" / "last" / "trainer_state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last" / "trainer_state.pt", weights_only=True)
    assert a["stream"] == b["stream"]
    keys = ("epoch", "step", "train_loss", "val_loss", "val_accuracy")
    assert [[h[k] for k in keys] for h in json.loads(a["history"])] == [[h[k] for k in keys] for h in json.loads(b["history"])]
    wa = Classifier.load(tmp_path / "full" / "last").model.state_dict()
    wb = Classifier.load(tmp_path / "cut" / "last").model.state_dict()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_cli_streaming_with_max_steps_learns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, test = write_split(tmp_path / "train.csv", 400, seed=1), write_split(tmp_path / "test.csv", 90, seed=2)
    out = tmp_path / "run"
    args = ["train", "--train", str(train), "--test", str(test), "--output", str(out), "--streaming",
            "--max-steps", "80", "--eval-every", "40", "--preset", "tiny", "--vocab-size", "60", "--max-length", "12",
            "--batch-size", "16", "--lr", "0.03", "--patience", "0", "--threads", "1", "--no-progress",
            "--shuffle-window", "64", "--loader-workers", "1"]
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.9
    assert json.loads((out / "config.json").read_text())["train"]["streaming"] is True
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    resumed = [("120" if a == "80" else a) for a in args] + ["--resume"]  # a larger budget continues the run
    assert main(resumed) == 0
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [40, 80, 120]


def test_large_files_stream_without_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = write_split(tmp_path / "train.csv", 300, seed=1)
    monkeypatch.setattr(streaming_mod, "STREAMING_THRESHOLD_BYTES", train.stat().st_size - 1)
    out = tmp_path / "run"
    assert main(["train", "--train", str(train), "--output", str(out), "--preset", "tiny", "--vocab-size", "60",
                 "--max-length", "12", "--max-steps", "10", "--threads", "1", "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["streaming"] is True


def test_streaming_rejects_what_it_cannot_do(tmp_path: Path) -> None:
    path = write_split(tmp_path / "train.csv", 100, seed=1)
    with pytest.raises(Exception, match="budget of streaming"):
        TrainConfig(max_steps=10)
    with pytest.raises(Exception, match="TextStream"):
        fit(stream_config(max_steps=5), make_texts(50), tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="has no usable rows"):
        few = write_rows(tmp_path / "few.csv", 2)
        f = StreamFeed(StreamBatches(TextStream([few]), row_ids, 0, ["a", "b", "c"], False, 4, 10, seed=1,
                                     world_size=3, rank=2), 10, 10)
        f.next_batch()
    with pytest.raises(DataError, match="folder of class sub-folders"):
        TextStream([tmp_path]).scan(1, 0.1, 10)
    assert Columns().label == "label" and path.exists()


def test_predict_in_several_processes_equals_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(resolve_config("tiny", tokenizer={"vocab_size": 60, "max_length": 12}, train={"epochs": 2}),
        make_texts(200, seed=1), run, progress=False)
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in make_texts(10_000, seed=4).texts))  # 3 chunks
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    common = ["predict", str(run), "--input", str(rows), "--threads", "1", "--no-progress", "--batch-size", "64"]
    assert main([*common, "-o", str(one)]) == 0
    assert main([*common, "-o", str(many), "--processes", "2"]) == 0
    assert one.read_text() == many.read_text() and len(one.read_text().splitlines()) == 10_001


def test_streaming_parquet_with_label_lists_trains_a_multi_label_model(tmp_path: Path) -> None:
    """A Parquet file whose label column holds lists (zero, one or several labels a row) streams into
    a sigmoid model: label sets read in every DataLoader worker, thresholds tuned and stored."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from .test_multilabel_training import NAMES, indicator, multilabel_texts

    texts, sets = multilabel_texts(400, seed=0)
    path = tmp_path / "train.parquet"
    # row groups of 100 rows, so that the two workers read different parts of the file
    pq.write_table(pa.table({"text": texts, "label": sets}), path, row_group_size=100)
    stream = TextStream([path])
    assert stream.scan(seed=42, val_fraction=0.1, sample_size=500).multi_label and stream.is_multi_label
    config = stream_config(max_steps=240, eval_every=120)
    config.model.dropout = 0.0  # as in the other multi-label toy runs: the toy task needs no regulariser
    result = fit(config, stream, tmp_path / "run", progress=False)
    assert [h["step"] for h in result.history] == [120, 240] and "val_micro_f1" in result.history[-1]
    clf = Classifier.load(tmp_path / "run")
    assert clf.meta.multi_label and clf.labels == NAMES and clf.thresholds is not None
    test_texts, test_sets = multilabel_texts(120, seed=5)
    decided = clf.thresholds.apply(clf.predict_proba(test_texts))
    truth = indicator(test_sets).astype(bool)
    assert (decided == truth).all(1).mean() > 0.7  # subset accuracy on new texts
    assert (~decided[[i for i, s in enumerate(test_sets) if not s]].any(1)).mean() > 0.7  # no label: none predicted
