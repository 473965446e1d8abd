"""Checkpoints: a folder of JSON + safetensors, written atomically, never pickled code.

Layout::

    classiformer.json     format version, package version, family, model config, labels, training config
    model.safetensors     weights
    tokenizer/            tokenizer files (tokenizer_config.json, ...)
    trainer_state.pt      (``last`` checkpoints only) optimizer/scheduler/RNG state for --resume,
                          tensors and plain containers only, loaded with ``weights_only=True``

A checkpoint is written into a temporary sibling folder and renamed into place, so a crash never
leaves a half-written folder where a good one was.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .thresholds import Thresholds
from .tokenizers import Tokenizer, load_tokenizer, save_tokenizer

if TYPE_CHECKING:
    import torch
    from torch import nn

# PyTorch, safetensors' torch half and the model classes are imported by the functions that use
# them: reading the metadata of an exported model (which runs without PyTorch) must not load them.

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "classiformer.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
STATE_FILE = "trainer_state.pt"
# Hugging Face's names (PretrainedConfig.problem_type), so exported configs mean the same thing.
SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
PYTORCH = "pytorch"
ONNXRUNTIME = "onnxruntime"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or incompatible."""


@dataclass
class CheckpointMeta:
    family: str
    model: dict[str, Any]
    labels: list[str]
    train: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    temperature: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    # How the training data was read (data.Columns as a dict: label, text, header, label_map), so
    # evaluate/calibrate/predict read files of the same layout without the column options again.
    data: dict[str, Any] = field(default_factory=dict)
    # Multi-label models score each label with its own sigmoid; their decision thresholds (tuned
    # on the validation split, thresholds.Thresholds.to_dict()) and per-label temperatures live here.
    problem_type: str = SINGLE_LABEL
    thresholds: dict[str, Any] | None = None
    temperatures: list[float] | None = None
    # What runs the model: "pytorch" (model.safetensors or a Hugging Face folder) or, for a folder
    # written by ``classiformer export``, "onnxruntime" (model.onnx); ``export`` then records how
    # (opset, precision, the parity check's figures: export/exporter.py).
    runtime: str = PYTORCH
    export: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    classiformer_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def __post_init__(self) -> None:
        if self.problem_type not in (SINGLE_LABEL, MULTI_LABEL):
            raise ValueError(f"problem_type must be {SINGLE_LABEL!r} or {MULTI_LABEL!r}, got {self.problem_type!r}")
        if self.runtime not in (PYTORCH, ONNXRUNTIME):
            raise ValueError(f"runtime must be {PYTORCH!r} or {ONNXRUNTIME!r}, got {self.runtime!r}")

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, ensure_ascii=False)

    @property
    def multi_label(self) -> bool:
        return self.problem_type == MULTI_LABEL


def _umask() -> int:
    """The process's umask, read without changing it where the system shows it (Linux): setting it
    to read it, the portable way, races with other threads creating files."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path) -> None:
    """Give a temporary file or folder the permissions a plain ``open``/``mkdir`` would have.
    ``mkstemp`` makes files 0600 and ``mkdtemp`` folders 0700 whatever the umask, so what is
    renamed into place would be readable by its owner alone: a model trained by one account could
    not be served by another or mounted into a container. A folder gets this with all it holds."""
    path = Path(path)
    mask = _umask()
    # Writers below us do the same (safetensors writes 0600 files), so a folder is done as a whole.
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def atomic_dir(dest: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a fresh temporary folder beside ``dest``, then swap it into place.
    A process killed on the way leaves ``.NAME.tmp-*`` / ``.NAME.old-*`` folders, which
    :func:`recover_leftovers` sorts out."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    old: Path | None = None
    try:
        write(tmp)
        apply_umask(tmp)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.rename(dest, old)
        os.rename(tmp, dest)
    except BaseException:
        # Stopped between the two renames (an error, or a second Ctrl-C): put the good one back.
        if old is not None and old.exists() and not dest.exists():
            os.rename(old, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def recover_leftovers(parent: Path, names: tuple[str, ...] = ("best", "last")) -> list[str]:
    """Sort out what a process killed while writing checkpoints ``parent/NAME`` left behind:
    temporary folders (``.NAME.tmp-*``, complete only once renamed) are removed; a checkpoint
    moved aside (``.NAME.old-*``) is removed when ``NAME`` exists, and put back as ``NAME`` when it
    does not (the process died between atomic_dir's two renames: the one moved aside is the last
    complete checkpoint). Only for a folder no other process writes to (training holds its lock).
    Returns one line per thing done."""
    parent = Path(parent)
    done: list[str] = []
    for name in names:
        dest = parent / name
        for tmp in sorted(parent.glob(f".{name}.tmp-*")):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            done.append(f"removed {tmp.name}, an unfinished write of {name}/")
        olds = sorted((p for p in parent.glob(f".{name}.old-*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)
        if olds and not dest.exists() and (olds[-1] / META_FILE).exists():
            newest = olds.pop()
            os.rename(newest, dest)
            done.append(f"recovered {name}/ from {newest.name} (the previous write stopped between its renames)")
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old.name}, a replaced copy of {name}/")
    return done


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        apply_umask(Path(tmp))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    dest: Path,
    model: nn.Module,
    tokenizer: Tokenizer,
    meta: CheckpointMeta,
    trainer_state: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint folder atomically. ``extra_files`` maps file names to text content."""
    import torch
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        saver = getattr(model, "save_weights", None)
        if callable(saver):  # families with their own on-disk format (e.g. Hugging Face folders)
            saver(tmp, tokenizer)
        else:
            state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "classiformer": str(FORMAT_VERSION)})
        save_tokenizer(tokenizer, tmp / TOKENIZER_DIR)
        meta.tokenizer = tokenizer.to_config()
        (tmp / META_FILE).write_text(meta.to_json(), encoding="utf-8")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE_FILE)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")

    return atomic_dir(Path(dest), write)


