"""bench/distill.py end to end on toy data: a toy teacher labels through its verified ONNX export,
the table and the plot show the export's row and point, and ``--retime`` times the same runs
again, keeping the training run's figures beside the new ones."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from classiformer import Classifier, evaluate, fit, resolve_config

from .conftest import make_texts

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the bench's own helpers (hardware, scratch) import as top-level modules
    try:
        spec = importlib.util.spec_from_file_location("bench_distill", BENCH / "distill.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def write_set(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True)
    for split, rows in (("train", n), ("test", n // 2)):
        ds = make_texts(rows, seed=seed + (split == "test"))
        with gzip.open(folder / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [], strict=True))


def test_the_distill_bench_labels_through_an_export_and_retimes_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    torch.set_num_threads(1)
    bench = load_bench()
    # one toy student instead of the benchmark's sizes, which train for minutes
    monkeypatch.setattr(bench, "STUDENTS", [("tiny", "tiny", {})])
    data, teachers, work = tmp_path / "data", tmp_path / "teachers", tmp_path / "work"
    write_set(data / "imdb", 160, seed=1)
    run = teachers / "imdb"
    result = fit(resolve_config("tiny", train={"epochs": 4, "lr": 3e-3, "batch_size": 16}), make_texts(160, seed=1),
                 run, progress=False)
    (run / "bench_teacher.json").write_text(json.dumps({"run": str(result.best_dir), "preset": "tiny", "train_seconds": 1.0}))
    out, png = tmp_path / "distill.json", tmp_path / "distill.png"
    common = ["--sets", "imdb", "--data", str(data), "--work", str(work), "--json", str(out), "--timing-rows", "40"]
    monkeypatch.setattr(sys, "argv", ["distill.py", *common, "--teachers", str(teachers), "--students", "tiny",
                                      "--no-ablations", "--teacher-export", "fp32", "--plot", str(png)])
    assert bench.main() == 0
    printed = capsys.readouterr().out
    recorded = json.loads(out.read_text())["sets"]["imdb"]
    # the teacher's accuracy, read from the logits cache, is evaluate's; its test texts stay cached
    test = bench.load_set("imdb", data)[1]
    teacher = Classifier.load(result.best_dir)
    assert recorded["teacher"]["accuracy"] == pytest.approx(evaluate(teacher, test, progress=False)["accuracy"])
    assert 0.0 < recorded["teacher"]["accuracy"] < 1.0
    with monkeypatch.context() as m:
        m.setattr(Classifier, "logits", lambda *a, **k: pytest.fail("the teacher's test texts were not cached"))
        assert len(bench.teacher_logits(teacher, test.texts, work / "imdb" / "teacher_logits")) == len(test)
    export = recorded["teacher"]["export"]
    assert export["precision"] == "fp32" and Path(export["folder"]).is_dir()
    assert 0.0 <= export["accuracy"] <= 1.0 and export["docs_per_sec"] > 0
    assert "teacher's ONNX fp32 export (the labeller)" in printed
    # the student learned from the export: its run records that folder as its teacher
    (student,) = recorded["students"]
    assert json.loads((Path(student["run"]) / "classiformer.json").read_text())["extra"]["distillation"]["teachers"] == [
        export["folder"]]
    assert png.stat().st_size > 10_000

    # a student row of a run written before rows recorded their folder is found under --work
    shutil.copytree(student["run"], work / "imdb" / "legacy" / "best")
    assert bench.student_run({"student": "legacy"}, "imdb", work) == work / "imdb" / "legacy" / "best"

    before = {"teacher": recorded["teacher"]["docs_per_sec_fp32"], "export": export["docs_per_sec"],
              "student": student["docs_per_sec"]}
    monkeypatch.setattr(sys, "argv", ["distill.py", *common, "--retime", "--repeats", "1"])
    assert bench.main() == 0
    assert "docs/s timed again" in capsys.readouterr().out
    again = json.loads(out.read_text())
    retimed = again["sets"]["imdb"]
    assert again["meta"]["retimed"]["repeats"] == 1
    assert retimed["teacher"]["docs_per_sec_fp32_training_run"] == before["teacher"]
    assert retimed["teacher"]["export"]["docs_per_sec_training_run"] == before["export"]
    assert retimed["students"][0]["docs_per_sec_training_run"] == before["student"]
    assert all(r > 0 for r in (retimed["teacher"]["docs_per_sec_fp32"], retimed["students"][0]["docs_per_sec"]))

    # a run that is gone cannot be retimed: said, not skipped
    shutil.rmtree(student["run"])
    with pytest.raises(SystemExit, match="is gone"):
        bench.main()


def test_the_auto_student_of_long_texts_is_trained_alone_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On texts too long for the GRU, distill's default trains one student and records no choice
    between students; the bench's row says which one it was (IMDB's run stopped on this once)."""
    pytest.importorskip("sklearn")
    torch.set_num_threads(1)
    bench = load_bench()
    monkeypatch.setattr(bench, "default_students", lambda train: ["tiny"])  # as for 235-word reviews: one preset
    data, teachers, work = tmp_path / "data", tmp_path / "teachers", tmp_path / "work"
    write_set(data / "imdb", 120, seed=2)
    result = fit(resolve_config("tiny", train={"epochs": 2, "batch_size": 16}), make_texts(120, seed=2),
                 teachers / "imdb", progress=False)
    (teachers / "imdb" / "bench_teacher.json").write_text(json.dumps({"run": str(result.best_dir), "preset": "tiny", "train_seconds": 1.0}))
    out = tmp_path / "distill.json"
    monkeypatch.setattr(sys, "argv", ["distill.py", "--sets", "imdb", "--data", str(data), "--work", str(work),
                                      "--json", str(out), "--timing-rows", "20", "--teachers", str(teachers),
                                      "--students", "auto", "--no-ablations"])
    assert bench.main() == 0
    (row,) = json.loads(out.read_text())["sets"]["imdb"]["students"]
    assert row["student"] == "auto (tiny)" and row["preset"] == "tiny"
    assert row["student_choice"] == {"candidates": ["tiny"], "chosen": "tiny"} and row["others"] == {}


