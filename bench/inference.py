"""Deployed inference: classiformer's ONNX Runtime exports against the peers users would pick, in
the same run, on the same fine-tuned MiniLM and the same texts.

Each peer runs in a process of its own (so each one's resident memory is its own), times one pass
over the texts **including tokenization** after a warm-up, and reports docs/s, accuracy and its
peak RSS (VmHWM):

- Hugging Face ``pipeline("text-classification")`` at its default and at ``batch_size=32``;
- Optimum ``ORTModelForSequenceClassification`` fp32, and int8 quantized by Optimum's own
  ``ORTQuantizer`` with its AVX-512-VNNI config and with its AVX2 config (dynamic, per-tensor);
  Optimum needs transformers < 4.58, so it runs with ``.venv/optimum-side`` first on its path;
- classiformer PyTorch fp32 and bf16 (``Classifier.load(bf16=True)``, which falls back to fp32 on
  a CPU without bf16 units: that is what a user gets), ONNX fp32 and int8 (``classiformer export``).

Then ``lesson`` and ``base`` trained on the AG News split, PyTorch vs ONNX Runtime; int8 file
size vs fp32; FLOPs per text x docs/s against matrix-product peaks measured here (PyTorch fp32 and
bf16, ONNX Runtime fp32 and int8); and ``classiformer serve`` on the PyTorch checkpoint vs the int8
export (throughput and RSS, through bench/serve.py's load generator).

Usage: ``python bench/inference.py --model RUN_OR_CHECKPOINT [--data ../shared/data] [--n 300]``
with a fine-tuned MiniLM (e.g. ``classiformer train --model minilm --mode finetune --train
sst2-4k.jsonl --epochs 1 --max-length 64 -o /tmp/minilm-sst2``). Prints tables and writes
bench/results/inference.json (or ``--json PATH``). One thread per peer.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SIDE = Path(sys.prefix) / "optimum-side"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- workers (one process each) ------------------------------------------------------------------


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Load one peer, classify args.texts (a JSON file of {"texts", "labels"}) once after a warm-up."""
    data = json.loads(Path(args.texts).read_text())
    texts, labels = data["texts"], data["labels"]
    peer, model = args.worker, args.model
    if peer.startswith("optimum"):
        import numpy as np
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        m = ORTModelForSequenceClassification.from_pretrained(model, session_options=opts, file_name=args.file_name)
        tok = AutoTokenizer.from_pretrained(model)
        id2label = m.config.id2label

        def predict(batch: list[str]) -> list[str]:
            out = []
            for i in range(0, len(batch), 32):
                enc = tok(batch[i : i + 32], padding=True, truncation=True, max_length=args.max_length, return_tensors="np")
                out += [id2label[int(j)] for j in np.asarray(m(**enc).logits).argmax(1)]
            return out
    elif peer.startswith("pipeline"):
        import torch
        from transformers import pipeline

        torch.set_num_threads(1)
        pipe = pipeline("text-classification", model=model, tokenizer=str(Path(model) / "tokenizer" / "hf"), device=-1)
        kw: dict[str, Any] = {"truncation": True, "max_length": args.max_length}
        if peer == "pipeline_bs32":
            kw["batch_size"] = 32

        def predict(batch: list[str]) -> list[str]:
            return [r["label"] for r in pipe(batch, **kw)]
    else:
        from classiformer import Classifier

        if "onnx" not in peer:  # an exported model runs without PyTorch: its RSS is without it too
            import torch

            torch.set_num_threads(1)
        clf = Classifier.load(model, bf16=peer.endswith("bf16"), threads=1)

        def predict(batch: list[str]) -> list[str]:
            return clf.predict(batch)

    predict(texts[:16])
    t = time.perf_counter()
    got = predict(texts)
    seconds = time.perf_counter() - t
    acc = sum(g == y for g, y in zip(got, labels)) / len(labels)
    return {"peer": peer, "docs_per_sec": len(texts) / seconds, "accuracy": acc, "rss_mb": peak_rss_mb(),
            "texts": len(texts), "predictions": got}


