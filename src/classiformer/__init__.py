"""classiformer: train, evaluate, explain and serve transformer text classifiers."""

from ._version import __version__
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
from .evaluate import evaluate, write_evaluation  # noqa: E402
from .explain import Explanation  # noqa: E402
from .predict import Classifier  # noqa: E402
from .training import TrainResult, fit  # noqa: E402

__all__ = [
    "PRESETS",
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
    "TransformerConfig",
    "__version__",
    "calibrate",
    "evaluate",
    "fit",
    "load_builtin",
    "read_dataset",
    "resolve_config",
    "write_evaluation",
]
