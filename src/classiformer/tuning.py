"""Hyperparameter search with Optuna (Akiba et al., 2019, "Optuna: A Next-generation
Hyperparameter Optimization Framework"): ``classiformer tune``.

A study maximises a validation metric (accuracy or macro-F1 of the epoch whose checkpoint a run
keeps) with the TPE sampler (Bergstra et al., 2011) and a median or Hyperband (Li et al., 2018)
pruner, which sees each epoch's validation metric through the training loop's
:class:`~classiformer.training.Callback` and stops unpromising trials. Every trial is an ordinary
run (:func:`~classiformer.training.fit`) in ``OUT/trials/NNN/``, kept whether it completed or was
pruned. The study lives in Optuna's storage, SQLite in ``OUT/study.db`` by default: running the same
command again continues it up to ``trials`` finished trials, and several processes (or machines,
with a PostgreSQL/MySQL URL) given the same storage and study name share the work, as Optuna's own
distributed optimisation does. At the end: ``best_config.json`` (the best trial's settings,
for ``classiformer train --config``), ``summary.json``, Optuna's matplotlib plots as PNG and,
with ``refit``, the best settings retrained on training + validation data.

Search spaces (:data:`DEFAULT_SPACES`) are per model family, written as JSON-able dicts keyed by
``section.key`` of the config (``train.lr``, ``model.dropout``); a ``--space`` file overrides them
entry by entry (see :func:`load_space`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import socket
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_text
from .config import MODEL_CONFIGS, ConfigError, RunConfig, TokenizerConfig, TrainConfig, resolve_config
from .data.datasets import TextDataset, check_labels_known, stratified_split
from .training import CONFIG_FILE, DERIVED, Callback, StopSignals, TrainingInterrupted, TrainResult, fit

log = logging.getLogger(__name__)

EXTRA = "pip install 'classiformer[tune]'"
METRICS = ("accuracy", "macro_f1", "micro_f1")
PRUNERS = ("median", "hyperband", "none")
STUDY_FILE = "study.db"
BEST_CONFIG_FILE = "best_config.json"
SUMMARY_FILE = "summary.json"
TRIALS_DIR = "trials"
REFIT_DIR = "refit"
SECTIONS = ("model", "tokenizer", "train")

# Spaces: "section.key" -> a distribution ({"type": "float"|"int", "low", "high", "log"?, "step"?}
# or {"type": "categorical", "choices": [...]}). Ranges bracket what docs/benchmarks.md found to
# matter for each family; the presets' values lie inside them.
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "transformer": {
        "train.lr": {"type": "float", "low": 2e-4, "high": 1e-2, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
        "train.epochs": {"type": "int", "low": 2, "high": 8},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.4},
        "model.token_dropout": {"type": "float", "low": 0.0, "high": 0.6},  # word deletion
        "model.embed_dim": {"type": "categorical", "choices": [32, 64, 128]},  # width
        "model.num_layers": {"type": "int", "low": 1, "high": 3},  # depth
    },
    "rnn-attention": {
        "train.lr": {"type": "float", "low": 2e-4, "high": 1e-2, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
        "train.epochs": {"type": "int", "low": 2, "high": 8},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "model.embed_dim": {"type": "categorical", "choices": [32, 64, 128]},
        "model.hidden_dim": {"type": "categorical", "choices": [32, 64, 128]},
        "model.num_layers": {"type": "int", "low": 1, "high": 2},
    },
    "hf": {
        "train.lr": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
        "train.layer_decay": {"type": "float", "low": 0.6, "high": 1.0},
        "train.warmup": {"type": "float", "low": 0.0, "high": 0.2},
        "train.epochs": {"type": "int", "low": 1, "high": 4},
    },
}
DISTRIBUTION_KEYS = {
    "float": ({"type", "low", "high"}, {"log", "step"}),
    "int": ({"type", "low", "high"}, {"log", "step"}),
    "categorical": ({"type", "choices"}, set()),
}


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:
        raise ConfigError(f"classiformer tune needs the 'optuna' package, which is not installed ({e}); "
                          f"install it with: {EXTRA}") from None
    return optuna


def section_keys(family: str) -> dict[str, set[str]]:
    """The config keys a space may set, per section, for ``family`` (what fit derives left out)."""
    derived = {k.split(".", 1)[1] for k in DERIVED if k.startswith("model.")}
    return {
        "model": {f.name for f in fields(MODEL_CONFIGS[family])} - derived - {"problem_type"},
        "tokenizer": {f.name for f in fields(TokenizerConfig)},
        "train": {f.name for f in fields(TrainConfig)},
    }


def default_space(config: RunConfig) -> dict[str, dict[str, Any]]:
    """The documented default space for ``config``'s family (for a frozen pretrained encoder, whose
    layers do not train, without ``train.layer_decay``)."""
    space = copy.deepcopy(DEFAULT_SPACES[config.family])
    if config.family == "hf" and getattr(config.model, "mode", "") == "frozen":
        space.pop("train.layer_decay", None)
    return space


def _check_distribution(key: str, spec: Any, where: str) -> None:
    if not isinstance(spec, dict):  # a fixed value
        if isinstance(spec, (list, tuple)):
            raise ConfigError(f"{where}: {key}: a list is not a value; a choice among values is "
                              '{"type": "categorical", "choices": [...]}')
        return
    kind = spec.get("type")
    if kind not in DISTRIBUTION_KEYS:
        raise ConfigError(f"{where}: {key}: 'type' must be one of {sorted(DISTRIBUTION_KEYS)}, got {kind!r}")
    required, optional = DISTRIBUTION_KEYS[kind]
    missing, unknown = sorted(required - set(spec)), sorted(set(spec) - required - optional)
    if missing or unknown:
        raise ConfigError(f"{where}: {key}: a {kind} distribution takes {sorted(required)}"
                          f"{' and optionally ' + str(sorted(optional)) if optional else ''}; "
                          f"{'missing ' + str(missing) if missing else ''}{'; ' if missing and unknown else ''}"
                          f"{'unknown ' + str(unknown) if unknown else ''}")
    if kind == "categorical":
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ConfigError(f"{where}: {key}: 'choices' must be a non-empty list")
        return
    number = int if kind == "int" else (int, float)
    for bound in ("low", "high"):
        if not isinstance(spec[bound], number) or isinstance(spec[bound], bool):
            raise ConfigError(f"{where}: {key}: {bound!r} must be a{'n integer' if kind == 'int' else ' number'}, "
                              f"got {spec[bound]!r}")
    if spec["low"] > spec["high"]:
        raise ConfigError(f"{where}: {key}: low ({spec['low']}) is above high ({spec['high']})")
    if spec.get("log") and spec["low"] <= 0:
        raise ConfigError(f"{where}: {key}: a log-scaled range needs low > 0, got {spec['low']}")


def check_space(space: Mapping[str, Any], family: str, where: str = "space") -> None:
    """Fail on keys that are not ``section.key`` of ``family``'s config, as ``--config`` does, and
    on malformed distributions."""
    allowed = section_keys(family)
    valid = sorted(f"{s}.{k}" for s in SECTIONS for k in allowed[s])
    unknown = sorted(k for k in space if k.partition(".")[0] not in allowed or k.partition(".")[2] not in allowed[k.partition(".")[0]])
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {family!r} models; valid keys are {valid}")
    for key, spec in space.items():
        if spec is not None:
            _check_distribution(key, spec, where)


def load_space(path: str | Path, base: Mapping[str, Any], family: str) -> dict[str, Any]:
    """``base`` (a default space) overridden by the JSON object in ``path``: each entry replaces
    or adds that key's distribution; a plain value fixes the key for every trial; ``null`` takes
    a default dimension out (the preset's value then applies)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: search space file not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object mapping 'section.key' (e.g. \"train.lr\") to a distribution")
    check_space(data, family, str(p))
    merged = {**copy.deepcopy(dict(base)), **data}
    return {k: v for k, v in merged.items() if v is not None}


def sample(trial: Any, space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One trial's settings from ``space``, as config sections ({"train": {"lr": ...}, ...})."""
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, spec in space.items():
        section, name = key.split(".", 1)
        if not isinstance(spec, dict):
            value = spec
        elif spec["type"] == "categorical":
            value = trial.suggest_categorical(key, spec["choices"])
        elif spec["type"] == "int":
            value = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False))
        else:
            value = trial.suggest_float(key, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False))
        sections[section][name] = value
    return sections


