"""The micro-batcher on its own: order, isolation of failures, timeouts and draining; the inference
thread's lanes: predictions before queued explanations."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from classiformer import Classifier
from classiformer.server import ServerSettings
from classiformer.server.batching import MicroBatcher, Overloaded, ShuttingDown
from classiformer.server.service import ModelService
from classiformer.server.worker import EXPLAIN, PREDICT, InferenceThread


def lengths(texts: list[str]) -> np.ndarray:
    """One row per text: its length and its first character's code (so rows are told apart)."""
    if any("boom" in t for t in texts):
        raise ValueError("cannot handle boom")
    return np.array([[len(t), ord(t[0]) if t else 0] for t in texts], dtype=np.float64)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.mark.parametrize("enabled", [True, False])
def test_each_caller_gets_its_own_rows_in_order(enabled: bool) -> None:
    async def go() -> tuple[list[np.ndarray], list[list[str]], MicroBatcher]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lengths, pool, max_batch_size=7, max_wait_ms=20, enabled=enabled)
            batcher.start()
            requests = [[chr(97 + i) * (i + 1 + j) for j in range(1 + i % 3)] for i in range(20)]
            results = await asyncio.gather(*(batcher.submit(r) for r in requests))
            await batcher.close()
            return results, requests, batcher

    results, requests, batcher = run(go())
    for got, texts in zip(results, requests):
        np.testing.assert_array_equal(got, lengths(texts))
    assert batcher.stats.texts == sum(map(len, requests))
    if enabled:
        assert batcher.stats.batches < len(requests)
        assert batcher.stats.largest_batch <= 7
    else:
        assert batcher.stats.batches == len(requests)


def test_one_bad_request_never_fails_another() -> None:
    async def go() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lengths, pool, max_batch_size=64, max_wait_ms=30)
            batcher.start()
            requests = [["fine"], ["boom"], ["also fine", "ok"], ["x"]]
            out = await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
            assert batcher.stats.retried_batches == 1  # they did share a batch first
            await batcher.close()
            return out

    out = run(go())
    assert isinstance(out[1], ValueError) and "boom" in str(out[1])
    np.testing.assert_array_equal(out[0], lengths(["fine"]))
    np.testing.assert_array_equal(out[2], lengths(["also fine", "ok"]))
    np.testing.assert_array_equal(out[3], lengths(["x"]))


def test_requests_that_gave_up_are_dropped_and_close_drains() -> None:
    async def go() -> tuple[np.ndarray, MicroBatcher]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lengths, pool, max_batch_size=64, max_wait_ms=300)
            batcher.start()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(batcher.submit(["gave up"]), 0.05)
            waiting = asyncio.ensure_future(batcher.submit(["kept"]))
            await asyncio.sleep(0.01)
            await batcher.close()  # does not wait the full 300 ms, and answers what is pending
            assert waiting.done()
            with pytest.raises(ShuttingDown):
                await batcher.submit(["late"])
            return waiting.result(), batcher

    kept, batcher = run(go())
    np.testing.assert_array_equal(kept, lengths(["kept"]))
    assert batcher.stats.dropped == 1 and batcher.stats.texts == 1


def test_queue_limit() -> None:
    async def go() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lengths, pool, max_batch_size=64, max_wait_ms=100, max_queue=2)
            batcher.start()
            first = [asyncio.ensure_future(batcher.submit([t])) for t in ("a", "b")]
            await asyncio.sleep(0)
            with pytest.raises(Overloaded):
                await batcher.submit(["c"])
            await asyncio.gather(*first)
            await batcher.close()

    run(go())


def test_a_lone_client_pays_no_batching_wait() -> None:
    async def go() -> list[float]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(lengths, pool, max_batch_size=64, max_wait_ms=300)
            batcher.start()
            times = []
            for text in ("first", "second", "third"):  # one after another: never any company
                t0 = asyncio.get_running_loop().time()
                np.testing.assert_array_equal(await batcher.submit([text]), lengths([text]))
                times.append(asyncio.get_running_loop().time() - t0)
            await batcher.close()
            return times

    first, *later = run(go())
    assert first >= 0.29  # traffic was not known to be sparse yet
    assert max(later) < 0.15, later


