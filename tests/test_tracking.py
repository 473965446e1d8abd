"""``--report-to tensorboard|mlflow``: what a run logs, read back with the libraries' own readers
(TensorBoard's EventAccumulator, mlflow.MlflowClient), never by reading their files ourselves."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from classiformer import Classifier, fit
from classiformer.cli import main
from classiformer.tracking import TENSORBOARD_DIR, TrackingError, parse_report_to, start_tracking
from classiformer.training import LOG_EVERY

from .conftest import make_texts
from .test_cli import write_split

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

# 216 training texts (240 less the validation tenth) in batches of 8: 27 steps an epoch, logs at 20 and 40.
TINY = ["--preset", "tiny", "--vocab-size", "60", "--max-length", "12", "--batch-size", "8", "--lr", "0.03",
        "--patience", "0", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_split(root / "train.csv", 240, 1)
    write_split(root / "test.csv", 60, 2)
    return root


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables made (its migrations take seconds); tests copy it."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    # MLflow puts artifacts in ./mlruns of the working directory unless the experiment says otherwise.
    MlflowClient(f"sqlite:///{path}").create_experiment("classiformer", artifact_location=(path.parent / "artifacts").as_uri())
    return path


@pytest.fixture
def store(empty_store: Path, tmp_path: Path) -> str:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--train", str(data / "train.csv"), "--output", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def tracked(data: Path, tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> tuple[Path, str]:
    """One run reported to both backends (comma-separated), with a test set."""
    root = tmp_path_factory.mktemp("tracked")
    shutil.copy(empty_store, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    code = train(data, root / "run", "--epochs", "2", "--test", str(data / "test.csv"),
                 "--report-to", "tensorboard,mlflow", "--tracking-uri", uri)
    assert code == 0
    return root / "run", uri


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_events_hold_losses_validation_test_and_hparams(tracked: tuple[Path, str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run, _ = tracked
    events = EventAccumulator(str(run / TENSORBOARD_DIR), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
    assert [e.step for e in scalars["train/loss"]] == [LOG_EVERY, 2 * LOG_EVERY]
    assert all(0 < e.value < 5 for e in scalars["train/loss"])
    assert [e.step for e in scalars["train/lr"]] == [LOG_EVERY, 2 * LOG_EVERY]
    hist = history(run)
    for key in ("accuracy", "loss", "macro_f1"):
        got = [(e.step, e.value) for e in scalars[f"validation/{key}"]]
        assert got == [(h["step"], pytest.approx(h[f"val_{key}"])) for h in hist], key
    metrics = json.loads((run / "metrics.json").read_text())
    assert scalars["test/accuracy"][0].value == pytest.approx(metrics["accuracy"])
    assert scalars["test/macro_f1"][0].value == pytest.approx(metrics["macro_f1"])
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["train.lr"].number_value == pytest.approx(0.03)
    assert hparams["preset"].string_value == "tiny"
    assert hparams["model.vocab_size"].number_value == json.loads((run / "config.json").read_text())["model"]["vocab_size"]


def test_mlflow_run_holds_params_metrics_artifacts_and_a_loadable_model(tracked: tuple[Path, str], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    run, uri = tracked
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "classiformer"]
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert found.data.tags["classiformer.run_dir"] == str(run.resolve())
    config = json.loads((run / "config.json").read_text())
    assert found.data.params["train.lr"] == "0.03" and found.data.params["preset"] == "tiny"
    assert found.data.params["model.embed_dim"] == str(config["model"]["embed_dim"])
    rid = found.info.run_id
    assert [m.step for m in client.get_metric_history(rid, "train_loss")] == [LOG_EVERY, 2 * LOG_EVERY]
    hist = history(run)
    got = [(m.step, m.value) for m in client.get_metric_history(rid, "val_accuracy")]
    assert got == [(h["step"], pytest.approx(h["val_accuracy"])) for h in hist]
    metrics = json.loads((run / "metrics.json").read_text())
    assert found.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    files = {a.path for a in client.list_artifacts(rid)}
    assert {"metrics.json", "confusion_matrix.png", "training_curves.png", "reliability.png", "model"} <= files
    model_files = {a.path for a in client.list_artifacts(rid, "model")}
    assert "model/best" in model_files and "model/config.json" in model_files
    assert "model/last" not in model_files and f"model/{TENSORBOARD_DIR}" not in model_files
    local = client.download_artifacts(rid, "model", str(tmp_path))
    texts = make_texts(20, seed=9).texts
    assert Classifier.load(local).predict(texts) == Classifier.load(run).predict(texts)


def test_resume_continues_the_same_mlflow_run(data: Path, tmp_path: Path, store: str) -> None:
    from mlflow import MlflowClient

    assert train(data, tmp_path / "run", "--epochs", "1", "--report-to", "mlflow", "--tracking-uri", store) == 0
    assert train(data, tmp_path / "run", "--epochs", "2", "--resume", "--report-to", "mlflow",
                 "--tracking-uri", store) == 0
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_accuracy")]
    assert steps == [h["step"] for h in history(tmp_path / "run")] and len(steps) == 2
    assert runs[0].data.params["train.epochs"] == "1"  # MLflow params are immutable: the first value stays


def test_interrupted_run_ends_killed_in_mlflow(tmp_path: Path, store: str) -> None:
    from mlflow import MlflowClient

    from .test_training import tiny_config

    def interrupt(step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), start_tracking("mlflow", store) as tracker:
        fit(tiny_config(), make_texts(120, seed=3), tmp_path / "run", progress=False, on_step=interrupt,
            callbacks=[tracker])
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(("backend", "module"), [("mlflow", "mlflow"), ("tensorboard", "torch.utils.tensorboard")])
def test_missing_backend_names_the_extra_before_training(
    backend: str, module: str, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    assert train(data, tmp_path / "run", "--epochs", "1", "--report-to", backend) == 1
    err = capsys.readouterr().err
    assert f"--report-to {backend} needs" in err and "pip install 'classiformer[tracking]'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("given", "expected"), [
    (None, []), (["none"], []), (["tensorboard"], ["tensorboard"]), (["mlflow,tensorboard"], ["mlflow", "tensorboard"]),
    (["tensorboard", "mlflow", "tensorboard"], ["tensorboard", "mlflow"]), ("TensorBoard, mlflow", ["tensorboard", "mlflow"]),
])
def test_report_to_values(given: object, expected: list[str]) -> None:
    assert parse_report_to(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "message"), [
    (["wandb"], "unknown tracking backend 'wandb'"), (["none,mlflow"], "'none' cannot be combined"),
])
def test_bad_report_to_values(given: list[str], message: str) -> None:
    with pytest.raises(TrackingError, match=message):
        parse_report_to(given)


def test_tracking_uri_needs_mlflow() -> None:
    with pytest.raises(TrackingError, match="--tracking-uri is MLflow's"):
        start_tracking(["tensorboard"], "sqlite:///x.db")


def test_distilling_into_two_students_tracks_each_and_logs_the_test_set_to_the_kept_one(
    data: Path, tmp_path: Path, store: str
) -> None:
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train(data, tmp_path / "teacher") == 0
    run = tmp_path / "student"
    args = ["distill", str(tmp_path / "teacher"), "--train", str(data / "train.csv"), "--test", str(data / "test.csv"),
            "--epochs", "2", "--batch-size", "8", "--embed-dim", "8", "--hidden-dim", "6", "--no-progress",
            "--report-to", "tensorboard,mlflow", "--tracking-uri", store, "-o", str(run)]
    assert main(args) == 0
    choice = Classifier.load(run).meta.extra["distillation"]["student_choice"]
    kept, other = choice["chosen"], next(n for n in choice["candidates"] if n != choice["chosen"])
    client = MlflowClient(store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "classiformer"]
    runs = {r.data.tags["classiformer.run_dir"].rsplit("/", 1)[-1]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {kept, other} and all(r.info.status == "FINISHED" for r in runs.values())
    metrics = json.loads((run / "metrics.json").read_text())
    assert runs[kept].data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert "test_accuracy" not in runs[other].data.metrics
    assert runs[kept].data.params["family"] == Classifier.load(run).meta.family
    for folder, tested in ((run, True), (run / "students" / other, False)):
        events = EventAccumulator(str(folder / TENSORBOARD_DIR), size_guidance={"scalars": 0})
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert "validation/loss" in tags and ("test/accuracy" in tags) == tested
