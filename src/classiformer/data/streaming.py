"""Training data larger than memory: labelled files read as a stream, never whole.

A :class:`TextStream` names CSV/TSV/JSON Lines files (each optionally ``.gz``) or Parquet files,
read row by row with the same code as :func:`~classiformer.data.datasets.read_dataset` (so the
same rows are valid, with the same errors naming file and line).

**First pass** (:meth:`TextStream.scan`, constant memory). Before training, one pass over the
files counts the rows and the labels, so the label set is known up front from every row (not
from a sample: a class first seen after hours of training could not get an output any more), and
checks every row (a bad one stops there, before any training, with its file and line; with
``skip_bad_rows`` it is counted). The same pass draws two seeded uniform samples by reservoir
sampling (Vitter, 1985, "Random sampling with a reservoir", Algorithm R): the validation rows
held out of training (``val_fraction`` of the rows, at most :data:`VALIDATION_MAX`, kept in
memory) and the texts a from-scratch tokenizer is fit on (at most ``tokenizer_sample``; the
validation rows are left out of it).

**Training pass** (:class:`StreamBatches`, a ``torch.utils.data.IterableDataset``). Records are
dealt round-robin to ``world_size x workers`` shards: record ``k`` of the stream (counting every
record, bad ones too, across the files in order) belongs to shard ``k mod S``, and DataLoader worker
``w`` of rank ``r`` serves shard ``r x workers + w`` (the pattern of PyTorch's ``IterableDataset``
documentation, with ``get_worker_info``). The shards are disjoint and together complete. Each
shard reads the whole stream but checks, tokenizes and batches only its own records: parsing a
row costs little next to tokenizing it and training on it. A shard gathers its examples in
windows of ``window`` examples; each window is tokenized (in the worker process), shuffled and
cut into length-bucketed batches by :func:`~classiformer.data.batching.bucketed_batches`, seeded
by ``(seed, pass, shard, window)``: memory is bounded by the window, and the batch order is a pure
function of the seed. A shard cycles over the data pass after pass without end; the budget is the
training loop's number of steps.

**Position.** Every batch carries where its shard stands (pass, window, the record the window
starts at, how many of its batches are done). :class:`StreamFeed` keeps the position of the last
batch consumed from each shard and the count of batches consumed; that is the resume state.
The DataLoader asks its workers for batches in turn, so the count also says which worker comes
next: a resumed feed starts the workers at their shards' positions, rotated so that the worker
asked first serves the shard that was next. The batches after a resume are then exactly those
an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from .. import distributed
from ..config import TrainConfig
from .batching import bucketed_batches, collate
from .datasets import (
    JSONL_SUFFIXES,
    Columns,
    DataError,
    TextDataset,
    _base_suffix,
    _csv_rows,
    _jsonl_rows,
    _label_column,
    _make_row,
    _Row,
    _row_labels,
    missing_column_hint,
    parquet_module,
    sort_labels,
    warn_of_numbers_written_twice,
)

log = logging.getLogger(__name__)

# Training files larger than this on disk are streamed even without --streaming: read into memory,
# a text takes several times its size on disk (a Python string, then its token ids), so a 1 GiB
# CSV would take several GB. Compressed files count at GZIP_RATIO times their size.
STREAMING_THRESHOLD_BYTES = 1 << 30
GZIP_RATIO = 4
# Validation rows held out of a stream are kept in memory, and evaluated every eval_every steps.
VALIDATION_MAX = 20_000
PARQUET_BATCH_ROWS = 4096


def stream_size(paths: Sequence[str | Path]) -> int:
    """The bytes ``paths`` would take uncompressed, roughly (``.gz`` files at :data:`GZIP_RATIO` times their size)."""
    total = 0
    for p in map(Path, paths):
        if p.is_file():
            total += p.stat().st_size * (GZIP_RATIO if p.suffix.lower() == ".gz" else 1)
    return total


def should_stream(paths: Sequence[str | Path]) -> bool:
    """Whether training data this large is better streamed (above :data:`STREAMING_THRESHOLD_BYTES`)."""
    return stream_size(paths) > STREAMING_THRESHOLD_BYTES


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` without a process group)."""
    return distributed.rank(), distributed.world_size()


