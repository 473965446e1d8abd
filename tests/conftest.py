"""Shared fixtures: tiny, learnable data the tests make themselves; user state isolated."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from classiformer.data import TextDataset

TOPICS = {
    "sports": ["match", "goal", "team", "coach", "league", "score", "player", "season"],
    "tech": ["chip", "software", "computer", "internet", "robot", "data", "phone", "code"],
    "money": ["stock", "market", "bank", "price", "profit", "trade", "oil", "shares"],
}
FILLER = ["the", "a", "of", "today", "new", "and", "big", "report", "says", "after"]


def make_texts(n: int, seed: int = 0, labels: dict[str, list[str]] | None = None) -> TextDataset:
    """``n`` short texts whose topic words give away the label; filler words carry no signal."""
    topics = labels or TOPICS
    rng = random.Random(seed)
    names = sorted(topics)
    texts, ys = [], []
    for i in range(n):
        label = names[i % len(names)]
        words = rng.choices(topics[label], k=rng.randint(1, 3)) + rng.choices(FILLER, k=rng.randint(2, 9))
        rng.shuffle(words)
        texts.append(" ".join(words))
        ys.append(label)
    return TextDataset(texts, ys, source="<toy>")


def write_jsonl(path: Path, n: int, seed: int) -> Path:
    """``make_texts(n, seed)`` as a JSON-lines file of ``{"text", "label"}`` rows."""
    ds = make_texts(n, seed=seed)
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [], strict=True)))
    return path


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep caches and downloads out of the user's home; forbid real downloads."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CLASSIFORMER_DATA", str(home / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("CLASSIFORMER_AG_NEWS_MIRRORS", "http://127.0.0.1:9/unreachable/")
    torch.set_num_threads(1)


@pytest.fixture
def toy() -> TextDataset:
    return make_texts(240, seed=1)


@pytest.fixture
def toy_test() -> TextDataset:
    return make_texts(60, seed=2)


@pytest.fixture
def write_csv(tmp_path: Path):
    def write(name: str, content: str | bytes) -> Path:
        p = tmp_path / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    return write


@pytest.fixture(scope="session")
def multilabel_classifier(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tiny model trained once on the 3-label toy task with overlapping labels (test_multilabel_fit)."""
    from classiformer import Classifier, fit, read_dataset

    from .test_multilabel_fit import config, write

    tmp = tmp_path_factory.mktemp("multilabel")
    fit(config(), read_dataset(write(tmp / "train.jsonl", 300, seed=0)), tmp / "run", progress=False)
    return Classifier.load(tmp / "run")