def best_config_dict(run_dir: Path) -> dict[str, Any]:
    """A run's resolved config (``config.json``) as a ``--config`` file: preset and sections,
    without what fit derives from the data (vocabulary size, labels, ...)."""
    stored = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    derived = {k.split(".", 1)[1] for k in DERIVED if k.startswith("model.")} | {"problem_type"}
    return {
        "preset": stored["preset"],
        "model": {k: v for k, v in stored["model"].items() if k not in derived},
        "tokenizer": stored["tokenizer"],
        "train": stored["train"],
    }


class PruningCallback(Callback):
    """Reports each epoch's validation ``key`` to the Optuna ``trial`` and raises
    ``optuna.TrialPruned`` when its pruner says so (Optuna's integration callbacks, e.g.
    ``PyTorchLightningPruningCallback``, do the same)."""

    def __init__(self, trial: Any, key: str) -> None:
        self.trial, self.key = trial, key

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        if self.key not in record:
            available = sorted(k[4:] for k in record if k.startswith("val_") and k != "val_loss")
            raise ConfigError(f"--metric {self.key[4:]}: these runs report {available}")
        self.trial.report(float(record[self.key]), epoch)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"pruned after epoch {epoch}: {self.key} {record[self.key]:.4f}")


@dataclass
class TuneResult:
    out_dir: Path
    study_name: str
    storage: str
    finished: int  # trials completed or pruned, all processes together
    states: dict[str, int]  # trials per Optuna state
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run: Path | None = None
    best_config: Path | None = None
    refit: TrainResult | None = None
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path | None:
        """The run to use: the refit one when there is one, else the best trial's."""
        return self.refit.run_dir if self.refit is not None else self.best_run