def stream_rows(path: Path, columns: Columns, labelled: bool = True) -> Iterator[_Row]:
    """The records of one file, in order, each a valid row or its problem (see datasets.py)."""
    kind = _base_suffix(path)
    label = _label_column(path, columns, labelled)
    if kind in (".csv", ".tsv"):
        return _csv_rows(path, "\t" if kind == ".tsv" else ",", columns.text, label, columns.header, columns.label_sep)
    if kind in JSONL_SUFFIXES:
        return _jsonl_rows(path, [str(c) for c in columns.text], None if label is None else str(label))
    if kind == ".parquet":
        return _parquet_rows(path, [str(c) for c in columns.text], None if label is None else str(label), labelled)
    if path.is_dir():
        raise DataError(f"{path}: a folder of class sub-folders is read into memory; streaming reads files "
                        "(.csv, .tsv, .jsonl[.gz], .parquet)")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(f"{path}: unknown format {kind or '(no extension)'} for streaming; use .csv, .tsv, "
                    ".jsonl[.gz] or .parquet")


def _parquet_rows(path: Path, text_names: list[str], label: str | None, labelled: bool) -> Iterator[_Row]:
    """Records of a Parquet file, read a record batch at a time; "line" is the 1-based row number."""
    pq = parquet_module(path)
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    wanted = text_names + ([] if label is None else [label])
    for c in wanted:
        if c not in names:
            raise DataError(f"{path}: missing column {c!r}; the file has {names}: {missing_column_hint(names)}")
    line = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            line += 1
            values = [data[c][i] for c in text_names]
            yield _make_row(line, values, text_names, None if label is None else data[label][i], labelled)


