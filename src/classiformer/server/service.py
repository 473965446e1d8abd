"""The model behind the API: limits, micro-batched prediction and explanation, off the event loop.

Routes parse and format; this module decides. The model runs on one dedicated thread, so the event
loop stays free to accept and answer requests while a batch is computed; predictions are queued
there ahead of explanations (``worker.InferenceThread``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import platform
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import numpy as np

from .. import __version__
from ..predict import Classifier
from .batching import MicroBatcher, Overloaded, ShuttingDown
from .errors import ApiError, limit_error
from .settings import ServerSettings
from .worker import EXPLAIN, PREDICT, InferenceThread

log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelService:
    def __init__(self, classifier: Classifier, settings: ServerSettings) -> None:
        self.classifier = classifier
        self.settings = settings
        self.worker = InferenceThread()
        self.batcher = MicroBatcher(
            classifier.predict_proba, self.worker.lane(PREDICT), settings.max_batch_size, settings.max_wait_ms,
            settings.max_queue, enabled=settings.batching,
        )

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        self.worker.shutdown(wait=True)

    @property
    def ready(self) -> bool:
        return self.batcher.running

    # -- limits ---------------------------------------------------------------------------------
    def check_text(self, text: str, where: str) -> None:
        if not text.strip():
            # The rule of the file readers: an empty text has nothing to classify, and a label for
            # it would only be the model's prior.
            raise ApiError(422, "validation_error", f"{where} is empty (or only whitespace): send a text to classify")
        limit = self.settings.max_chars
        if len(text) > limit:
            raise limit_error("max_chars", limit, f"{where} has {len(text)} characters; the limit is max_chars ({limit})")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ApiError(422, "validation_error", f"{where} is not valid Unicode (position {e.start}: lone surrogate)") from None

    def check_texts(self, texts: Sequence[str]) -> None:
        if not texts:
            raise ApiError(422, "validation_error", "texts is empty: send at least one text")
        limit = self.settings.max_texts
        if len(texts) > limit:
            raise limit_error("max_texts", limit, f"{len(texts)} texts sent; the limit is max_texts ({limit}) per request")
        for i, t in enumerate(texts):
            self.check_text(t, f"texts[{i}]")

    async def _timed(self, work: Awaitable[T]) -> T:
        timeout = self.settings.request_timeout_s
        try:
            return await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            raise limit_error(
                "request_timeout_s", timeout, f"the request took longer than request_timeout_s ({timeout} s)", status=504
            ) from None
        except Overloaded as e:
            raise limit_error("max_queue", e.limit, str(e), status=503) from None
        except ShuttingDown as e:
            raise ApiError(503, "unavailable", str(e)) from None

    # -- work -----------------------------------------------------------------------------------
    async def predict(self, texts: Sequence[str], top_k: int | None = None) -> list[dict[str, Any]]:
        self.check_texts(texts)
        proba = await self._timed(self.batcher.submit(texts))
        # A multi-label model answers each text's label set at the tuned thresholds ("labels"), a
        # single-label one its most probable class ("label"): the library decides, as in predict.
        return self.classifier.outputs(proba, top_k)

    async def explain(self, text: str, methods: Sequence[str] | None = None, label: str | None = None) -> dict[str, Any]:
        self.check_text(text, "text")
        if not self.classifier.tokenizer.tokens(text):
            raise ApiError(422, "validation_error", "text has no tokens to explain")
        kwargs: dict[str, Any] = {"words": False, "label": label}
        if methods is not None:
            kwargs["methods"] = tuple(methods)
        call = functools.partial(self.classifier.explain, text, **kwargs)
        loop = asyncio.get_running_loop()
        try:
            explanation = await self._timed(loop.run_in_executor(self.worker.lane(EXPLAIN), call))
        except (ValueError, KeyError) as e:  # e.g. an unknown method or label
            raise ApiError(422, "validation_error", f"cannot explain: {e}") from None
        return summarise_explanation(explanation.to_dict(), self.classifier.labels)

    def info(self) -> dict[str, Any]:
        import fastapi

        d = self.classifier.describe()
        # The runtime that runs the model: an exported model's process never loads PyTorch.
        if self.classifier.model is None:
            import onnxruntime

            runtime = {"onnxruntime": onnxruntime.__version__}
        else:
            import torch

            runtime = {"torch": torch.__version__}
        path = self.classifier.path
        return {
            "name": path.parent.name if path is not None and path.name in ("best", "last") else (path.name if path else "model"),
            "family": d["family"],
            "problem_type": d["problem_type"],
            "labels": d["labels"],
            "config": {"model": d["model"], "tokenizer": d["tokenizer"]},
            "temperature": d["temperature"],
            "versions": {
                "classiformer": __version__,
                "model_classiformer_version": d["classiformer_version"],
                "format_version": d["format_version"],
                **runtime,
                "fastapi": fastapi.__version__,
                "python": platform.python_version(),
            },
            "limits": self.settings.limits(),
            "batching": {
                "enabled": self.settings.batching,
                "max_batch_size": self.settings.max_batch_size,
                "max_wait_ms": self.settings.max_wait_ms,
                "stats": self.batcher.stats.to_dict(),
            },
            "explain": self.classifier.model is not None,  # an exported (ONNX) model cannot explain
            "runtime": d.get("runtime", "pytorch"),
        }


def summarise_explanation(d: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """Tokens, importance and the last layer's head-averaged attention from ``Explanation.to_dict()``."""
    probs = d["probabilities"]
    if not isinstance(probs, dict):
        probs = dict(zip(labels, probs))
    attention = None
    if d.get("attentions") is not None:
        att = np.asarray(d["attentions"], dtype=np.float64)  # (L, H, T, T)
        if att.ndim == 4 and att.shape[0] > 0:
            last = att[-1].mean(axis=0)  # (T, T)
            attention = {
                "layer": att.shape[0] - 1, "layers": att.shape[0], "heads": att.shape[1],
                "reduction": "mean over heads", "matrix": np.round(np.nan_to_num(last), 6).tolist(),
            }
    return {
        "text": d["text"],
        "tokens": [str(t) for t in d["tokens"]],
        "label": str(d["label"]),
        "predicted": [str(x) for x in d.get("predicted") or []],
        "probabilities": {str(k): float(v) for k, v in probs.items()},
        "importance": {
            str(m): np.nan_to_num(np.asarray(s, dtype=np.float64).ravel()).tolist() for m, s in d["importance"].items()
        },
        "special": [bool(x) for x in d.get("special") or [False] * len(d["tokens"])],
        "notes": [str(n) for n in d.get("notes") or []],
        "attention": attention,
    }
