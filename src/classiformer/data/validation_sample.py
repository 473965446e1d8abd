"""The validation texts a training run keeps beside its checkpoints (``RUN/validation.jsonl``).

``fit`` keeps up to :data:`SAMPLE_LIMIT` examples of its validation split, evenly spaced over it
(the split is the held-out part of the training data, or the file given with ``--val``), one JSON
object per line: ``{"text": ..., "label": ...}`` (``"labels": [...]`` for multi-label data). They
are what ``classiformer export`` verifies an export on: texts like the ones the model will see,
with labels, so the accuracy rule of an int8 export applies (built-in probe texts have no labels
and are unlike any one task: MiniLM fine-tuned on SST-2 disagreed with itself in int8 on one of 19
probes, a refusal that 300 SST-2 sentences did not give).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .datasets import DataError, TextDataset

VALIDATION_FILE = "validation.jsonl"
SAMPLE_LIMIT = 2000  # examples kept; the export's parity check reads at most this many


def validation_sample(data: TextDataset, limit: int = SAMPLE_LIMIT) -> str | None:
    """Up to ``limit`` examples of ``data`` (evenly spaced) as the text of ``validation.jsonl``;
    None for unlabelled or empty data. The caller writes it (atomically, with the run folder's
    permissions: ``checkpoint.atomic_write_text``)."""
    if not data.labelled or not len(data.texts):
        return None
    n = len(data.texts)
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64))
    lines = []
    for i in idx:
        row: dict[str, object] = {"text": data.texts[i]}
        if data.label_sets is not None:
            row["labels"] = list(data.label_sets[i])
        else:
            assert data.labels is not None
            row["label"] = data.labels[i]
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def read_validation_sample(path: Path) -> TextDataset:
    """The examples of a run's ``validation.jsonl`` (:func:`validation_sample`); a malformed line raises
    :class:`DataError` naming the file and line."""
    texts: list[str] = []
    labels: list[str] = []
    label_sets: list[list[str]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
                multi = "labels" in row
                label = row["labels"] if multi else row["label"]
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{path}:{lineno}: not a validation example ({type(e).__name__}: {e})") from None
            if not isinstance(text, str) or (multi and not (isinstance(label, list)
                                                             and all(isinstance(x, str) for x in label))) \
                    or (not multi and not isinstance(label, str)) or (multi != bool(label_sets) and texts):
                raise DataError(f"{path}:{lineno}: expected a text and a label (or a list of labels, on every line)")
            texts.append(text)
            (label_sets if multi else labels).append(label)
    if not texts:
        raise DataError(f"{path}: no validation examples")
    return TextDataset(texts, None if label_sets else labels, str(path), label_sets=label_sets or None)
