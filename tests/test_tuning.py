"""``classiformer tune``: an Optuna study over ordinary runs, read back with Optuna's own API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.tuning import DEFAULT_SPACES, load_space, tune

from .conftest import make_texts
from .test_cli import write_split
from .test_tracking import empty_store, store  # noqa: F401  (fixtures)

optuna = pytest.importorskip("optuna")

# 216 training texts (240 less a stratified tenth for validation) in batches of 8: 27 steps an epoch.
TINY = ["--preset", "tiny", "--vocab-size", "60", "--max-length", "12", "--batch-size", "8", "--lr", "0.03",
        "--patience", "0"]
FAST = {"train.epochs": 2, "train.batch_size": 8, "train.lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.3}, "tokenizer.vocab_size": 60,
        "tokenizer.max_length": 12, "train.patience": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_split(root / "train.csv", 240, 1)
    write_split(root / "test.csv", 60, 2)
    (root / "space.json").write_text(json.dumps(FAST))
    return root


def tune_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["tune", "--train", str(data / "train.csv"), "--preset", "tiny", "--space", str(data / "space.json"),
            "--threads", "1", "--no-progress", "--no-plots", "-o", str(out), *extra]


def load(out: Path, name: str = "classiformer"):  # type: ignore[no-untyped-def]
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_pruned_trials_the_best_config_and_train_with_it(data: Path, tmp_path: Path, store: str) -> None:  # noqa: F811
    """A good trial, then a hopeless one (lr 1e-6) that the median pruner stops after its first
    epoch; best_config.json retrains the best trial exactly with `train --config`."""
    from mlflow import MlflowClient

    out = tmp_path / "study"
    out.mkdir()
    queued = optuna.create_study(study_name="classiformer", storage=f"sqlite:///{out / 'study.db'}", direction="maximize")
    queued.enqueue_trial({"train.lr": 0.03})
    queued.enqueue_trial({"train.lr": 1e-6})
    space = {**FAST, "train.epochs": 3, "model.dropout": 0.1, "train.lr": {"type": "categorical", "choices": [0.03, 1e-6]}}
    train = make_texts(240, seed=1)
    result = tune(train, out, preset="tiny", space=space, trials=2, startup_trials=1, progress=False,
                  report_to="mlflow", tracking_uri=store)
    study = load(out)
    good, bad = study.trials
    assert good.state.name == "COMPLETE" and good.params == {"train.lr": 0.03}
    assert bad.state.name == "PRUNED" and list(bad.intermediate_values) == [1]  # stopped after epoch 1
    assert bad.intermediate_values[1] < good.intermediate_values[1]
    assert result.best_trial == 0 and result.best_value == good.value
    # Each trial is an ordinary run, the pruned one too (its last/ resumable, one epoch logged).
    assert (out / "trials" / "000" / "best").is_dir() and (out / "trials" / "001" / "last").is_dir()
    assert len((out / "trials" / "001" / "metrics.jsonl").read_text().splitlines()) == 1
    # One MLflow run per trial, in an experiment named after the study; the pruned one KILLED.
    client = MlflowClient(store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "classiformer"]
    runs = {r.data.tags["optuna.trial"]: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert runs == {"0": "FINISHED", "1": "KILLED"}

    best = json.loads((out / "best_config.json").read_text())
    assert best["train"]["lr"] == 0.03 and best["train"]["epochs"] == 3 and "vocab_size" not in best["model"]
    assert main(["train", "--train", str(data / "train.csv"), "--config", str(out / "best_config.json"),
                 "--threads", "1", "--no-progress", "-o", str(tmp_path / "again")]) == 0
    again = [json.loads(line) for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    trial = [json.loads(line) for line in (out / "trials" / "000" / "metrics.jsonl").read_text().splitlines()]
    strip = ("train_samples_per_sec",)
    assert [{k: v for k, v in h.items() if k not in strip} for h in again] == [
        {k: v for k, v in h.items() if k not in strip} for h in trial
    ]


def test_rerun_continues_the_study_and_writes_the_outputs(data: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    assert main(tune_args(data, out, "--trials", "2", "--test", str(data / "test.csv"))) == 0
    assert [t.number for t in load(out).trials] == [0, 1]
    assert (out / "trials" / f"{load(out).best_trial.number:03d}" / "metrics.json").exists()  # --test: the best
    assert main([*tune_args(data, out, "--trials", "3"), "--pruner", "none"]) == 0
    study = load(out)
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["000", "001", "002"]
    capsys.readouterr()
    assert main(tune_args(data, out, "--trials", "3")) == 0  # nothing left to run
    assert len(load(out).trials) == 3
    assert "3 finished trial(s) (3 complete)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_trial"] == study.best_trial.number and len(summary["trials"]) == 3
    best_run = out / "trials" / f"{study.best_trial.number:03d}"
    assert summary["trials"][study.best_trial.number]["run_dir"] == str(best_run.resolve())


def test_plots_and_refit(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = [a for a in tune_args(data, out, "--trials", "3", "--refit") if a != "--no-plots"]
    assert main(args) == 0
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    refit = json.loads((out / "refit" / "config.json").read_text())
    best = json.loads((out / "best_config.json").read_text())
    assert refit["train"]["lr"] == best["train"]["lr"] and refit["train"]["patience"] == 0
    history = (out / "refit" / "metrics.jsonl").read_text().splitlines()
    trial = load(out).best_trial
    assert len(history) == trial.user_attrs["best_epoch"]


def test_two_processes_share_one_sqlite_study(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    args = [sys.executable, "-m", "classiformer", *tune_args(data, out, "--trials", "6", "--pruner", "none")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    trials = load(out).trials
    assert [t.state.name for t in trials].count("COMPLETE") >= 6
    assert all(t.state.name == "COMPLETE" for t in trials)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"{n:03d}" for n in numbers]
    workers = {t.user_attrs["worker"] for t in trials}
    assert workers == {f"{os.uname().nodename}:{p.pid}" for p in procs}  # both did some of the work


def test_ctrl_c_leaves_a_consistent_study_that_a_rerun_continues(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({**FAST, "train.epochs": 6}))
    args = [*tune_args(data, out, "--trials", "3"), "--space", str(space), "--pruner", "none"]
    proc = subprocess.Popen([sys.executable, "-m", "classiformer", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    history = out / "trials" / "001" / "metrics.jsonl"  # the second trial has trained an epoch
    deadline = time.monotonic() + 300
    while not history.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "run the same command again" in err or "--resume" in err, err
    states = [t.state.name for t in load(out).trials]
    assert "RUNNING" not in states and states[0] == "COMPLETE", states
    assert (out / "best_config.json").exists()
    assert main(args) == 0
    states = [t.state.name for t in load(out).trials]
    assert states.count("COMPLETE") == 3 and "RUNNING" not in states


@pytest.mark.parametrize(("space", "message"), [
    ({"train.lrr": 0.1}, "unknown key(s) ['train.lrr']"),
    ({"model.token_dropout": 0.1}, "unknown key(s) ['model.token_dropout'] for 'rnn-attention' models"),
    ({"lr": 0.1}, "unknown key(s) ['lr']"),
    ({"train.lr": {"type": "float", "low": 0.1}}, "train.lr: a float distribution takes ['high', 'low', 'type']"),
    ({"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log-scaled range needs low > 0"),
    ({"train.batch_size": {"type": "uniform"}}, "'type' must be one of"),
    ({"train.batch_size": [16, 32]}, "a list is not a value"),
])
def test_bad_space_files_fail_naming_file_and_key(data: Path, tmp_path: Path, space: dict, message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    args = ["tune", "--train", str(data / "train.csv"), "--model", "rnn-attention", "--space", str(path),
            "--no-progress", "-o", str(tmp_path / "out")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(path) in err and message in err, err
    assert not (tmp_path / "out").exists()


def test_space_file_overrides_fixes_and_drops_default_entries(tmp_path: Path) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"train.epochs": 3, "model.num_layers": None,
                                "train.batch_size": {"type": "categorical", "choices": [16]}}))
    space = load_space(path, DEFAULT_SPACES["transformer"], "transformer")
    assert space["train.epochs"] == 3 and "model.num_layers" not in space
    assert space["train.batch_size"] == {"type": "categorical", "choices": [16]}
    assert space["train.lr"] == DEFAULT_SPACES["transformer"]["train.lr"]
    path.write_text("{\n  \"train.lr\": 0.1,\n}")
    with pytest.raises(ConfigError, match=r"space.json:3: invalid JSON"):
        load_space(path, {}, "transformer")


def test_print_space_shows_the_family_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--model", "minilm", "--print-space", "-o", "unused"]) == 0
    assert json.loads(capsys.readouterr().out) == DEFAULT_SPACES["hf"]


def test_metric_must_be_one_the_runs_report(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*tune_args(data, tmp_path / "out", "--trials", "1"), "--metric", "micro_f1"]) == 1
    assert "single-label runs report validation accuracy and macro_f1" in capsys.readouterr().err


def test_missing_optuna_names_the_extra(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an uninstalled package looks like to import
    assert main(tune_args(data, tmp_path / "out", "--trials", "1")) == 1
    assert "pip install 'classiformer[tune]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
