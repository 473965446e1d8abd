"""classiformer: train, evaluate, explain and serve transformer text classifiers."""

import importlib
import os as _os
import sys
import types
from typing import TYPE_CHECKING, Any

# Before anything imports torch (its OpenMP runtime reads this once, when it loads): threads that
# finish their share of work sleep instead of spinning. Spinning waits for a peer that another
# process has descheduled, so on a shared CPU the default policy made training several times
# slower (bench/threads.py; docs/benchmarks.md). A policy or spin count the user set wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from ._version import __version__  # noqa: E402

if TYPE_CHECKING:
    from .calibration import calibrate
    from .config import (
        PRESETS,
        RNNAttentionConfig,
        RunConfig,
        TokenizerConfig,
        TrainConfig,
        TransformerConfig,
        resolve_config,
    )
    from .data import Columns, DataError, TextDataset, load_builtin, read_dataset
    from .distill import distill
    from .evaluate import evaluate, write_evaluation
    from .explain import Explanation
    from .predict import Classifier
    from .tracking import start_tracking
    from .training import Callback, TrainingInterrupted, TrainResult, fit, resume_config
    from .tuning import tune


# Imported on first use (PEP 562), so that a process which needs only part of the package does not
# load all of it: serving an exported ONNX model never imports PyTorch, which alone is ~210 MB of
# resident memory (docs/benchmarks.md, "Export and ONNX Runtime").
_LAZY = {
    "calibrate": "calibration",
    **dict.fromkeys(["PRESETS", "RNNAttentionConfig", "RunConfig", "TokenizerConfig", "TrainConfig",
                     "TransformerConfig", "resolve_config"], "config"),
    **dict.fromkeys(["Columns", "DataError", "TextDataset", "load_builtin", "read_dataset"], "data"),
    "distill": "distill",
    **dict.fromkeys(["evaluate", "write_evaluation"], "evaluate"),
    "Explanation": "explain",
    "Classifier": "predict",
    "start_tracking": "tracking",
    **dict.fromkeys(["Callback", "TrainingInterrupted", "TrainResult", "fit", "resume_config"], "training"),
    "tune": "tuning",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """``classiformer.evaluate`` and ``classiformer.distill`` name functions, as they did when this
    file imported them eagerly, though submodules of the same names exist: importing such a
    submodule sets the package attribute to the module, which here gives way to its function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "PRESETS",
    "Callback",
    "Classifier",
    "Columns",
    "DataError",
    "Explanation",
    "RNNAttentionConfig",
    "RunConfig",
    "TextDataset",
    "TokenizerConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "TransformerConfig",
    "__version__",
    "calibrate",
    "distill",
    "evaluate",
    "fit",
    "load_builtin",
    "read_dataset",
    "resolve_config",
    "resume_config",
    "start_tracking",
    "tune",
    "write_evaluation",
]
