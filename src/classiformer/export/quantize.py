"""Reduced precision for an exported graph: int8 through ONNX Runtime's quantization tool
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html), fp16 through its
float16 converter.

- ``int8`` dynamic (the default): weights of the matrix products (and of the embedding tables,
  which hold most of a small encoder's bytes) are stored as int8 with one scale per tensor, or
  per output channel; activations are quantized per batch at run time, so no calibration data is
  needed and nothing depends on the input distribution.
- ``int8`` static (``static=True``): activation scales too are fixed beforehand from calibration
  texts (QDQ format, MinMax calibration).
- ``fp16``: weights and activations in float16, inputs and logits kept int64/float32.

On x86 CPUs without VNNI (AVX2 only, e.g. AMD EPYC before Zen 4), ONNX Runtime multiplies uint8
activations by int8 weights with ``vpmaddubsw``, whose 16-bit intermediate sums can saturate;
``reduce_range`` (7-bit weights) avoids that at a small cost in resolution, so it is on there and
off where VNNI (or AMX) computes 32-bit sums. Which settings are the defaults comes from
``bench/inference.py`` (docs/benchmarks.md, "Export and ONNX Runtime").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.batching import collate
from ..runtime import CpuFeatures, cpu_features

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "fp16")


def has_vnni(features: CpuFeatures | None = None) -> bool:
    """8-bit dot products with 32-bit sums in one instruction (AVX512-VNNI, AVX-VNNI, AMX)."""
    f = features or cpu_features()
    return any(x in f.flags for x in ("avx512_vnni", "avx_vnni", "amx_tile"))


def default_precision(family: str, features: CpuFeatures | None = None) -> str:
    """The precision ``export --quantize auto`` picks: int8 for pretrained encoders on an x86 CPU
    with 8-bit integer kernels (AVX2 or better; their matrix products are most of the time, and
    int8 ran them faster than float32 on both AVX2-only and VNNI CPUs), float32 for the small
    from-scratch families, whose run time is mostly not matrix products and whose n-gram tables
    lose more than they gain in int8."""
    f = features or cpu_features()
    int8_kernels = f.known and ("avx2" in f.flags or has_vnni(f))
    return "int8" if family == "hf" and int8_kernels else "fp32"


def int8_settings(features: CpuFeatures | None = None) -> dict[str, Any]:
    """The dynamic int8 settings for this CPU (see the module docstring)."""
    return {"weight_type": "int8", "per_channel": False, "reduce_range": not has_vnni(features)}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantization tool logs a line per tensor through the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


class _Batches:
    """ONNX Runtime's CalibrationDataReader over padded batches of token ids."""

    def __init__(self, batches: Sequence[list[np.ndarray]], pad_id: int) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = (
            {k: v.numpy() for k, v in collate(ids, pad_id).items()} for ids in batches if ids
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize(
    src: Path,
    dst: Path,
    precision: str,
    pad_id: int,
    calibration: Sequence[list[np.ndarray]] | None = None,
    static: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``src`` (a float32 graph) at ``precision`` to ``dst`` (which may be ``src``). Returns
    the settings used, recorded in classiformer.json."""
    import onnx

    src, dst = Path(src), Path(dst)
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(dst))
        return {"quantization": "float16 weights and activations (inputs and logits unchanged)"}
    if precision != "int8":
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    from onnxruntime.quantization import QuantType

    s = {**int8_settings(), **(settings or {})}
    weight = QuantType.QInt8 if s["weight_type"] == "int8" else QuantType.QUInt8
    tmp = dst.with_name(dst.name + ".int8")
    with _quiet_root_logger():
        kind = _int8(src, tmp, s, weight, pad_id, calibration, static)
    tmp.replace(dst)
    log.info("int8 (%s): %s", kind, s)
    return {"quantization": f"int8 {kind}", **s}


def _int8(src: Path, tmp: Path, s: dict[str, Any], weight: Any, pad_id: int,
          calibration: Sequence[list[np.ndarray]] | None, static: bool) -> str:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if static:
        if not calibration:
            raise ValueError("static int8 needs calibration texts (--calibration FILE)")
        quantize_static(
            str(src), str(tmp), _Batches(calibration, pad_id), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=weight, per_channel=s["per_channel"],
            reduce_range=s["reduce_range"], op_types_to_quantize=["MatMul", "Gemm"],
        )
        kind = "static"
    else:
        quantize_dynamic(
            str(src), str(tmp), weight_type=weight, per_channel=s["per_channel"], reduce_range=s["reduce_range"],
            op_types_to_quantize=["MatMul", "Gemm", "Gather"], extra_options={"MatMulConstBOnly": True},
        )
        kind = "dynamic"
    return kind
