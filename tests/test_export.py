"""ONNX export and ONNX Runtime inference: every family gives PyTorch's logits (with padding, long
texts and the chunk policy), int8 keeps a toy task's accuracy, a failed parity check replaces
nothing, and predict / evaluate / calibrate / serve / Optimum accept the exported folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, resolve_config
from classiformer.checkpoint import CheckpointError, read_meta
from classiformer.cli import main
from classiformer.data import DataError
from classiformer.export import ExportError, export_model
from classiformer.export import graph as export_graph_module
from classiformer.predict import NeedsPyTorchModel

from .conftest import make_texts, write_jsonl
from .test_pretrained import config_for, tiny_bert  # noqa: F401  (the session fixture)

# Texts of every length: one word, padded batches, and far past the models' length limits.
TEXTS = [
    "goal", "stock market bank price", "chip software the of a new robot data phone code internet",
    " ".join(["match team goal"] * 30), "unknownword zzz", "the a of", *make_texts(30, seed=5).texts,
]


def tiny(family: str, **model: object):
    sizes: dict[str, object] = {"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.0}
    if family == "rnn-attention":
        sizes = {"embed_dim": 16, "hidden_dim": 7, "attention_dim": 5, "dropout": 0.0}
    return resolve_config("tiny" if family != "rnn-attention" else "rnn-attention", model={**sizes, **model},
                          tokenizer={"vocab_size": 60, "max_length": 13},
                          train={"epochs": 3, "batch_size": 16, "lr": 3e-2, "patience": 0})


# lesson: a plain transformer; base: with the hashed word-pair branch; rnn-attention: packed GRU;
# rnn-wide: the GRU with the same branch.
SCRATCH = {
    "lesson": ("transformer", {}),
    "base": ("transformer", {"ngram_buckets": 97, "ngram_scale": 30.0, "ngram_idf": True}),
    "rnn-attention": ("rnn-attention", {}),
    "rnn-wide": ("rnn-attention", {"ngram_buckets": 97, "ngram_scale": 30.0, "ngram_idf": True, "ngram_aux": 1.0}),
}


@pytest.fixture(scope="module")
def scratch_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scratch")
    runs = {}
    for name, (family, model) in SCRATCH.items():
        fit(tiny(family, **model), make_texts(240, seed=1), root / name, progress=False)
        runs[name] = root / name
    return runs


def assert_same_logits(torch_clf: Classifier, onnx_clf: Classifier, texts: list[str]) -> None:
    a, b = torch_clf.logits(texts), onnx_clf.logits(texts)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(a).max())))
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=1e-4)


@pytest.mark.parametrize("name", list(SCRATCH))
def test_each_from_scratch_family_gives_pytorchs_logits(name: str, scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    run = scratch_runs[name]
    report = export_model(run, tmp_path / "onnx", "fp32")
    assert report.parity.max_rel_diff <= 1e-4 and report.parity.agreement == 1.0
    torch_clf, onnx_clf = Classifier.load(run), Classifier.load(tmp_path / "onnx")
    assert onnx_clf.model is None and onnx_clf.runner.__class__.__name__ == "OnnxRunner"
    if name in ("base", "rnn-wide"):  # the n-gram branch has learned: its hashed pairs take part in the logits
        assert float(torch_clf.model.ngrams.pairs.weight.detach().abs().sum()) > 0  # type: ignore[union-attr]
    assert_same_logits(torch_clf, onnx_clf, TEXTS)
    # batch size (hence padding and the dynamic batch axis) changes nothing
    onnx_clf.batch_size = 1
    np.testing.assert_allclose(onnx_clf.logits(TEXTS), torch_clf.logits(TEXTS), rtol=1e-4, atol=1e-4)
    meta = read_meta(tmp_path / "onnx")
    assert meta.runtime == "onnxruntime" and meta.export is not None
    assert meta.export["opset"] == 17 and meta.export["precision"] == "fp32" and meta.export["format"] == 1
    assert meta.export["verification"]["texts"] == len((run / "validation.jsonl").read_text().splitlines())
    assert meta.labels == torch_clf.labels and meta.temperature == torch_clf.temperature


@pytest.mark.parametrize("mode", ["frozen", "partial", "finetune"])
def test_pretrained_modes_give_pytorchs_logits_with_every_long_text_policy(
    mode: str, tiny_bert: Path, tmp_path: Path  # noqa: F811
) -> None:
    fit(config_for(tiny_bert, mode, epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "onnx", "fp32")
    for policy in ("truncate", "head-tail", "chunks"):
        torch_clf = Classifier.load(tmp_path / "run", long_text=policy)
        onnx_clf = Classifier.load(tmp_path / "onnx", long_text=policy)
        assert_same_logits(torch_clf, onnx_clf, TEXTS)
    hf = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert hf["id2label"] == {"0": "money", "1": "sports", "2": "tech"} and hf["label2id"]["tech"] == 2
    assert hf["problem_type"] == "single_label_classification"
    assert hf["architectures"] == ["BertForSequenceClassification"]


OPTIMUM_SIDE = Path(sys.prefix) / "optimum-side"  # scripts/setup.sh installs Optimum there (see it for why)
OPTIMUM_SCRIPT = """
import json, sys
import numpy as np
from optimum.onnxruntime import ORTModelForSequenceClassification
from transformers import AutoTokenizer
model = ORTModelForSequenceClassification.from_pretrained(sys.argv[1])
tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = json.loads(sys.argv[2])
enc = tok(texts, padding=True, truncation=True, max_length=int(sys.argv[3]), return_tensors="np")
print(json.dumps({"logits": np.asarray(model(**enc).logits).tolist(), "id2label": model.config.id2label}))
"""


def test_optimum_loads_a_pretrained_export_and_gives_the_same_logits(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    assert OPTIMUM_SIDE.exists(), f"{OPTIMUM_SIDE} missing: run scripts/setup.sh (it installs Optimum there)"
    fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "onnx", "fp32")
    texts = TEXTS[:4]
    env = {**os.environ, "PYTHONPATH": str(OPTIMUM_SIDE), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", OPTIMUM_SCRIPT, str(tmp_path / "onnx"), json.dumps(texts), "24"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["id2label"] == {"0": "money", "1": "sports", "2": "tech"}
    np.testing.assert_allclose(np.array(got["logits"]), Classifier.load(tmp_path / "run").logits(texts), atol=1e-4)


def test_int8_keeps_the_toy_tasks_accuracy(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    fit(config_for(tiny_bert, "finetune"), make_texts(240, seed=1), tmp_path / "run", progress=False)
    calib = write_jsonl(tmp_path / "calib.jsonl", 90, seed=2)
    report = export_model(tmp_path / "run", tmp_path / "int8", "int8", calibration=calib)
    fp32 = export_model(tmp_path / "run", tmp_path / "fp32", "fp32", calibration=calib)
    p = report.parity
    # verified on the run's own validation examples (they come before --calibration), labels and all
    assert "validation.jsonl" in p.source and p.texts == 24
    assert p.accuracy_pytorch is not None and p.accuracy_onnx is not None
    assert p.accuracy_pytorch > 0.9 and p.accuracy_onnx >= p.accuracy_pytorch - 0.005 and p.agreement >= 0.99
    meta = read_meta(tmp_path / "int8")
    assert meta.export is not None and meta.export["precision"] == "int8" and meta.export["quantization"] == "int8 dynamic"
    assert report.bytes < fp32.bytes  # int8 weights
    data = make_texts(60, seed=3)
    clf = Classifier.load(tmp_path / "int8")
    assert np.mean(np.array(clf.predict(data.texts)) == np.array(data.labels)) > 0.9


def test_static_int8_and_fp16_exports(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    calib = write_jsonl(tmp_path / "calib.jsonl", 60, seed=2)
    static = export_model(scratch_runs["lesson"], tmp_path / "static", "int8", calibration=calib, static=True)
    assert read_meta(tmp_path / "static").export["quantization"] == "int8 static"  # type: ignore[index]
    half = export_model(scratch_runs["lesson"], tmp_path / "fp16", "fp16", calibration=calib)
    for r in (static, half):
        assert r.parity.agreement >= 0.99
    with pytest.raises(ValueError, match="calibration"):
        export_model(scratch_runs["lesson"], tmp_path / "nocalib", "int8", static=True)


def test_a_failed_parity_check_replaces_nothing(scratch_runs: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run, dest = scratch_runs["lesson"], tmp_path / "onnx"
    export_model(run, dest, "fp32")
    before = {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}
    forward = export_graph_module.LogitsGraph.forward

    def faulty(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return forward(self, input_ids, attention_mask) + 0.01  # a graph that is slightly off

    monkeypatch.setattr(export_graph_module.LogitsGraph, "forward", faulty)
    with pytest.raises(ExportError, match=r"export refused.*float32 logits differ by up to .* more than 0.0001"):
        export_model(run, dest, "fp32")
    assert {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["onnx"]  # no temporary folder left


def test_export_refuses_to_overwrite_what_is_not_an_export(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    run = scratch_runs["lesson"]
    with pytest.raises(ExportError, match="the model being exported"):
        export_model(run, run, "fp32")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an exported model"):
        export_model(run, tmp_path / "mine", "fp32")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_corrupted_model_onnx_gives_a_clear_error(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    export_model(scratch_runs["lesson"], tmp_path / "onnx", "fp32")
    onnx_file = tmp_path / "onnx" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model.onnx: not a loadable ONNX model .*export it again"):
        Classifier.load(tmp_path / "onnx")
    onnx_file.unlink()
    with pytest.raises(CheckpointError, match="model.onnx: missing"):
        Classifier.load(tmp_path / "onnx")


def test_multilabel_export_keeps_sigmoids_temperatures_and_thresholds(multilabel_classifier: Classifier,
                                                                      tmp_path: Path) -> None:
    clf = multilabel_classifier
    export_model(clf.path, tmp_path / "onnx", "fp32")  # type: ignore[arg-type]
    onnx_clf = Classifier.load(tmp_path / "onnx")
    assert onnx_clf.multi_label and onnx_clf.meta.thresholds == clf.meta.thresholds
    assert onnx_clf.meta.temperatures == clf.meta.temperatures
    texts = make_texts(40, seed=9).texts
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), clf.predict_proba(texts), atol=1e-5)
    assert onnx_clf.predict(texts) == clf.predict(texts)
    onnx_clf.set_threshold(0.3)
    clf2 = Classifier.load(clf.path, threshold=0.3)  # type: ignore[arg-type]
    assert onnx_clf.predict(texts) == clf2.predict(texts)


def test_predict_evaluate_calibrate_and_explain_on_an_exported_folder(scratch_runs: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "onnx"
    assert main(["export", str(scratch_runs["lesson"]), "-o", str(out), "--quantize", "none"]) == 0
    assert "exported fp32 ONNX model (opset 17)" in capsys.readouterr().out
    assert main(["predict", str(out), "goal match team", "stock bank", "--threads", "1"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["sports", "money"]
    assert Classifier.load(out, threads=1).runner.session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]
    before = torch.get_num_threads()
    try:  # the checkpoint beside it runs on the same threads (PyTorch's count is process-wide)
        torch.set_num_threads(2)
        Classifier.load(scratch_runs["lesson"], threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    test = write_jsonl(tmp_path / "test.jsonl", 60, seed=2)
    assert main(["evaluate", str(out), "--test", str(test)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["calibrate", str(out), "--data", str(test)]) == 0
    assert "temperature" in capsys.readouterr().out
    assert read_meta(out).runtime == "onnxruntime"  # calibration rewrote the metadata, kept the runtime
    assert main(["explain", str(out), "goal match"]) == 1
    assert "cannot explain its predictions" in capsys.readouterr().err
    with pytest.raises(NeedsPyTorchModel, match=r"cannot explain .* PyTorch checkpoint .*best"):
        Classifier.load(out).explain("goal match")
    with pytest.raises(ValueError, match="precision was chosen at export"):
        Classifier.load(out, bf16=True)


def test_serving_an_exported_folder(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from classiformer.server import ServerSettings, create_app

    export_model(scratch_runs["lesson"], tmp_path / "onnx", "fp32")
    torch_clf = Classifier.load(scratch_runs["lesson"])
    with TestClient(create_app(tmp_path / "onnx", ServerSettings())) as client:
        r = client.post("/v1/predict", json={"texts": ["goal match team", "chip software"]})
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [p["label"] for p in got] == torch_clf.predict(["goal match team", "chip software"])
        info = client.get("/v1/model").json()
        assert info["runtime"] == "onnxruntime" and info["explain"] is False
        r = client.post("/v1/explain", json={"text": "goal match"})
        assert r.status_code == 422 and "PyTorch checkpoint" in r.text


def test_int8_falls_back_to_float_embeddings_when_the_smaller_settings_are_refused(
    scratch_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classiformer.export.exporter import Parity

    failure, calls = Parity.failure, []

    def first_refused(self: Parity, precision: str) -> str | None:
        calls.append(precision)
        return "injected refusal" if len(calls) == 1 else failure(self, precision)

    monkeypatch.setattr(Parity, "failure", first_refused)
    calib = write_jsonl(tmp_path / "calib.jsonl", 90, seed=2)  # texts like the toy model's (the probes are not)
    report = export_model(scratch_runs["lesson"], tmp_path / "int8", "int8", calibration=calib)
    info = read_meta(tmp_path / "int8").export
    assert info is not None and len(calls) == 2
    assert info["embeddings"] is False and info["per_channel"] is True
    assert len(info["refused_settings"]) == 1 and "injected refusal" in info["refused_settings"][0]
    assert report.parity.agreement >= 0.99
    monkeypatch.setattr(Parity, "failure", lambda self, precision: "always refused")
    with pytest.raises(ExportError, match="always refused.*; then always refused"):
        export_model(scratch_runs["lesson"], tmp_path / "int8", "int8", calibration=calib)
    assert read_meta(tmp_path / "int8").export["embeddings"] is False  # type: ignore[index]  # the good one stays


# `classiformer serve EXPORT` run in a fresh process, with uvicorn's serving loop replaced by a
# TestClient over the same app: PyTorch must never be imported (it is ~210 MB of resident memory,
# more than the whole int8 MiniLM server needs otherwise).
NO_TORCH_SCRIPT = """
import json, sys
import uvicorn
from fastapi.testclient import TestClient