def test_a_stopped_teacher_resumes_where_it_stopped_and_counts_both_sittings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IMDB teacher trains longer than one sitting: stopped by SIGTERM, the bench resumes it
    from its last checkpoint, and it ends with the weights of a run that was never stopped."""
    import os
    import signal

    from classiformer import Classifier

    torch.set_num_threads(1)
    bench = load_bench()
    monkeypatch.setattr(bench, "TEACHER_PRESET", {"imdb": "tiny"})
    monkeypatch.setattr(bench, "TEACHER_TRAIN", {"imdb": {"epochs": 3, "batch_size": 16, "lr": 3e-3}})
    monkeypatch.setattr(bench, "TEACHER_CHECKPOINT_EVERY", 2)
    train = make_texts(96, seed=3)
    whole = bench.teacher_run("imdb", train, tmp_path / "whole")
    assert len(whole["sittings_seconds"]) == 1

    real_fit = bench.fit

    def stopped_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["on_step"] = lambda step: step == 7 and os.kill(os.getpid(), signal.SIGTERM)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(bench, "fit", stopped_fit)
    with pytest.raises(KeyboardInterrupt):
        bench.teacher_run("imdb", train, tmp_path / "parts")
    assert not (tmp_path / "parts" / "imdb" / "bench_teacher.json").exists()
    assert len(json.loads((tmp_path / "parts" / "imdb" / "bench_teacher_sittings.json").read_text())) == 1
    steps: list[int] = []

    def watched_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["on_step"] = steps.append
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(bench, "fit", watched_fit)
    parts = bench.teacher_run("imdb", train, tmp_path / "parts")
    assert steps and steps[0] > 7  # resumed after the stop, not trained again from the start
    assert len(parts["sittings_seconds"]) == 2
    assert parts["train_seconds"] == pytest.approx(sum(parts["sittings_seconds"]))
    assert bench.teacher_run("imdb", train, tmp_path / "parts") == parts  # finished: reused as recorded
    a, b = Classifier.load(whole["run"]), Classifier.load(parts["run"])
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
