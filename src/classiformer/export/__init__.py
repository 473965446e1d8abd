"""Deploying without PyTorch: export a checkpoint to ONNX (https://onnx.ai), optionally in int8 or
fp16, verified against PyTorch, and run it with ONNX Runtime.

- ``graph.py``: a family's forward pass as an ONNX graph (dynamic batch and sequence axes).
- ``quantize.py``: int8 (ONNX Runtime's dynamic or static quantization) and fp16.
- ``runtime.py``: ``OnnxRunner``, the ONNX Runtime side of the ``inference.Runner`` contract, and
  ``load_exported``, which ``Classifier.load`` calls for an exported folder.
- ``exporter.py``: ``export_model``, which writes the folder atomically after a parity check.

``runtime.py`` sits on the inference layer (``predict.py`` imports it); ``exporter.py`` on top of
``predict.py``. The ONNX packages come with ``pip install 'classiformer[export]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exporter import ExportError, ExportReport, Parity, export_model
    from .graph import OPSET
    from .quantize import PRECISIONS, default_precision

# Imported on first use: running an exported model (``runtime.py``) must not load the exporter,
# which needs PyTorch.
_LAZY = {**dict.fromkeys(["ExportError", "ExportReport", "Parity", "export_model"], "exporter"), "OPSET": "graph",
         "PRECISIONS": "quantize", "default_precision": "quantize"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["OPSET", "PRECISIONS", "ExportError", "ExportReport", "Parity", "default_precision", "export_model"]