def _thresholds_ok(value: object, n_labels: int) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        t = Thresholds.from_dict(value)
    except (KeyError, TypeError, ValueError):
        return False
    return len(t.per_label) == n_labels and all(math.isfinite(x) for x in t.per_label)


def read_meta(folder: Path) -> CheckpointMeta:
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    path = folder / META_FILE
    if not path.exists():
        raise CheckpointError(f"{folder}: not a classiformer checkpoint (no {META_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: corrupted: expected a JSON object, found {json.dumps(data)[:60]}")
    version = data.get("format_version")
    # isinstance(True, int) holds in Python, so a JSON true would pass as version 1 without the bool test.
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: corrupted: format_version must be an integer >= 1, found {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported by classiformer {__version__} "
            f"(supports up to {FORMAT_VERSION}); upgrade classiformer"
        )
    missing = [k for k in ("family", "model", "labels") if k not in data]
    if missing:
        raise CheckpointError(f"{path}: incompatible metadata: missing {', '.join(missing)}")

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")  # NaN fails too

    # CheckpointMeta(**data) checks no types; a wrong one would fail much later, far from its cause.
    expected: dict[str, tuple[Callable[[Any], bool], str]] = {
        "family": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
        "model": (lambda v: isinstance(v, dict), "an object"),
        "labels": (lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)
                   and len(set(v)) == len(v), "a non-empty list of distinct strings"),
        "train": (lambda v: isinstance(v, dict), "an object"),
        "tokenizer": (lambda v: isinstance(v, dict), "an object"),
        "extra": (lambda v: isinstance(v, dict), "an object"),
        "data": (lambda v: isinstance(v, dict), "an object"),
        "preset": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "temperature": (number, "a positive number"),
        "classiformer_version": (lambda v: isinstance(v, str), "a string"),
        "created": (lambda v: isinstance(v, str), "a string"),
        "problem_type": (lambda v: v in (SINGLE_LABEL, MULTI_LABEL), f"{SINGLE_LABEL!r} or {MULTI_LABEL!r}"),
        "thresholds": (lambda v: v is None or _thresholds_ok(v, len(data["labels"])), "null or one threshold per label"),
        "temperatures": (lambda v: v is None or (isinstance(v, list) and len(v) == len(data["labels"])
                                                 and all(number(x) for x in v)), "null or one positive number per label"),
        "runtime": (lambda v: v in (PYTORCH, ONNXRUNTIME), f"{PYTORCH!r} or {ONNXRUNTIME!r}"),
        "export": (lambda v: v is None or isinstance(v, dict), "null or an object"),
    }
    for key, (ok, what) in expected.items():
        if key in data and not ok(data[key]):
            raise CheckpointError(f"{path}: corrupted: {key} must be {what}, found {json.dumps(data[key])[:60]}")
    try:
        return CheckpointMeta(**data)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: incompatible metadata ({e})") from None


def write_meta(folder: Path, meta: CheckpointMeta) -> None:
    """Replace a checkpoint's metadata (e.g. a newly fitted temperature) atomically."""
    folder = Path(folder)
    read_meta(folder)  # fails clearly when ``folder`` is not a checkpoint
    atomic_write_text(folder / META_FILE, meta.to_json())


def load_checkpoint(folder: Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, Tokenizer, CheckpointMeta]:
    """Load (model, tokenizer, metadata) from a checkpoint folder; the model is in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import build_model, model_config_from_dict

    folder = Path(folder)
    meta = read_meta(folder)
    if meta.runtime != PYTORCH:
        raise CheckpointError(f"{folder}: an exported {meta.runtime} model, not a PyTorch checkpoint; "
                              "load it with Classifier.load (it runs without PyTorch weights)")
    try:
        config = model_config_from_dict(meta.family, meta.model)
        model = build_model(meta.family, config)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{folder}: incompatible model config: {e}") from None
    loader = getattr(model, "load_weights", None)
    if callable(loader):
        loader(folder)
    else:
        path = folder / WEIGHTS_FILE
        if not path.exists():
            raise CheckpointError(f"{folder}: missing {WEIGHTS_FILE}")
        try:
            state = load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupted weights file ({e})") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model config: {e}") from None
    try:
        tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
    except (OSError, ValueError, KeyError, json.JSONDecodeError, Exception) as e:
        raise CheckpointError(f"{folder / TOKENIZER_DIR}: cannot load tokenizer ({e})") from None
    model.eval()
    return model.to(map_location), tokenizer, meta


def load_trainer_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"{folder}: no {STATE_FILE}; nothing to resume from")
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read trainer state ({e})") from None
