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

from .exporter import ExportError, ExportReport, Parity, export_model
from .graph import OPSET
from .quantize import PRECISIONS, default_precision

__all__ = ["OPSET", "PRECISIONS", "ExportError", "ExportReport", "Parity", "default_precision", "export_model"]