# -- the inference thread's lanes ---------------------------------------------------------------------

def test_urgent_work_overtakes_queued_work_but_never_preempts() -> None:
    worker = InferenceThread()
    gate = threading.Event()
    started = threading.Event()
    done: list[str] = []

    def first() -> None:
        started.set()
        gate.wait(10)
        done.append("slow0")

    try:
        futures = [worker.submit(EXPLAIN, first)]
        assert started.wait(10)  # holds the thread, so what follows queues up
        futures += [worker.submit(EXPLAIN, done.append, f"slow{i}") for i in (1, 2, 3)]
        futures += [worker.lane(PREDICT).submit(done.append, "urgent")]
        assert worker.queued == 4
        gate.set()
        for f in futures:
            f.result(timeout=10)
    finally:
        gate.set()
        worker.shutdown()
    assert done == ["slow0", "urgent", "slow1", "slow2", "slow3"]


def test_shutdown_drains_the_queue_and_cancelled_work_is_skipped() -> None:
    worker = InferenceThread()
    gate = threading.Event()
    done: list[int] = []
    blocker = worker.submit(PREDICT, gate.wait, 10)
    queued = [worker.submit(EXPLAIN, done.append, i) for i in range(3)]
    assert queued[1].cancel()  # not started yet: it never runs
    gate.set()
    worker.shutdown(wait=True)
    assert blocker.result() is True and done == [0, 2]
    with pytest.raises(RuntimeError, match="shut down"):
        worker.submit(PREDICT, done.append, 9)


def test_a_predict_is_answered_before_explains_queued_ahead_of_it(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first explanation holds the inference thread until three more and one prediction wait.
    real_explain = classifier.explain
    gate = threading.Event()
    entered = threading.Event()

    real_predict = classifier.predict_proba
    ran: list[str] = []  # what the inference thread ran, in order

    def gated_explain(text: str, **kwargs):  # type: ignore[no-untyped-def]
        if not entered.is_set():
            entered.set()
            gate.wait(60)
        ran.append("explain")
        return real_explain(text, **kwargs)

    def recorded_predict(*args, **kwargs):  # type: ignore[no-untyped-def]
        ran.append("predict")
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(classifier, "explain", gated_explain)
    monkeypatch.setattr(classifier, "predict_proba", recorded_predict)

    async def go() -> list[str]:
        service = ModelService(classifier, ServerSettings(max_wait_ms=0))
        service.start()
        answered: list[str] = []

        async def explain(i: int) -> None:
            await service.explain("goal team match")
            answered.append(f"explain{i}")

        async def predict() -> None:
            await service.predict(["goal team match"])
            answered.append("predict")

        try:
            tasks = [asyncio.create_task(explain(0))]
            while not entered.is_set():
                await asyncio.sleep(0.01)
            tasks += [asyncio.create_task(explain(i)) for i in (1, 2, 3)]
            tasks.append(asyncio.create_task(predict()))
            for _ in range(3000):  # until all four wait on the thread (bounded: 30 s, for a loaded machine)
                if service.worker.queued == 4:
                    break
                await asyncio.sleep(0.01)
            assert service.worker.queued == 4
            gate.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            gate.set()
            await service.close()
        return answered

    answered = run(go())
    # The thread takes the prediction before the three explanations queued ahead of it. (The order in
    # which the coroutines then resume is the event loop's: on a fast CPU a prediction's extra hop
    # through the micro-batcher let two explanations finish their awaits first.)
    assert ran == ["explain", "predict", "explain", "explain", "explain"]
    assert answered[0] == "explain0" and sorted(answered) == ["explain0", "explain1", "explain2", "explain3", "predict"]
