"""Dynamic micro-batching: concurrent requests share one model call and are answered one by one.

The first waiting request opens a batch; others join it until it holds ``max_batch_size`` texts or
``max_wait_ms`` has passed, then the batch runs once on the inference thread, off the event loop.
The wait is skipped while traffic is sparse (the previous batch served a single request), so a lone
client pays no batching delay; requests that arrive while a batch runs form the next one anyway.
Each request gets exactly its own rows back, in its own order. When a batch fails, its requests are
retried one by one so that one bad request never fails another. Requests that have given up (timed
out, client gone) before their batch starts are dropped from it. The same serving discipline as
Triton's dynamic batcher and TorchServe's batch_size/max_batch_delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BatchFn = Callable[[list[str]], np.ndarray]


class Overloaded(RuntimeError):
    """Too many requests are already waiting."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"server is overloaded: {limit} requests are already waiting (max_queue)")
        self.limit = limit


class ShuttingDown(RuntimeError):
    """The batcher is closed or closing and takes no new work."""


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future[np.ndarray]


@dataclass
class BatchStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0
    retried_batches: int = 0
    dropped: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        mean = self.texts / self.batches if self.batches else 0.0
        return {
            "requests": self.requests, "texts": self.texts, "batches": self.batches,
            "mean_batch_texts": round(mean, 3), "largest_batch": self.largest_batch,
            "retried_batches": self.retried_batches, "dropped": self.dropped,
        }


class MicroBatcher:
    """Run ``fn(texts) -> (N, C) array`` for many concurrent callers.

    ``enabled=False`` turns batching off: each call runs alone (the unbatched baseline). Either way
    calls run on ``executor`` (a single thread keeps the model's own threads from competing).
    """

    def __init__(
        self,
        fn: BatchFn,
        executor: Executor,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 4096,
        enabled: bool = True,
    ) -> None:
        self.fn = fn
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.enabled = enabled
        self.stats = BatchStats()
        self._pending: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._waiting = 0
        self._closing = False
        self._sparse = False  # the previous batch served a single request: do not wait for company

    @property
    def running(self) -> bool:
        return not self._closing and (not self.enabled or (self._worker is not None and not self._worker.done()))

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._closing = False
        if self.enabled:
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="classiformer-batcher")

    async def close(self) -> None:
        """Finish every request already submitted, then stop; new submissions are refused."""
        self._closing = True
        if self._worker is not None and self._wakeup is not None:
            self._wakeup.set()
            await self._worker
            self._worker = None

    async def submit(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of ``fn`` for ``texts``, computed together with whatever else is waiting."""
        if self._closing:
            raise ShuttingDown("server is shutting down")
        if self._waiting >= self.max_queue:
            raise Overloaded(self.max_queue)
        texts = list(texts)
        self.stats.requests += 1
        self._waiting += 1
        try:
            if not self.enabled:
                out = await asyncio.get_running_loop().run_in_executor(self.executor, self.fn, texts)
                self._count_batch(len(texts))
                return out
            assert self._wakeup is not None, "start() the batcher first"
            future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
            self._pending.append(_Item(texts, future))
            self._wakeup.set()
            return await future
        finally:
            self._waiting -= 1

    def _count_batch(self, n: int) -> None:
        self.stats.batches += 1
        self.stats.texts += n
        self.stats.largest_batch = max(self.stats.largest_batch, n)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._pending.popleft()]
            size = len(batch[0].texts)
            deadline = loop.time() + (0.0 if self._sparse else self.max_wait)
            while size < self.max_batch_size:
                if self._pending:
                    if size + len(self._pending[0].texts) > self.max_batch_size:
                        break  # it opens the next batch
                    item = self._pending.popleft()
                    batch.append(item)
                    size += len(item.texts)
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closing:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            self._sparse = len(batch) == 1
            try:
                await self._execute(batch)
            except Exception:  # never let one batch stop the worker
                log.exception("batch of %d request(s) failed unexpectedly", len(batch))

    async def _execute(self, batch: list[_Item], retry: bool = True) -> None:
        live = [item for item in batch if not item.future.done()]
        self.stats.dropped += len(batch) - len(live)
        if not live:
            return
        texts = [t for item in live for t in item.texts]
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(self.executor, self.fn, texts)
            if len(out) != len(texts):
                raise RuntimeError(f"batch function returned {len(out)} rows for {len(texts)} texts")
        except Exception as e:
            if retry and len(live) > 1:
                log.warning("batch of %d requests failed (%s); retrying them one by one", len(live), e)
                self.stats.retried_batches += 1
                for item in live:
                    await self._execute([item], retry=False)
                return
            for item in live:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        self._count_batch(len(texts))
        start = 0
        for item in live:
            end = start + len(item.texts)
            if not item.future.done():
                item.future.set_result(out[start:end].copy())
            start = end
