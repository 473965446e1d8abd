"""classiformer: train, evaluate, explain and serve transformer text classifiers."""

import os as _os

# Before anything imports torch (its OpenMP runtime reads this once, when it loads): threads that
# finish their share of work sleep instead of spinning. Spinning waits for a peer that another
# process has descheduled, so on a shared CPU the default policy made training several times
# slower (bench/threads.py; docs/benchmarks.md). A policy or spin count the user set wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from ._version import __version__  # noqa: E402
from .calibration import calibrate  # noqa: E402
from .config import (  # noqa: E402
    PRESETS,
    RNNAttentionConfig,
    RunConfig,
    TokenizerConfig,
    TrainConfig,
    TransformerConfig,
    resolve_config,
)
from .data import Columns, DataError, TextDataset, load_builtin, read_dataset  # noqa: E402
from .distill import distill  # noqa: E402
from .evaluate import evaluate, write_evaluation  # noqa: E402
from .explain import Explanation  # noqa: E402
from .predict import Classifier  # noqa: E402
from .tracking import start_tracking  # noqa: E402
from .training import Callback, TrainingInterrupted, TrainResult, fit, resume_config  # noqa: E402
from .tuning import tune  # noqa: E402

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
