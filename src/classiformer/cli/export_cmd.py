"""classiformer export: a checkpoint -> a verified ONNX model folder for ONNX Runtime."""

from __future__ import annotations

import argparse

from ..runtime import set_threads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (optionally int8) for ONNX Runtime, verified against PyTorch",
        description="Write MODEL as an ONNX model folder (model.onnx, the tokenizer, classiformer.json; for pretrained "
        "encoders also the Hugging Face config and tokenizer files that Optimum's ORTModelForSequenceClassification "
        "loads). predict, evaluate, calibrate and serve accept the folder like a checkpoint and run it with ONNX "
        "Runtime, without the PyTorch weights; explain needs the PyTorch checkpoint. Before the folder is written, "
        "PyTorch and ONNX Runtime classify the same texts (the validation examples the training run kept in "
        "RUN/validation.jsonl, else --calibration FILE, else built-in probe texts): an export "
        "whose logits differ beyond tolerance (float32: 1e-4 relative; int8/fp16: under 99%% of decisions agree, or "
        "more than 0.5 points of accuracy lost where the texts have labels) is refused, and -o is left as it was.",
        epilog="example: classiformer export runs/sst2_minilm -o deploy/sst2 --quantize int8 --calibration dev.jsonl",
    )
    p.add_argument("model", help="run folder or checkpoint folder (PyTorch)")
    p.add_argument("--output", "-o", required=True, help="folder to write (new, empty, or an earlier export to replace)")
    p.add_argument("--quantize", choices=["auto", "none", "int8", "fp16"], default="auto",
                   help="int8: 8-bit weights and matrix products (about 4x smaller, faster on CPUs); fp16: half-precision "
                   "weights; none: float32; auto: int8 for pretrained encoders on CPUs with 8-bit kernels (AVX2, VNNI), "
                   "else float32")
    p.add_argument("--static", action="store_true",
                   help="int8 with activation scales fixed from --calibration texts (default: dynamic, scales per batch)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: the pinned one, recorded in classiformer.json)")
    p.add_argument("--calibration", metavar="FILE",
                   help="data file (read as the training data was) whose texts verify the export where the run kept no "
                   "validation examples, and whose labels, when present, check the accuracy of int8/fp16; --static "
                   "calibrates on it")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: the free cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import OPSET, export_model

    set_threads(args.threads)
    if args.static and not args.calibration:
        raise ValueError("--static needs --calibration FILE (the texts that fix the activation scales)")
    precision = {"none": "fp32"}.get(args.quantize, args.quantize)
    report = export_model(args.model, args.output, precision, args.opset or OPSET, args.calibration,
                          args.threads or None, static=args.static or None)
    print(report.summary())
    return 0
