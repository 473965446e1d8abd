"""Class names for files whose label column holds codes ("1".."4" in AG News' headerless CSVs).

Names come as a comma-separated list, one per distinct label in label order (numeric order when
all labels are integers, as ``sort_labels`` orders classes everywhere), or as a JSON object that
maps each raw label to its name. The mapping is fixed from the first file read (the training data)
and then read into every other split, so a code that the mapping lacks is an error naming its line.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .datasets import DataError, TextDataset


def parse_label_names(spec: str) -> list[str] | dict[str, str]:
    """``"World,Sports,..."`` -> names in label order; ``"names.json"`` -> {raw label: name}."""
    if spec.lower().endswith(".json"):
        return read_label_map(Path(spec))
    names = [n.strip() for n in spec.split(",")]
    if not all(names):
        raise DataError(f"--label-names {spec!r}: an empty name; give comma-separated names such as World,Sports")
    _no_duplicates(names, f"--label-names {spec!r}")
    return names


def read_label_map(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (--label-names takes comma-separated names or a JSON file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f'{path}: expected a JSON object mapping each raw label to its name, e.g. {{"1": "World"}}')
    bad = [k for k, v in data.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DataError(f"{path}: the name of label {bad[0]!r} is not a non-empty string")
    mapping = {str(k).strip(): v.strip() for k, v in data.items()}
    _no_duplicates(list(mapping.values()), str(path))
    return mapping


def name_labels(dataset: TextDataset, names: list[str]) -> tuple[TextDataset, dict[str, str]]:
    """Rename ``dataset``'s labels: the i-th distinct label in label order gets ``names[i]``.
    Returns the renamed dataset and the mapping (raw label -> name) to read other splits with."""
    raw = dataset.label_names()
    if len(raw) != len(names):
        raise DataError(
            f"{dataset.source}: --label-names gives {len(names)} name(s) {names} for {len(raw)} label(s) {raw}"
        )
    mapping = dict(zip(raw, names))
    assert dataset.labels is not None
    dataset.labels = [mapping[label] for label in dataset.labels]
    if dataset.columns is not None:  # stored with the model: later files are read with the same names
        dataset.columns = replace(dataset.columns, label_map=mapping)
    return dataset, mapping


def _no_duplicates(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DataError(f"{where}: two classes are named {n!r}")
        seen.add(n)