def run(self, *args, **kwargs):
    with TestClient(self.config.app) as client:
        r = client.post("/v1/predict", json={"texts": json.loads(sys.argv[2])})
        info = client.get("/v1/model").json()
    print(json.dumps({"status": r.status_code, "predictions": r.json()["predictions"], "versions": info["versions"],
                      "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")
                                      or m == "transformers")}))
    self.started = True

uvicorn.Server.run = run
from classiformer.cli import main
sys.exit(main(["serve", sys.argv[1], "--threads", "1"]))
"""


@pytest.mark.parametrize("family", ["lesson", "hf"])
def test_serving_an_exported_model_never_imports_pytorch(
    family: str, scratch_runs: dict[str, Path], tiny_bert: Path, tmp_path: Path  # noqa: F811
) -> None:
    run = scratch_runs["lesson"]
    if family == "hf":  # its tokenizer too: the Rust tokenizer alone, not transformers (which imports torch)
        run = tmp_path / "run"
        fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(60, seed=1), run, progress=False)
    export_model(run, tmp_path / "onnx", "fp32")
    texts = TEXTS[:3] + TEXTS[-3:]
    out = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(tmp_path / "onnx"), json.dumps(texts)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["status"] == 200 and got["torch"] == []
    assert "onnxruntime" in got["versions"] and "torch" not in got["versions"]
    assert [p["label"] for p in got["predictions"]] == Classifier.load(tmp_path / "onnx").predict(texts)


def test_export_verifies_on_the_runs_stored_validation_examples(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    run = scratch_runs["lesson"]
    rows = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and all(set(r) == {"text", "label"} for r in rows)  # 10% of 240, with labels
    report = export_model(run, tmp_path / "onnx", "fp32")
    p = report.parity
    assert p.texts == 24 and "validation.jsonl" in p.source
    assert p.accuracy_pytorch is not None and p.accuracy_pytorch == p.accuracy_onnx  # labels known: accuracy checked
    clf = Classifier.load(run)
    assert p.accuracy_pytorch == pytest.approx(np.mean(np.array(clf.predict([r["text"] for r in rows]))
                                                       == np.array([r["label"] for r in rows])))
    # a checkpoint outside its run folder: --calibration, else the probe texts
    import shutil

    shutil.copytree(run / "best", tmp_path / "alone")
    calib = write_jsonl(tmp_path / "calib.jsonl", 30, seed=3)
    assert export_model(tmp_path / "alone", tmp_path / "onnx", "fp32", calibration=calib).parity.texts == 30
    assert export_model(tmp_path / "alone", tmp_path / "onnx", "fp32").parity.source == "built-in probe texts"


def test_a_malformed_stored_validation_file_names_its_line(scratch_runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    shutil.copytree(scratch_runs["lesson"], tmp_path / "run")
    (tmp_path / "run" / "validation.jsonl").write_text('{"text": "goal", "label": "sports"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"validation.jsonl:2: "):
        export_model(tmp_path / "run", tmp_path / "onnx", "fp32")
    assert not (tmp_path / "onnx").exists()


def test_fused_bert_export_gives_pytorchs_logits(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "onnx", "fp32", fuse=True)
    info = read_meta(tmp_path / "onnx").export
    assert info is not None and info["fused_operators"].get("Attention", 0) >= 1  # all but the [CLS]-only layer
    assert_same_logits(Classifier.load(tmp_path / "run"), Classifier.load(tmp_path / "onnx"), TEXTS)
    export_model(tmp_path / "run", tmp_path / "int8", "int8", fuse=True)  # quantizes the fused graph
    assert Classifier.load(tmp_path / "int8").predict(TEXTS[:3])


def _contrib_ops(path: Path) -> dict[str, int]:
    import onnx

    ops: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if node.domain == "com.microsoft":
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_blocks_export_with_fused_operators_and_give_pytorchs_logits(norm_first: bool, tmp_path: Path) -> None:
    # two blocks, heads x head_dim (3 x 5) unlike embed_dim (18): the fused Attention reads the same
    # query/key/value columns as SelfAttention; the n-gram branch rides along
    config = tiny("transformer", num_layers=2, head_dim=5, norm_first=norm_first, ngram_buckets=31)
    fit(config, make_texts(120, seed=2), tmp_path / "run", progress=False)
    export_model(tmp_path / "run", tmp_path / "onnx", "fp32")
    made = {"Attention": 2, "SkipLayerNormalization": 0 if norm_first else 4}
    made = {k: v for k, v in made.items() if v}
    assert _contrib_ops(tmp_path / "onnx" / "model.onnx") == made
    assert read_meta(tmp_path / "onnx").export["fused_operators"] == made  # type: ignore[index]
    torch_clf = Classifier.load(tmp_path / "run")
    assert_same_logits(torch_clf, Classifier.load(tmp_path / "onnx"), TEXTS)
    # the fused blocks compute what the model's do, and the model gets its own blocks back after
    from classiformer.export import contrib

    model = torch_clf.model.eval()  # type: ignore[union-attr]
    ids, mask = export_graph_module.example_batch(0, torch_clf.tokenizer.vocab_size, 13)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
        with contrib.fused_blocks(model):
            got = model(input_ids=ids, attention_mask=mask).logits
        assert all("forward" not in vars(b) for b in model.blocks)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
        assert model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions is not None
    # fuse=False writes the plain ONNX graph: no operator outside the standard domain, same logits
    export_model(tmp_path / "run", tmp_path / "plain", "fp32", fuse=False)
    assert _contrib_ops(tmp_path / "plain" / "model.onnx") == {}
    assert_same_logits(torch_clf, Classifier.load(tmp_path / "plain"), TEXTS)


def _projections_graph(path: Path) -> None:
    """x (batch, 32) through an up-projection (32, 64), a down-projection (64, 32), a square product
    and a 3-label head: the shapes of a transformer block's feed-forward part."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"up": (32, 64), "down": (64, 32), "square": (32, 32), "head": (32, 3)}
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, s).astype(np.float32), f"w_{n}") for n, s in shapes.items()]
    nodes, prev = [], "x"
    for name in shapes:
        nodes.append(helper.make_node("MatMul", [prev, f"w_{name}"], [f"y_{name}"], name=f"/{name}/MatMul"))
        prev = f"y_{name}"
    graph = helper.make_graph(nodes, "projections", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 32])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["b", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_int8_can_keep_the_down_projections_in_float(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from classiformer.export.quantize import down_projections, int8_candidates, quantize

    _projections_graph(tmp_path / "fp32.onnx")
    assert down_projections(onnx.load(str(tmp_path / "fp32.onnx"))) == ["/down/MatMul"]  # not the head, not square
    candidates = [c for c in int8_candidates() if not c["embeddings"]]  # (the toy graph has no tables)
    every = next(c for c in candidates if not c["float_down_projections"])
    kept = next(c for c in candidates if c["float_down_projections"])
    for tag, settings in (("all", every), ("kept", kept)):
        quantize(tmp_path / "fp32.onnx", tmp_path / f"{tag}.onnx", "int8", pad_id=0, settings=settings)
    ops = {tag: {n.name: n.op_type for n in onnx.load(str(tmp_path / f"{tag}.onnx")).graph.node} for tag in ("all", "kept")}
    assert ops["kept"]["/down/MatMul"] == "MatMul" and "/down/MatMul" not in ops["all"]  # quantized: renamed
    assert sum(op == "MatMul" for op in ops["kept"].values()) == 1  # every other product is int8
    x = np.random.default_rng(1).normal(0, 1, (16, 32)).astype(np.float32)

    def out(tag: str) -> np.ndarray:
        return ort.InferenceSession(str(tmp_path / f"{tag}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    want = out("fp32")
    assert np.abs(out("kept") - want).max() < np.abs(out("all") - want).max()  # one product fewer rounded
