"""The one inference thread, with lanes: queued work runs most urgent first.

The model runs on a single thread (its own intra-op threads would only compete with a second one),
so a FIFO queue lets one slow kind of work hold up another: a prediction submitted after a few
queued explanations (each a forward and a backward pass, with attentions) waited for all of them.
Here work is ordered by ``(priority, arrival)``: predictions go before queued explanations, and
within a lane work stays first come, first served. Nothing is preempted: a prediction still waits
for the one call already running. The same idea as the priority levels of Triton's scheduler.
"""

from __future__ import annotations

import itertools
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

PREDICT = 0  # a client waits for a short call
EXPLAIN = 1  # a long call; a person at the page waits, and can wait a little longer

_Job = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class InferenceThread:
    """A single worker thread taking work from a priority queue (lower number first)."""

    def __init__(self, name: str = "classiformer-infer") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()  # ties broken by arrival; never compares the jobs
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def lane(self, priority: int) -> Executor:
        """An ``Executor`` whose work is queued at ``priority`` (for ``loop.run_in_executor``)."""
        return _Lane(self, priority)

    @property
    def queued(self) -> int:
        """Calls waiting to start (not counting the one running)."""
        return self._queue.qsize()

    def submit(self, priority: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the inference thread is shut down")
            self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Run what is queued, then stop (the stop marker sorts after every lane)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put((sys.maxsize, next(self._order), None))
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():  # the caller gave up before it started
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # handed to the caller, as ThreadPoolExecutor does
                future.set_exception(e)
            else:
                future.set_result(result)


class _Lane(Executor):
    def __init__(self, thread: InferenceThread, priority: int) -> None:
        self._thread = thread
        self._priority = priority

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._thread.submit(self._priority, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The lanes share one thread: its owner shuts it down (``InferenceThread.shutdown``)."""