def run_worker(peer: str, model: Path | str, texts: Path, max_length: int, side: bool = False,
               file_name: str = "model.onnx") -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = (str(SIDE) if side else str(ROOT / "src")) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", peer, "--model", str(model), "--texts", str(texts),
           "--max-length", str(max_length), "--file-name", file_name]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return {"peer": peer, "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


OPTIMUM_QUANTIZE = """
import shutil, sys
from pathlib import Path
from optimum.onnxruntime import ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig
q = ORTQuantizer.from_pretrained(sys.argv[1], file_name="model.onnx")
for name, cfg in (("avx512_vnni", AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)),
                  ("avx2", AutoQuantizationConfig.avx2(is_static=False, per_channel=False))):
    q.quantize(save_dir=sys.argv[2] + "/" + name, quantization_config=cfg)
    for f in Path(sys.argv[1]).iterdir():  # the tokenizer files (and config) beside the quantized model
        if f.is_file() and f.suffix in (".json", ".txt") and not (Path(sys.argv[2]) / name / f.name).exists():
            shutil.copy(f, Path(sys.argv[2]) / name / f.name)
"""


# -- the main process ----------------------------------------------------------------------------


def ort_matmul_peaks(n: int = 1024, reps: int = 8) -> dict[str, float]:
    """GFLOP/s of one (n x n) @ (n x n) product through ONNX Runtime, fp32 and dynamic int8."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "mm",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])], [w])
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "mm.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
        quantize_dynamic(str(fp32), str(Path(tmp) / "mm8.onnx"), weight_type=QuantType.QInt8)
        x = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
        for name, path in (("fp32", fp32), ("int8", Path(tmp) / "mm8.onnx")):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            s.run(None, {"X": x})
            t = time.perf_counter()
            for _ in range(reps):
                s.run(None, {"X": x})
            out[name] = 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
    return out


def load_jsonl(path: Path, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    import numpy as np

    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    idx = sorted(np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False))
    return [rows[i]["text"] for i in idx], [str(rows[i]["label"]) for i in idx]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--texts", help=argparse.SUPPRESS)
    p.add_argument("--file-name", default="model.onnx", help=argparse.SUPPRESS)
    p.add_argument("--model", help="fine-tuned MiniLM run or checkpoint folder (SST-2 sentiment)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=300, help="texts per set (SST-2 test, IMDB test)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--ag-rounds", type=int, default=15, help="interleaved timed passes of each from-scratch backend")
    p.add_argument("--ag-epochs", type=int, default=2)
    p.add_argument("--serve-seconds", type=float, default=8.0)
    p.add_argument("--json", default=str(RESULTS / "inference.json"))
    p.add_argument("--work", type=Path, help="folder for the exports, kept and reused (default: a new temporary one)")
    p.add_argument("--parts", default="exports,sets,peaks,scratch,serve",
                   help="what to run (default: all): exports (ours and Optimum's; no timing), sets (the peers on "
                   "--sets), peaks (matrix-product peaks and FLOPs), scratch (lesson/base on AG News), serve")
    p.add_argument("--sets", default="sst2,imdb", help="text sets for the peers: sst2, imdb, ag_news (default: sst2,imdb)")
    p.add_argument("--calibration", type=Path, help="labelled texts that verify the exports where the run kept none "
                   "(default: 300 SST-2 training sentences)")
    args = p.parse_args()
    if args.worker:
        res = worker(args)
        print(json.dumps(res))
        return 0

    import logging

    import numpy as np
    import torch
    from hardware import header, machine
    from pretrained import forward_flops, load_ag_news, matmul_peak

    from classiformer import Classifier, fit, resolve_config
    from classiformer.export import export_model
    from classiformer.predict import resolve_model_path

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    info = machine()
    print(header(info), flush=True)
    res: dict[str, Any] = {"machine": info, "args": {k: v for k, v in vars(args).items() if v is not None}}
    parts = set(args.parts.split(","))
    if args.model is None and parts - {"scratch"}:  # the from-scratch part trains its own models
        raise SystemExit(f"--model (a fine-tuned MiniLM run) is needed for --parts {args.parts}")
    model = resolve_model_path(args.model) if args.model is not None else None
    data = Path(args.data)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-inference-"))
    work.mkdir(parents=True, exist_ok=True)

    # exports: ours fp32 and int8, verified on the run's validation examples or on --calibration
    # (default 300 texts of the SST-2 train split; the model saw 4,000 others).
    if "exports" in parts:
        t0 = time.perf_counter()
        calib = args.calibration or work / "calib.jsonl"
        if args.calibration is None:
            texts, labels = load_jsonl(data / "sst2" / "train.jsonl.gz", 300, seed=7)
            calib.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
        exports: dict[str, Any] = {}
        for name, precision in (("fp32", "fp32"), ("int8", "int8")):
            try:
                r = export_model(model, work / f"onnx_{name}", precision, calibration=calib, threads=1)
                exports[name] = {"bytes": r.bytes, "fp32_bytes": r.fp32_bytes, "parity": r.parity.to_dict()}
                print(f"export {name}: {r.summary()}", flush=True)
            except Exception as e:  # a refused export is a result too
                exports[name] = {"error": str(e)}
                print(f"export {name}: {e}", flush=True)
        res["exports"] = exports
        res["export_seconds"] = time.perf_counter() - t0

        # Optimum: its own export of the same model is ours laid out for it (config.json, model.onnx,
        # tokenizer files), quantized by its ORTQuantizer.
        env = {**os.environ, "PYTHONPATH": str(SIDE)}
        q = subprocess.run([sys.executable, "-c", OPTIMUM_QUANTIZE, str(work / "onnx_fp32"), str(work / "optimum")],
                           capture_output=True, text=True, env=env, timeout=1800)
        if q.returncode != 0:
            print("optimum quantization failed:", q.stderr[-800:], flush=True)

    names = {"neg": "negative", "pos": "positive"}  # IMDB's label names, as the SST-2 model names them
    sets: dict[str, tuple[list[str], list[str]]] = {}
    for set_name in args.sets.split(",") if "sets" in parts else []:
        if set_name == "sst2":
            sets["sst2"] = load_jsonl(data / "sst2" / "test.jsonl.gz", args.n, 0)
        elif set_name == "imdb":
            imdb_texts, imdb_labels = load_jsonl(data / "imdb" / "test.jsonl.gz", max(args.n // 3, 50), 0)
            sets["imdb"] = (imdb_texts, [names.get(y, y) for y in imdb_labels])
        elif set_name == "ag_news":  # for a MiniLM fine-tuned on the AG News split's training part
            ag_eval = load_ag_news(data)[1]
            pick = sorted(np.random.default_rng(0).choice(len(ag_eval), min(args.n, len(ag_eval)), replace=False))
            sets["ag_news"] = ([ag_eval.texts[i] for i in pick], [ag_eval.labels[i] for i in pick])  # type: ignore[index]
        else:
            raise SystemExit(f"unknown set {set_name!r}")
    peers: list[tuple[str, Path | str, bool, str]] = [
        ("pipeline_default", model, False, "model.onnx"), ("pipeline_bs32", model, False, "model.onnx"),
        ("optimum_fp32", work / "onnx_fp32", True, "model.onnx"),
        ("optimum_int8_avx512vnni", work / "optimum" / "avx512_vnni", True, "model_quantized.onnx"),
        ("optimum_int8_avx2", work / "optimum" / "avx2", True, "model_quantized.onnx"),
        ("classiformer_pytorch_fp32", model, False, ""), ("classiformer_pytorch_bf16", model, False, ""),
        ("classiformer_onnx_fp32", work / "onnx_fp32", False, ""), ("classiformer_onnx_int8", work / "onnx_int8", False, ""),
    ]
    res["sets"] = {}
    for set_name, (texts, labels) in sets.items():
        f = work / f"{set_name}.json"
        f.write_text(json.dumps({"texts": texts, "labels": labels}))
        print(f"\n{set_name}: {len(texts)} texts, max_length {args.max_length}; load {os.getloadavg()[0]:.1f}", flush=True)
        rows = {}
        for peer, path, side, file_name in peers:
            if not Path(path).exists():
                rows[peer] = {"peer": peer, "error": f"{path} missing"}
                continue
            rows[peer] = run_worker(peer, path, f, args.max_length, side, file_name or "model.onnx")
            r = rows[peer]
            if "error" in r:
                print(f"  {peer:32s} error: {r['error']}", flush=True)
            else:
                print(f"  {peer:32s} {r['docs_per_sec']:8.1f} docs/s  accuracy {100 * r['accuracy']:6.2f}%  "
                      f"RSS {r['rss_mb']:6.0f} MB", flush=True)
        ok = {k: v for k, v in rows.items() if "error" not in v}
        ref = ok.get("classiformer_onnx_fp32", {}).get("predictions")
        for v in ok.values():
            if ref is not None:
                v["agreement_with_onnx_fp32"] = float(np.mean(np.array(v["predictions"]) == np.array(ref)))
            v.pop("predictions", None)
        best_pipe = max((ok[k]["docs_per_sec"] for k in ("pipeline_default", "pipeline_bs32") if k in ok), default=None)
        ours = ok.get("classiformer_onnx_int8")
        ratios: dict[str, float] = {}
        if ours:
            if best_pipe:
                ratios["int8_vs_best_pipeline"] = ours["docs_per_sec"] / best_pipe
            for k in ("optimum_int8_avx512vnni", "optimum_int8_avx2"):
                if k in ok:
                    ratios[f"int8_vs_{k}"] = ours["docs_per_sec"] / ok[k]["docs_per_sec"]
            for k in ("classiformer_pytorch_bf16", "classiformer_pytorch_fp32"):
                if k in ok:
                    ratios[f"int8_vs_{k}"] = ours["docs_per_sec"] / ok[k]["docs_per_sec"]
            if "classiformer_onnx_fp32" in ok:
                ratios["int8_accuracy_drop_points"] = 100 * (ok["classiformer_onnx_fp32"]["accuracy"] - ours["accuracy"])
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()), flush=True)
        res["sets"][set_name] = {"rows": rows, "ratios": ratios}

    # FLOPs per text x docs/s against measured peaks
    if "peaks" in parts:
        clf = Classifier.load(model)
        peaks = {"torch_fp32": matmul_peak(torch.float32, 1024, 5), "torch_bf16": matmul_peak(torch.bfloat16, 512, 2),
                 **{f"ort_{k}": v for k, v in ort_matmul_peaks().items()}}
        res["matmul_peaks_gflops"] = peaks
        print("\nmatmul peaks (1 thread): " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()), flush=True)
        for set_name, (texts, _) in sets.items():
            lengths = np.array([len(x) for x in clf.tokenizer.encode(texts)])
            flops = forward_flops(clf.model, lengths, cls_only=True) / len(texts)  # type: ignore[arg-type]
            res["sets"][set_name]["flops_per_text"] = flops
            print(f"MiniLM forward: {flops / 1e6:.1f} MFLOP per {set_name} text (mean {lengths.mean():.1f} tokens)")
            for peer, peak in (("classiformer_onnx_int8", "ort_int8"), ("classiformer_onnx_fp32", "ort_fp32"),
                               ("classiformer_pytorch_fp32", "torch_fp32"), ("optimum_int8_avx2", "ort_int8")):
                r = res["sets"][set_name]["rows"].get(peer, {})
                if "docs_per_sec" in r:
                    achieved = flops * r["docs_per_sec"] / 1e9
                    r["achieved_gflops"] = achieved
                    print(f"  {peer:32s} {achieved:6.1f} GFLOP/s = {100 * achieved / peaks[peak]:5.1f}% of {peak} peak")

    # lesson and base on AG News: PyTorch vs ONNX Runtime (runs and exports in --work are reused, so
    # the training can happen outside a timing lock: --parts scratch_train)
    if parts & {"scratch", "scratch_train"}:
        ag_train, ag_eval = load_ag_news(data)
        res["ag_news"] = {}
        print(f"\nAG News split: {len(ag_train)} train / {len(ag_eval)} eval; load {os.getloadavg()[0]:.1f}", flush=True)
    for preset in ("lesson", "base") if parts & {"scratch", "scratch_train"} else ():
        run = work / f"ag_{preset}"
        if not (run / "best").exists():
            fit(resolve_config(preset, train={"epochs": args.ag_epochs}), ag_train, run, progress=False)
        # the default export (fused attention and LayerNorm operators, export/contrib.py) and the
        # plain ONNX graph beside it
        for folder, fuse in ((f"ag_{preset}_onnx", None), (f"ag_{preset}_onnx_plain", False)):
            if not (work / folder / "model.onnx").exists():
                export_model(run, work / folder, "fp32", threads=1, fuse=fuse)
        if "scratch" not in parts:
            continue
        row: dict[str, Any] = {}
        backends = {"pytorch": run, "onnx": work / f"ag_{preset}_onnx", "onnx_plain": work / f"ag_{preset}_onnx_plain"}
        clfs = {name: Classifier.load(path, threads=1) for name, path in backends.items()}
        seconds: dict[str, list[float]] = {name: [] for name in clfs}
        for c in clfs.values():
            c.predict(ag_eval.texts[:64])
        # passes interleaved (the machine's speed drifts), each tokenization included; the ratios are
        # the medians of the rounds' ratios, docs/s the medians of the passes
        got: dict[str, list[Any]] = {}
        for _ in range(args.ag_rounds):
            for name, c in clfs.items():
                t = time.perf_counter()
                got[name] = c.predict(ag_eval.texts)
                seconds[name].append(time.perf_counter() - t)
        for name, predicted in got.items():  # every round predicts the same labels
            row[f"{name}_accuracy"] = float(np.mean(np.array(predicted) == np.array(ag_eval.labels)))
        for name, c in clfs.items():
            tok = time.perf_counter()
            c.tokenizer.encode(ag_eval.texts)
            row[f"{name}_tokenize_docs_per_sec"] = len(ag_eval) / (time.perf_counter() - tok)
            row[f"{name}_docs_per_sec"] = len(ag_eval) / float(np.median(seconds[name]))
            row[f"{name}_best_docs_per_sec"] = len(ag_eval) / min(seconds[name])
        torch_s = np.array(seconds["pytorch"])
        row["onnx_vs_pytorch"] = float(np.median(torch_s / np.array(seconds["onnx"])))
        row["onnx_plain_vs_pytorch"] = float(np.median(torch_s / np.array(seconds["onnx_plain"])))
        row["load_average"] = os.getloadavg()[0]
        res["ag_news"][preset] = row
        print(f"  {preset:6s} PyTorch {row['pytorch_docs_per_sec']:8.0f} docs/s ({100 * row['pytorch_accuracy']:.2f}%)  "
              f"ONNX {row['onnx_docs_per_sec']:8.0f} docs/s ({100 * row['onnx_accuracy']:.2f}%)  "
              f"x{row['onnx_vs_pytorch']:.2f} (plain graph x{row['onnx_plain_vs_pytorch']:.2f}); tokenizer alone {row['onnx_tokenize_docs_per_sec']:.0f} docs/s; "
              f"load {row['load_average']:.1f}", flush=True)

    # serve: the PyTorch checkpoint vs the int8 export
    if "serve" in parts:
        sys.path.insert(0, str(Path(__file__).parent))
        from serve import run_mode

        serve_texts = next(iter(sets.values()))[0] if sets else load_jsonl(data / "sst2" / "test.jsonl.gz", 100, 0)[0]
        bodies = [json.dumps({"texts": [t]}).encode() for t in serve_texts[:100]]
        ns = argparse.Namespace(threads=1, max_batch_size=32, max_wait_ms=5.0, clients=[8], duration=args.serve_seconds,
                                max_requests=100000)
        res["serve"] = {}
        print("\nserve (1 thread, micro-batching on, 8 clients):", flush=True)
        labels = set(Classifier.load(model).labels)
        for name, path in (("pytorch", model), ("onnx_int8", work / "onnx_int8")):
            if Path(path).exists():
                srows = run_mode(Path(path), True, bodies, labels, ns)
                res["serve"][name] = srows
                print(f"  {name:10s} RSS {srows[-1]['rss_mb']:.0f} MB, {srows[-1]['throughput_rps']:.1f} req/s", flush=True)
        if len(res["serve"]) == 2:
            a, b = res["serve"]["pytorch"][-1], res["serve"]["onnx_int8"][-1]
            res["serve"]["rss_ratio"] = b["rss_mb"] / a["rss_mb"]
            res["serve"]["throughput_ratio"] = b["throughput_rps"] / a["throughput_rps"]
            print(f"  int8 export: {100 * res['serve']['rss_ratio']:.0f}% of the PyTorch server's RSS, "
                  f"x{res['serve']['throughput_ratio']:.2f} its throughput")
    int8_file, fp32_file = work / "onnx_int8" / "model.onnx", work / "onnx_fp32" / "model.onnx"
    if int8_file.exists() and fp32_file.exists():
        res["int8_file_ratio"] = int8_file.stat().st_size / fp32_file.stat().st_size
        print(f"\nint8 model.onnx: {int8_file.stat().st_size / 2**20:.1f} MiB = {100 * res['int8_file_ratio']:.0f}% of "
              f"the fp32 graph ({fp32_file.stat().st_size / 2**20:.1f} MiB)")
    res["end_load_average"] = os.getloadavg()[0]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2, default=lambda o: str(o) if isinstance(o, Path) else float(o)))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