class _Reservoir:
    """A uniform sample of at most ``size`` of the items offered (Algorithm R): after ``n`` offers,
    each item offered is held with probability ``size / n``."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng = size, rng
        self.items: list[Any] = []

    def offer(self, item: Any, n: int) -> None:
        """Offer the ``n``-th item (1-based)."""
        if len(self.items) < self.size:
            self.items.append(item)
        elif self.size:
            j = self.rng.randrange(n)
            if j < self.size:
                self.items[j] = item


@dataclass
class StreamScan:
    """What the first pass over a stream found."""

    records: int  # records read, bad ones included (the stream's length in record indices)
    rows: int  # valid rows
    labels: list[str]  # every label of every row, sorted (the model's outputs)
    label_counts: Counter[str]  # of the training rows (held-out validation rows not counted)
    multi_label: bool
    skipped: int
    validation: TextDataset | None  # the rows held out, or None
    held_out: frozenset[int]  # their record indices
    sample: list[str]  # texts to fit a tokenizer on
    key: tuple[Any, ...] = ()  # the settings it was made with

    @property
    def train_rows(self) -> int:
        return self.rows - len(self.held_out)


class TextStream:
    """Labelled training files read as a stream (see the module docstring). Before training,
    :meth:`scan` makes the first pass; :meth:`feed` then serves the training batches."""

    def __init__(self, paths: Sequence[str | Path], columns: Columns | None = None, skip_bad_rows: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataError("a stream needs at least one file")
        self.columns = columns or Columns()
        self.skip_bad_rows = skip_bad_rows
        self._scan: StreamScan | None = None
        self._multi = False

    @property
    def source(self) -> str:
        return ", ".join(map(str, self.paths))

    @property
    def labelled(self) -> bool:
        return self.columns.label is not None

    @property
    def scanned(self) -> StreamScan:
        if self._scan is None:
            raise RuntimeError("TextStream.scan() must run first (the first pass over the data)")
        return self._scan

    @property
    def is_multi_label(self) -> bool:
        return self._multi or self.scanned.multi_label

    def as_multi_label(self) -> TextStream:
        """The same stream, its labels read as one-label sets (``--multi-label``)."""
        self._multi = True
        return self

    def label_names(self) -> list[str]:
        names = self.scanned.labels
        if not names:
            raise DataError(f"{self.source}: no example has a label")
        return names

    @property
    def label_counts(self) -> Counter[str]:
        return self.scanned.label_counts

    @property
    def tokenizer_sample(self) -> list[str]:
        return self.scanned.sample

    def __len__(self) -> int:
        return self.scanned.train_rows

    def records(self, start: int = 0) -> Iterator[tuple[int, Path, _Row]]:
        """``(record index, file, record)`` from record ``start`` on, across the files in order."""
        index = 0
        for path in self.paths:
            for row in stream_rows(path, self.columns, self.labelled):
                if index >= start:
                    yield index, path, row
                index += 1

    def scan(
        self, seed: int, val_fraction: float | None, sample_size: int, progress: bool = False,
    ) -> StreamScan:
        """The first pass (see the module docstring); ``val_fraction=None`` holds out nothing (a
        validation set is given). Made once: a second call with the same settings returns it."""
        key = (seed, val_fraction, sample_size)
        if self._scan is not None and self._scan.key == key:
            return self._scan
        rng = random.Random(seed)
        held = _Reservoir(VALIDATION_MAX if val_fraction is not None else 0, rng)  # (record, line, text, labels)
        sample = _Reservoir(sample_size, rng)  # (record, text)
        counts: Counter[str] = Counter()
        rows = skipped = records = 0
        multi = bool(self.columns.label_sep)
        with tqdm(desc="first pass", unit="row", disable=not progress, leave=False) as bar:
            for index, path, row in self.records():
                records = index + 1
                if row.problem is None:
                    names, problem = _row_labels(row, self.columns.label_map) if self.labelled else ([], None)
                else:
                    names, problem = [], row.problem
                if problem is not None:
                    if not self.skip_bad_rows:
                        raise DataError(f"{path}:{row.line}: {problem} (pass skip_bad_rows / --skip-bad-rows to skip such rows)")
                    skipped += 1
                    log.warning("%s:%d: skipped: %s", path, row.line, problem)
                    continue
                multi = multi or row.label_set is not None
                counts.update(names)
                rows += 1
                held.offer((index, row.line, row.text, names), rows)
                sample.offer((index, row.text), rows)
                if rows % 10_000 == 0:
                    bar.update(10_000)
        if skipped:
            log.warning("%s: skipped %d bad row(s)", self.source, skipped)
        if not rows:
            raise DataError(f"{self.source}: no usable rows")
        labels = sort_labels(list(counts))
        warn_of_numbers_written_twice(labels, self.source)
        validation = None
        chosen: list[Any] = []
        if val_fraction is not None:
            want = max(1, int(round(rows * val_fraction)))
            if want >= rows:
                raise DataError(f"{self.source}: too few rows ({rows}) to hold out a validation split")
            # A uniform sample of a uniform sample is uniform: the reservoir cut down to the share asked for.
            chosen = sorted(random.Random(seed + 1).sample(held.items, want) if want < len(held.items) else held.items)
            for _, _, _, names in chosen:
                counts.subtract(names)
            counts = +counts  # drops labels left with no training example
            validation = TextDataset(
                texts=[h[2] for h in chosen], labels=None if multi else [h[3][0] for h in chosen],
                source=f"{self.source} (validation rows held out)", lines=[h[1] for h in chosen], columns=self.columns,
                label_sets=[h[3] for h in chosen] if multi else None,
            )
        held_out = frozenset(h[0] for h in chosen)
        texts = [t for i, t in sorted(sample.items) if i not in held_out]
        log.info("%s: first pass: %s rows (%d skipped), %d label(s)%s; %s held out for validation, tokenizer "
                 "sample of %s texts", self.source, f"{rows:,}", skipped, len(counts), " (multi-label)" if multi else "",
                 f"{len(held_out):,}", f"{len(texts):,}")
        self._scan = StreamScan(records, rows, labels, counts, multi, skipped, validation, held_out, texts, key)
        return self._scan

    def feed(
        self, encode: Callable[[list[str]], list[np.ndarray]], pad_id: int, labels: list[str], cfg: TrainConfig,
        multiple: int = 1, limit: int = 0, rank: int | None = None, world_size: int | None = None,
    ) -> StreamFeed:
        """The training batches of this (scanned) stream for the loop in training.py: ``encode``
        (a tokenizer's) runs in the DataLoader workers; ``multiple``/``limit`` as in
        :func:`~classiformer.data.batching.batch_of`; rank and world size default to
        :func:`rank_and_world`'s."""
        scan = self.scanned
        if rank is None or world_size is None:
            rank, world_size = rank_and_world()
        # The workers get the files and columns, not what the first pass holds (samples, validation rows).
        light = TextStream(self.paths, self.columns, self.skip_bad_rows)
        batches = StreamBatches(
            light, encode, pad_id, labels, self.is_multi_label, cfg.batch_size, cfg.shuffle_window, cfg.seed,
            rank=rank, world_size=world_size, workers=cfg.loader_workers, exclude=scan.held_out,
            multiple=multiple, limit=limit,
        )
        steps_per_pass = self.steps_per_pass(cfg, world_size)
        max_steps = cfg.max_steps or cfg.epochs * steps_per_pass
        return StreamFeed(batches, max_steps, cfg.eval_every or min(steps_per_pass, max_steps), cfg.grad_accum,
                          scan.train_rows)

    def steps_per_pass(self, cfg: TrainConfig, world_size: int | None = None) -> int:
        """Optimizer steps in one pass over the (scanned) training rows, on each of ``world_size`` processes."""
        world = rank_and_world()[1] if world_size is None else world_size
        return max(1, math.ceil(self.scanned.train_rows / world / cfg.batch_size / cfg.grad_accum))


@dataclass(frozen=True)
class ShardPosition:
    """Where a shard's stream stands: in pass ``pass_index``, window ``window`` begins at record
    ``start`` and ``batch`` of its batches are done; ``skipped`` bad rows came before ``start``
    (bad rows are counted in the first pass over the data only: later passes meet the same ones)."""

    pass_index: int = 0
    window: int = 0
    start: int = 0
    batch: int = 0
    skipped: int = 0


@dataclass
class StreamBatches(IterableDataset[tuple[dict[str, np.ndarray] | None, dict[str, Any]]]):
    """Length-bucketed training batches from the shards of a stream that this process's
    DataLoader workers serve (see the module docstring). Yields ``(batch, meta)``: ``batch`` holds
    ``input_ids``, ``attention_mask`` (B, T) and ``labels``; ``meta`` the shard's position after
    it. A bad row (or a file that cannot be read) yields ``(None, {"error": message})`` instead,
    and the worker stops: the feed raises it as a :class:`DataError` in the training process."""

    stream: TextStream
    encode: Callable[[list[str]], list[np.ndarray]]
    pad_id: int
    labels: list[str]
    multi_label: bool
    batch_size: int
    window: int
    seed: int
    rank: int = 0
    world_size: int = 1
    workers: int = 0  # DataLoader worker processes (0: the iterating process serves its one shard itself)
    exclude: frozenset[int] = frozenset()
    positions: dict[int, ShardPosition] = field(default_factory=dict)
    rotation: int = 0  # worker w serves local shard (w + rotation) mod workers
    multiple: int = 1
    limit: int = 0
    bucket_factor: int = 50
    loop: bool = True  # start over after the last record (training); False: one pass (tests)

    def __post_init__(self) -> None:
        super().__init__()
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside a world of {self.world_size}")

    @property
    def per_rank(self) -> int:
        return max(1, self.workers)

    @property
    def n_shards(self) -> int:
        return self.world_size * self.per_rank

    def shard_of(self, worker: int) -> int:
        return self.rank * self.per_rank + (worker + self.rotation) % self.per_rank

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray] | None, dict[str, Any]]]:
        info = get_worker_info()
        worker, n = (0, 1) if info is None else (info.id, info.num_workers)
        if n != self.per_rank:
            raise ValueError(f"the stream was set up for {self.per_rank} DataLoader worker(s), but runs in {n}")
        shard = self.shard_of(worker)
        try:
            yield from self._shard(shard, self.positions.get(shard, ShardPosition()))
        except DataError as e:  # as a message: an exception would reach the training process wrapped in a traceback
            yield None, {"error": str(e), "shard": shard}

    def _shard(self, shard: int, pos: ShardPosition) -> Iterator[tuple[dict[str, np.ndarray] | None, dict[str, Any]]]:
        index = {lbl: i for i, lbl in enumerate(self.labels)}
        label_map, labelled = self.stream.columns.label_map, self.stream.labelled
        n_shards, pass_index, window, start, done, skipped = (
            self.n_shards, pos.pass_index, pos.window, pos.start, pos.batch, pos.skipped)
        while True:
            texts: list[str] = []
            targets: list[Any] = []
            whole_pass, found, skipped_at_start = start == 0 and done == 0, False, skipped
            for record, path, row in self.stream.records(start):
                if record % n_shards != shard or record in self.exclude:
                    continue
                if row.problem is not None:
                    problem: str | None = row.problem
                else:
                    names, problem = _row_labels(row, label_map) if labelled else ([], None)
                    unknown = [n for n in names if n not in index]
                    if problem is None and unknown:
                        problem = f"label {unknown[0]!r} was not seen in the first pass (known labels: {self.labels})"
                if problem is not None:
                    if not self.stream.skip_bad_rows:
                        raise DataError(f"{path}:{row.line}: {problem} (pass skip_bad_rows / --skip-bad-rows to skip such rows)")
                    if pass_index == 0:
                        skipped += 1
                        log.warning("%s:%d: skipped: %s", path, row.line, problem)
                    continue
                found = True
                texts.append(row.text)
                if self.multi_label:
                    target = np.zeros(len(self.labels), dtype=np.int64)
                    target[[index[n] for n in names]] = 1
                    targets.append(target)
                else:
                    targets.append(index[names[0]])
                if len(texts) == self.window:
                    yield from self._window(texts, targets, shard, pass_index, window, start, done,
                                            (skipped_at_start, skipped))
                    texts, targets, window, start, done, skipped_at_start = [], [], window + 1, record + 1, 0, skipped
            if texts:  # the pass's last, partial window
                yield from self._window(texts, targets, shard, pass_index, window, start, done, (skipped_at_start, skipped))
            if whole_pass and not found:
                raise DataError(f"{self.stream.source}: shard {shard} of {n_shards} has no usable rows "
                                "(fewer rows than processes x loader workers?)")
            if not self.loop:
                return
            pass_index, window, start, done = pass_index + 1, 0, 0, 0

    def _window(
        self, texts: list[str], targets: list[Any], shard: int, pass_index: int, window: int, start: int,
        done: int, skipped: tuple[int, int],
    ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """The batches of one window after the first ``done``; ``skipped``: bad rows before the
        window's start and up to its end."""
        ids = self.encode(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        y = np.asarray(targets, dtype=np.int64)
        batches = bucketed_batches(lengths, self.batch_size, self.seed, (pass_index, shard, window), self.bucket_factor)
        for b in range(done, len(batches)):
            idx = batches[b]
            width = 0
            if self.multiple > 1:
                longest = int(lengths[idx].max())
                width = min(-(-longest // self.multiple) * self.multiple, max(self.limit, longest))
            # numpy, not tensors: a small array pickles through the worker's pipe faster than a tensor
            # moves through shared memory (15 ms per batch of 16 here; 2 ms as numpy)
            batch = {k: v.numpy() for k, v in collate([ids[i] for i in idx], self.pad_id, y[idx], width=width).items()}
            meta = {"shard": shard, "pass_index": pass_index, "window": window, "start": start, "batch": b + 1,
                    "skipped": skipped[0], "seen_skipped": skipped[1]}
            yield batch, meta


def _as_is(item: Any) -> Any:
    """The DataLoader's collate function: the workers batch already."""
    return item


class StreamFeed:
    """The training loop's source of batches from a stream (instead of an ``EncodedDataset``):
    ``max_steps`` optimizer steps in rounds of ``eval_every`` steps, each round ending with a
    validation (the loop's "epoch"). :meth:`position` and :meth:`restore` are the resume state."""

    def __init__(self, batches: StreamBatches, max_steps: int, eval_every: int, grad_accum: int = 1, rows: int = 0) -> None:
        self.batches = batches
        self.max_steps, self.eval_every, self.grad_accum, self.rows = max_steps, max(1, eval_every), grad_accum, rows
        self.consumed = 0
        self.shards: dict[int, ShardPosition] = {}
        self.seen_skipped: dict[int, int] = {}
        self._it: Iterator[tuple[dict[str, np.ndarray] | None, dict[str, Any]]] | None = None

    def __len__(self) -> int:
        return self.rows

    @property
    def epochs(self) -> int:
        """Validation rounds in the budget."""
        return math.ceil(self.max_steps / self.eval_every)

    def batches_in(self, epoch: int) -> int:
        return max(0, min(self.eval_every, self.max_steps - epoch * self.eval_every)) * self.grad_accum

    def position(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "n_shards": self.batches.n_shards,
                "shards": {str(k): asdict(v) for k, v in sorted(self.shards.items())}}

    def restore(self, state: dict[str, Any]) -> None:
        if state["n_shards"] != self.batches.n_shards:
            raise DataError(
                f"{self.batches.stream.source}: the run read the stream in {state['n_shards']} shards (processes x "
                f"loader workers) and cannot resume exactly in {self.batches.n_shards}; resume with the same number"
            )
        self.close()
        self.consumed = int(state["consumed"])
        self.shards = {int(k): ShardPosition(**v) for k, v in state["shards"].items()}

    @property
    def skipped(self) -> int:
        """Bad rows this process's shards skipped so far (counted in their first pass over the data)."""
        return sum(max(p.skipped, self.seen_skipped.get(k, 0)) for k, p in self.shards.items())

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self._it is None:
            b = self.batches
            dataset = replace(b, positions=dict(self.shards), rotation=self.consumed % b.per_rank)
            # A generator of its own: a DataLoader iterator draws its workers' base seed from the global
            # RNG, which would shift the dropout masks of a resumed run (its iterator starts later).
            loader = DataLoader(dataset, batch_size=None, num_workers=b.workers, collate_fn=_as_is,
                                prefetch_factor=4 if b.workers else None, generator=torch.Generator().manual_seed(b.seed))
            self._it = iter(loader)
        try:
            batch, meta = next(self._it)
        except StopIteration:
            raise DataError(f"{self.batches.stream.source}: the stream ended") from None
        if batch is None:
            self.close()
            raise DataError(meta["error"])
        self.consumed += 1
        self.shards[meta["shard"]] = ShardPosition(meta["pass_index"], meta["window"], meta["start"], meta["batch"],
                                                   meta["skipped"])
        self.seen_skipped[meta["shard"]] = meta["seen_skipped"]
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def close(self) -> None:
        """Stop the DataLoader workers (a later :meth:`next_batch` starts them again, at the position)."""
        self._it = None