def _pruner(optuna: Any, name: str, startup: int, max_epochs: int) -> Any:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be one of {list(PRUNERS)}, got {name!r}")


def _concat(a: TextDataset, b: TextDataset) -> TextDataset:
    if (a.label_sets is None) != (b.label_sets is None):
        a, b = a.as_multi_label(), b.as_multi_label()
    return TextDataset(
        a.texts + b.texts,
        None if a.labels is None or b.labels is None else a.labels + b.labels,
        source=f"{a.source} + {b.source}", columns=a.columns,
        label_sets=None if a.label_sets is None or b.label_sets is None else a.label_sets + b.label_sets,
    )


@contextlib.contextmanager
def _waiting_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, waited for (where the system has none: no lock)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _max_epochs(space: Mapping[str, Any], config: RunConfig) -> int:
    spec = space.get("train.epochs")
    if isinstance(spec, dict):
        return int(max(spec["choices"]) if spec["type"] == "categorical" else spec["high"])
    return int(spec) if spec is not None else config.train.epochs


def tune(
    train: TextDataset,
    out_dir: str | Path,
    *,
    validation: TextDataset | None = None,
    preset: str = "base",
    family: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    space: Mapping[str, Any] | None = None,
    trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str = "classiformer",
    metric: str = "accuracy",
    pruner: str = "median",
    startup_trials: int = 5,
    n_jobs: int = 1,
    refit: bool = False,
    seed: int | None = None,
    device: str | None = None,
    progress: bool = True,
    report_to: Any = None,
    tracking_uri: str | None = None,
    plots: bool = True,
) -> TuneResult:
    """Search ``space`` (None: :func:`default_space` of the resolved family) for the settings that
    maximise the validation ``metric``, starting from ``preset`` + ``config_file`` + ``overrides``;
    see the module docstring. Runs trials until the study holds ``trials`` completed or pruned
    ones (counting earlier runs of the command and other processes), or ``timeout`` seconds pass.
    ``startup_trials`` are sampled at random before TPE models the results, and are never pruned
    by the median pruner. Ctrl-C or SIGTERM stops the running trial at its next safe point (its run
    folder resumable, the trial recorded as failed, the study consistent) and raises
    :class:`~classiformer.training.TrainingInterrupted` after writing ``best_config.json``.
    ``report_to``/``tracking_uri`` report every trial as :func:`~classiformer.tracking.start_tracking`
    does (MLflow experiment: the study name)."""
    optuna = _optuna()
    from .tracking import start_tracking

    out = Path(out_dir)
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {list(METRICS)}, got {metric!r}")
    if trials < 1 or n_jobs < 1 or startup_trials < 0:
        raise ConfigError("trials and n_jobs must be positive, startup trials not negative")
    sections = {s: dict((overrides or {}).get(s) or {}) for s in SECTIONS}
    base = resolve_config(preset, config_file, family=family, **sections)
    space = dict(default_space(base) if space is None else space)
    check_space(space, base.family)
    multi = train.is_multi_label or base.train.multi_label or (validation is not None and validation.is_multi_label)
    reported = ("micro_f1", "macro_f1") if multi else ("accuracy", "macro_f1")
    if metric not in reported:
        raise ConfigError(f"--metric {metric}: {'multi' if multi else 'single'}-label runs report validation "
                          f"{' and '.join(reported)}")
    # Every trial validates on the same examples: one stratified split, made here, not per trial.
    if validation is None:
        train, validation = stratified_split(train, base.train.val_fraction, base.train.seed)
    check_labels_known(validation, train.label_names())  # before any trial, not in each
    start_tracking(report_to, tracking_uri)  # a missing backend fails before the first trial
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    sampler = optuna.samplers.TPESampler(n_startup_trials=startup_trials, seed=seed)
    # Workers started together would race to create the storage's tables and the study (SQLite
    # answers the loser with "table already exists"); one at a time, the others load it.
    with _waiting_lock(out / ".study.lock"):
        study = optuna.create_study(
            study_name=study_name, storage=storage, load_if_exists=True, direction="maximize", sampler=sampler,
            pruner=_pruner(optuna, pruner, startup_trials, _max_epochs(space, base)),
        )
    stored_metric = study.user_attrs.get("metric")
    if stored_metric not in (None, metric):
        raise ConfigError(f"study {study_name!r} in {storage} maximises validation {stored_metric}, not {metric}; "
                          "use another --study or --output")
    study.set_user_attr("metric", metric)
    key = f"val_{metric}"
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def finished() -> int:
        return len(study.get_trials(deepcopy=False, states=finished_states))

    done_before = finished()
    if done_before:
        log.info("study %r in %s: %d finished trial(s) already; continuing to %d", study_name, storage, done_before, trials)
    signals = StopSignals()

    def objective(trial: Any) -> float:
        run_dir = out / TRIALS_DIR / f"{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        sampled = sample(trial, space)
        config = resolve_config(
            preset, config_file, family=family, **{s: {**sections[s], **sampled[s]} for s in SECTIONS},
        )
        tracker = start_tracking(report_to, tracking_uri, experiment=study_name, run_name=f"{study_name}-{run_dir.name}",
                                 tags={"optuna.study": study_name, "optuna.trial": str(trial.number)})
        callbacks = [tracker, PruningCallback(trial, key)] if tracker else [PruningCallback(trial, key)]
        try:
            result = fit(config, train, run_dir, validation=validation, device=device, overwrite=True,
                         progress=progress and n_jobs == 1, callbacks=callbacks, signals=signals)
        except optuna.TrialPruned:
            tracker.close("KILLED")
            raise
        except BaseException as e:
            tracker.close("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        tracker.close("FINISHED")
        best = result.history[result.best_epoch - 1]
        if key not in best:
            raise ConfigError(f"--metric {metric}: these runs report "
                              f"{sorted(k[4:] for k in best if k.startswith('val_') and k != 'val_loss')}")
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs_trained", len(result.history))
        trial.set_user_attr("train_samples_per_sec", result.train_samples_per_sec)
        trial.set_user_attr("validation", {k: v for k, v in best.items() if k.startswith("val_")})
        return float(best[key])

    from tqdm.auto import tqdm

    remaining = trials - done_before
    bar = tqdm(total=trials, initial=min(done_before, trials), desc=f"study {study_name}", unit="trial",
               disable=not progress)

    def after_trial(study: Any, trial: Any) -> None:
        bar.n = min(finished(), trials)
        with contextlib.suppress(ValueError):  # ValueError: no completed trial yet
            bar.set_postfix(best=f"{study.best_value:.4f}", refresh=False)
        bar.refresh()
        if signals.signum is not None:  # a signal between trials: start no other
            study.stop()

    interrupted: TrainingInterrupted | None = None
    try:
        if remaining > 0:
            with signals, warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    objective, n_trials=remaining, timeout=timeout, n_jobs=n_jobs, catch=(ConfigError,),
                    callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished_states), after_trial],
                    gc_after_trial=True,
                )
                if signals.signum is not None:
                    raise TrainingInterrupted(
                        f"stopped by a signal: the study holds {finished()} finished trial(s); "
                        "run the same command again to continue it", signals.signum)
        else:
            log.info("study %r already holds %d finished trial(s); nothing to run", study_name, done_before)
    except TrainingInterrupted as e:
        interrupted = e
    finally:
        bar.close()
    result = _summarise(study, out, storage, study_name, finished_states)
    if interrupted is not None:
        raise interrupted
    if plots:
        result.plots = write_plots(study, out)
    if refit and result.best_run is not None:
        best = json.loads(Path(result.best_run / CONFIG_FILE).read_text(encoding="utf-8"))
        epochs = study.best_trial.user_attrs.get("best_epoch") or best["train"]["epochs"]
        # The best trial's epoch count, without early stopping: there is no held-out data left to stop on.
        config = resolve_config(best["preset"], out / BEST_CONFIG_FILE, train={"epochs": epochs, "patience": 0})
        log.info("refit: the best settings on %d training + %d validation examples, %d epoch(s)",
                 len(train), len(validation), epochs)
        with start_tracking(report_to, tracking_uri, experiment=study_name, run_name=f"{study_name}-refit",
                            tags={"optuna.study": study_name, "optuna.trial": "refit"}) as tracker:
            result.refit = fit(config, _concat(train, validation), out / REFIT_DIR, validation=validation,
                               device=device, overwrite=True, progress=progress, callbacks=[tracker] if tracker else [])
    return result


