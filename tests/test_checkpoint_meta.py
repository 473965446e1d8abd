"""``read_meta``: a ``classiformer.json`` that is not what a checkpoint writes is a ``CheckpointError``
naming the file and the field, never an AttributeError or a silently accepted wrong type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from classiformer.checkpoint import META_FILE, CheckpointError, CheckpointMeta, read_meta


def _good() -> dict[str, Any]:
    return json.loads(CheckpointMeta(family="transformer", model={"embed_dim": 8}, labels=["neg", "pos"]).to_json())


def _write(tmp_path: Path, data: object) -> Path:
    (tmp_path / META_FILE).write_text(json.dumps(data), encoding="utf-8")
    return tmp_path


def test_the_metadata_a_checkpoint_writes_reads_back(tmp_path: Path) -> None:
    meta = read_meta(_write(tmp_path, _good()))
    assert meta.labels == ["neg", "pos"] and meta.family == "transformer" and meta.format_version == 1


@pytest.mark.parametrize("data", [[1, 2], "meta", 3, None, True])
def test_metadata_that_is_not_an_object_is_refused(tmp_path: Path, data: object) -> None:
    with pytest.raises(CheckpointError, match=rf"{META_FILE}: corrupted: expected a JSON object"):
        read_meta(_write(tmp_path, data))


@pytest.mark.parametrize("version", [0, -3, True, False, 1.0, "1", None])
def test_format_version_must_be_an_integer_of_at_least_one(tmp_path: Path, version: object) -> None:
    with pytest.raises(CheckpointError, match=r"format_version must be an integer >= 1"):
        read_meta(_write(tmp_path, {**_good(), "format_version": version}))


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"format version 2 is not supported .* upgrade classiformer"):
        read_meta(_write(tmp_path, {**_good(), "format_version": 2}))


@pytest.mark.parametrize(
    "key, value",
    [
        ("labels", "ab"),
        ("labels", [1, 2]),
        ("labels", []),
        ("labels", ["a", "a"]),
        ("labels", {"a": 0}),
        ("family", 3),
        ("family", ""),
        ("model", []),
        ("model", "transformer"),
        ("train", [1]),
        ("temperature", "1.5"),
        ("temperature", 0),
        ("temperature", True),
        ("preset", 5),
    ],
)
def test_fields_of_the_wrong_type_are_refused_by_name(tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(CheckpointError, match=rf"{META_FILE}: corrupted: {key} must be "):
        read_meta(_write(tmp_path, {**_good(), key: value}))


def test_missing_required_fields_are_named(tmp_path: Path) -> None:
    data = _good()
    del data["labels"], data["model"]
    with pytest.raises(CheckpointError, match=r"incompatible metadata: missing model, labels"):
        read_meta(_write(tmp_path, data))
