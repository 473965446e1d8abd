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

Defaults, from a fine-tuned MiniLM on 300 SST-2 texts on an AVX2-only AMD EPYC (no VNNI; decisions
equal to float32 ONNX Runtime's): per-tensor int8 weights 96.7%, with ``reduce_range`` (7-bit
weights, which ONNX Runtime suggests against ``vpmaddubsw`` saturation on such CPUs) 91.7%, per
output channel 99.3%; quantizing the embedding tables too (a quarter of the file instead of 62%)
98.7%. So weights are int8 per channel at full range; the embeddings are quantized when the
export's parity check accepts it, else kept in float32 (``exporter.export_model`` tries both,
smallest first). docs/benchmarks.md, "Export and ONNX Runtime", has the speeds.

Where both are refused, the feed-forward output projections (the down-projections, whose inputs
are the GELU activations with the largest outliers: Bondarenko et al., 2021, "Understanding and
Overcoming the Challenges of Efficient Transformer Quantization") stay in float32 and the rest is
int8. Dynamic quantization gives a whole batch's activations one scale, so one outlier coarsens
every text's; on a VNNI/AMX Xeon a MiniLM fine-tuned on SST-2 agreed with float32 on 98.67% /
98.75% of 1,200 validation phrases with everything in int8 (refused by the 99% rule), and on
99.0% with these projections kept; keeping the up-projections, the attention outputs, the
query/key/value products or the head instead did not get there (98.58–98.92%).

Weight-only blockwise int8 (ONNX Runtime's ``MatMulNBits``, a scale per block of 32 weights and,
at accuracy level 4, per block of activations) agreed far better (99.83% on an IMDB teacher that
dynamic int8 took to 98.0%) but ran at 0.55x float32 on an AVX2-only EPYC, so it is not a setting.
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
# The embedding tables' operators: Gather, or fusion.py's EmbedLayerNormalization (word, position
# and token-type tables, their sum and LayerNorm in one operator), quantized as QEmbedLayerNormalization.
EMBEDDING_OPS = ["Gather", "EmbedLayerNormalization"]


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


def int8_candidates() -> list[dict[str, Any]]:
    """The int8 settings an export tries in turn, smallest file first (see the module docstring)."""
    base = {"weight_type": "int8", "per_channel": True, "reduce_range": False, "float_down_projections": False}
    kept = {**base, "float_down_projections": True}
    return [{**base, "embeddings": True}, {**base, "embeddings": False}, {**kept, "embeddings": True},
            {**kept, "embeddings": False}]


def down_projections(model: Any) -> list[str]:
    """The matrix products of ``model`` (an ONNX graph) whose constant weight maps at least twice as
    many inputs to its outputs, ``(K, N)`` with ``K >= 2N > 2``: a transformer's feed-forward output
    projection (intermediate size to hidden size), found by shape rather than by name, so any
    encoder's export is covered; heads (``Gemm``, or ``N`` no larger than a few labels) are not."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2:
            continue
        dims = shapes.get(node.input[1])
        if dims is not None and len(dims) == 2 and dims[0] >= 2 * dims[1] and dims[1] > 16:
            names.append(node.name)
    return names


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

    s = {**int8_candidates()[0], **(settings or {})}
    weight = QuantType.QInt8 if s["weight_type"] == "int8" else QuantType.QUInt8
    tmp = dst.with_name(dst.name + ".int8")
    with _quiet_root_logger():
        kind = _int8(src, tmp, s, weight, pad_id, calibration, static)
    tmp.replace(dst)
    log.info("int8 (%s): %s", kind, s)
    return {"quantization": f"int8 {kind}", **s}


def _int8(src: Path, tmp: Path, s: dict[str, Any], weight: Any, pad_id: int,
          calibration: Sequence[list[np.ndarray]] | None, static: bool) -> str:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    kept = down_projections(onnx.load(str(src), load_external_data=False)) if s.get("float_down_projections") else []
    if static:
        if not calibration:
            raise ValueError("static int8 needs calibration texts (--calibration FILE)")
        quantize_static(
            str(src), str(tmp), _Batches(calibration, pad_id), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=weight, per_channel=s["per_channel"],
            reduce_range=s["reduce_range"], op_types_to_quantize=["MatMul", "Gemm"] + (EMBEDDING_OPS if s["embeddings"] else []),
            nodes_to_exclude=kept,
        )
        kind = "static"
    else:
        quantize_dynamic(
            str(src), str(tmp), weight_type=weight, per_channel=s["per_channel"], reduce_range=s["reduce_range"],
            op_types_to_quantize=["MatMul", "Gemm"] + (EMBEDDING_OPS if s["embeddings"] else []),
            nodes_to_exclude=kept,
            # DefaultTensorType: the fused operators (fusion.py) are outside the ONNX domain, so
            # shape inference cannot type their outputs; they are float32.
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        kind = "dynamic"
    return kind