def _summarise(study: Any, out: Path, storage: str, study_name: str, finished_states: tuple[Any, ...]) -> TuneResult:
    """``best_config.json`` and ``summary.json`` from the study as it stands (all processes' trials)."""
    all_trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in all_trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    result = TuneResult(out_dir=out, study_name=study_name, storage=storage, states=states,
                        finished=sum(1 for t in all_trials if t.state in finished_states))
    complete = [t for t in all_trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        result.best_trial, result.best_value, result.best_params = best.number, best.value, dict(best.params)
        result.best_run = Path(best.user_attrs["run_dir"])
        result.best_config = out / BEST_CONFIG_FILE
        atomic_write_text(result.best_config, json.dumps(best_config_dict(result.best_run), indent=2) + "\n")
    summary = {
        "study": study_name, "storage": storage, "metric": study.user_attrs.get("metric"),
        "states": states, "best_trial": result.best_trial, "best_value": result.best_value,
        "best_params": result.best_params,
        "trials": [
            {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "epochs": max(t.intermediate_values, default=None), **{k: v for k, v in t.user_attrs.items()},
             "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
             if t.datetime_complete and t.datetime_start else None}
            for t in all_trials
        ],
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    return result


def write_plots(study: Any, out: Path) -> dict[str, Path]:
    """Optuna's optimisation history, parameter importances and parallel coordinates
    (``optuna.visualization.matplotlib``) as PNG; a plot its data cannot make yet (one completed
    trial, one parameter) is left out with a log line."""
    optuna = _optuna()
    from optuna.visualization import matplotlib as vis

    from .plots import plt  # pyplot on the Agg backend

    made: dict[str, Path] = {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    for name, draw, needs in (
        ("optimization_history", vis.plot_optimization_history, 1),
        ("param_importances", vis.plot_param_importances, 2),
        ("parallel_coordinate", vis.plot_parallel_coordinate, 2),
    ):
        if len(complete) < needs:
            log.info("plot %s: needs %d completed trials, the study has %d", name, needs, len(complete))
            continue
        path = out / f"{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = draw(study)
        except (ValueError, RuntimeError) as e:  # e.g. importances with a single distinct value
            log.info("plot %s: %s", name, e)
            continue
        fig: Any = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(max(10.0, fig.get_size_inches()[0]), 6.0)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")  # another worker may write it too
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        os.replace(tmp, path)
        made[name] = path
    return made


def describe_space(space: Mapping[str, Any]) -> list[str]:
    """One line per dimension, for ``--help``-like listings."""
    lines = []
    for key, spec in space.items():
        if not isinstance(spec, dict):
            lines.append(f"{key} = {spec!r}")
        elif spec["type"] == "categorical":
            lines.append(f"{key} in {spec['choices']}")
        else:
            scale = " (log)" if spec.get("log") else ""
            lines.append(f"{key}: {spec['type']} {spec['low']} .. {spec['high']}{scale}")
    return lines


