"""Distributed training on two (and three) real gloo processes started by torchrun, as users start
them: it learns as one process does, its gradients are the single-process full-batch gradients,
rank 0 alone writes the run folder, a killed rank fails the job quickly by name with the last good
checkpoint intact, and a run continues on another number of processes from its data position."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from classiformer import training
from classiformer.checkpoint import load_checkpoint, load_trainer_state
from classiformer.config import resolve_config
from classiformer.data.batching import batch_of, bucketed_batches
from classiformer.losses import Loss
from classiformer.training import Trainer, fit

from .conftest import make_texts, write_jsonl
from .ddp_worker import GRAD_EXAMPLES, INTERRUPT_AT, frozen_model, tiny_model
from .test_pretrained import tiny_bert  # noqa: F401 (a fixture)

WORKER = Path(__file__).parent / "ddp_worker.py"
TOY = dict(train=300, val=90, epochs=8, lr="0.02")


def torchrun(nproc: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``torchrun --nproc-per-node 2 -m classiformer train`` on the toy task, 16 examples per process."""
    folder = tmp_path_factory.mktemp("ddp")
    write_jsonl(folder / "train.jsonl", TOY["train"], seed=1)
    write_jsonl(folder / "val.jsonl", TOY["val"], seed=2)
    write_jsonl(folder / "test.jsonl", TOY["val"], seed=3)
    torchrun(2, "-m", "classiformer", "train", "--train", str(folder / "train.jsonl"), "--validation",
             str(folder / "val.jsonl"), "--test", str(folder / "test.jsonl"), "--preset", "tiny", "--epochs",
             str(TOY["epochs"]), "--batch-size", "16", "--lr", TOY["lr"], "--output", str(folder / "run"), "--no-progress")
    return folder / "run"


def test_two_processes_learn_the_toy_task_as_one_does(two_process_run: Path, tmp_path: Path) -> None:
    history = [json.loads(line) for line in (two_process_run / "metrics.jsonl").read_text().splitlines()]
    assert {h["world_size"] for h in history} == {2} and {h["effective_batch_size"] for h in history} == {32}
    config = resolve_config("tiny", train={"batch_size": 32, "epochs": TOY["epochs"], "lr": float(TOY["lr"])})
    one = fit(config, make_texts(TOY["train"], seed=1), tmp_path / "one", validation=make_texts(TOY["val"], seed=2),
              progress=False)
    two = max(h["val_accuracy"] for h in history)
    assert one.best_val_accuracy >= 0.95
    assert abs(two - one.best_val_accuracy) <= 0.03, (two, one.best_val_accuracy)
    # The same number of optimizer steps per epoch as one process with the effective batch.
    assert [h["step"] for h in history] == [h["step"] for h in one.history][: len(history)]
    # Every example is counted once per epoch, whichever rank took it (samples/s over all ranks).
    progress = load_trainer_state(two_process_run / "last")["progress"]
    assert progress["samples_seen"] == len(history) * TOY["train"]


def test_rank_0_alone_writes_one_checkpoint_and_one_metrics_file(two_process_run: Path) -> None:
    names = sorted(p.name for p in two_process_run.iterdir())
    assert names == [".lock", "best", "config.json", "confusion_matrix.png", "last", "metrics.json", "metrics.jsonl",
                     "reliability.png", "training_curves.png", "validation.jsonl"], names
    history = (two_process_run / "metrics.jsonl").read_text().splitlines()
    assert len(history) == len({json.loads(line)["epoch"] for line in history})  # no epoch written twice
    model, _, meta = load_checkpoint(two_process_run / "best")
    assert meta.labels == ["money", "sports", "tech"]
    assert not any(k.startswith("module.") for k in model.state_dict())  # the model itself, not DDP's wrapper


def test_the_test_set_report_of_two_processes_is_one_process_report(two_process_run: Path) -> None:
    from classiformer.data import read_dataset
    from classiformer.evaluate import evaluate
    from classiformer.predict import Classifier

    got = json.loads((two_process_run / "metrics.json").read_text())
    want = evaluate(Classifier.load(two_process_run / "best"), read_dataset(two_process_run.parent / "test.jsonl"),
                    progress=False)
    for key in ("accuracy", "macro_f1", "confusion_matrix", "nll", "ece", "nll_uncalibrated"):
        assert got[key] == want[key], key


def test_gradients_equal_single_process_full_batch_gradients(tmp_path: Path) -> None:
    # Two ranks take batches of 7 and 6 examples (unequal: a plain average of the two means would
    # be off); the step's gradient must be that of the mean loss over all 13.
    torchrun(2, str(WORKER), "grads", str(tmp_path))
    got = torch.load(tmp_path / "grads.pt")
    assert got["steps"] == 1
    model, tokenizer, _, _, data = tiny_model()
    batch = batch_of(data, torch.arange(GRAD_EXAMPLES).numpy(), tokenizer.pad_id)
    labels = batch.pop("labels")
    model.train()
    Loss()(model(**batch).logits, labels).backward()
    want = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got["grads"].keys() == want.keys()
    for name, g in want.items():
        torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_validation_and_frozen_features_computed_in_shares_equal_one_process(tmp_path: Path, tiny_bert: Path) -> None:  # noqa: F811
    torchrun(2, str(WORKER), "shares", str(tmp_path), str(tiny_bert))
    got = torch.load(tmp_path / "shares.pt")
    model, tokenizer, meta, cfg, data = tiny_model()
    cfg.eval_batch_size = 3
    assert got["metrics"] == Trainer(model, tokenizer, meta, cfg, tmp_path / "one", torch.device("cpu"),
                                     progress=False).validate(data)  # exactly: the same batches, gathered
    fmodel, ftok, fmeta, fcfg, fdata = frozen_model(tiny_bert)
    trainer = Trainer(fmodel, ftok, fmeta, fcfg, tmp_path / "frozen", torch.device("cpu"), progress=False)
    fmodel.prepare_feature_cache("train", len(fdata), None)
    trainer._fill_feature_cache(fdata, "train", torch.get_rng_state())
    cache = fmodel.feature_cache("train")
    assert bool((got["lens"] >= 0).all())  # every row filled, half of them by the other rank
    assert torch.equal(got["lens"], cache.lens) and torch.equal(got["feats"], cache.feats)


def _recording(taken: list[list[int]], collate: Any, data: Any, idx: Any, *args: Any) -> Any:
    taken.append(sorted(idx.tolist()))
    return collate(data, idx, *args)


def test_test_set_evaluated_in_shares_equals_one_process(tmp_path: Path) -> None:
    """``evaluate(..., shared=True)`` on 2 ranks: each computes its share of the batches (39 texts
    in batches of 4: 10 batches, 5 each) and gets the report one process computes alone."""
    from classiformer.checkpoint import save_checkpoint
    from classiformer.evaluate import evaluate
    from classiformer.predict import Classifier

    model, tokenizer, meta, _, _ = tiny_model()
    save_checkpoint(tmp_path / "model", model, tokenizer, meta)
    torchrun(2, str(WORKER), "test_set", str(tmp_path))
    got = json.loads((tmp_path / "test_set.json").read_text())
    assert [sum(r) for r in got["rows"]] == [20, 19] or [sum(r) for r in got["rows"]] == [19, 20], got["rows"]
    want = evaluate(Classifier.load(tmp_path / "model", batch_size=4), make_texts(GRAD_EXAMPLES * 3, seed=7),
                    progress=False)
    want.pop("eval_docs_per_sec")
    assert got["report"] == json.loads(json.dumps(want)) and want["accuracy"] not in (0.0, 1.0)


def test_a_run_resumes_on_one_and_on_three_processes_from_its_data_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torchrun(2, str(WORKER), "interrupt", str(tmp_path))
    stopped = load_trainer_state(tmp_path / "run" / "last")["progress"]
    # 200 examples in batches of 16: 13 batches an epoch; 2 ranks take 2 per step.
    assert (stopped["epoch"], stopped["step"], stopped["batches_done"], stopped["world_size"]) == (0, INTERRUPT_AT, 6, 2)
    # The epoch's batch order was made for 2 processes (each step's 2 batches of similar lengths).
    assert stopped["epoch_group"] == 2
    for world, steps in ((1, INTERRUPT_AT + 7 + 13), (3, INTERRUPT_AT + 3 + 5)):
        folder = tmp_path / f"on{world}"
        shutil.copytree(tmp_path / "run", folder / "run")
        if world == 1:
            taken: list[list[int]] = []
            monkeypatch.setattr(training, "batch_of", partial(_recording, taken, training.batch_of))
            fit(None, make_texts(200, seed=1), folder / "run", validation=make_texts(30, seed=2), resume=True,
                progress=False)
            # The rest of the stopped epoch in the order the 2 processes had: the 7 batches they had
            # not taken yet (the examples of the 6 taken are not taken again); the next epoch is
            # ordered for 1 process.
            _, tokenizer, _ = load_checkpoint(folder / "run" / "last")
            lengths = training.encode(tokenizer, make_texts(200, seed=1), None).lengths
            seed = training.stored_config(folder / "run")["train"]["seed"]
            want = bucketed_batches(lengths, 16, seed, 0, group=2)[6:] + bucketed_batches(lengths, 16, seed, 1)
            assert taken == [sorted(b.tolist()) for b in want]
            done = load_trainer_state(folder / "run" / "last")["progress"]
        else:
            torchrun(world, str(WORKER), "resume", str(folder))
            done = json.loads((folder / "resumed.json").read_text())
        # Finished, with each of the 2 x 200 examples of the two epochs counted once: the batches
        # taken before the stop were not taken again, and none were skipped.
        assert (done["epoch"], done["step"], done["world_size"]) == (2, steps, world), world
        assert done["samples_seen"] == 2 * 200, world


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e.split(b"=", 1)[1]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def test_a_killed_rank_fails_the_job_quickly_naming_it(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", 3000, seed=1)
    cmd = [sys.executable, "-m", "classiformer", "train", "--train", str(tmp_path / "train.jsonl"), "--preset", "tiny",
           "--epochs", "200", "--batch-size", "8", "--checkpoint-every", "5", "--output", str(tmp_path / "run"),
           "--no-progress", "--nproc", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CLASSIFORMER_DIST_TIMEOUT": "60"})
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "run" / "last").exists():  # a good checkpoint first
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        victim = next(p for p in _children(proc.pid) if _rank_of(p) == 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert took < 60, took  # not the collective timeout, let alone a hang
    assert "error: distributed training failed: rank 1" in err and "SIGKILL" in err, err[-3000:]
    state = load_trainer_state(tmp_path / "run" / "last")  # the last good checkpoint loads
    assert state["progress"]["step"] % 5 == 0 or state["progress"]["batches_done"] == 0
    load_checkpoint(tmp_path / "run" / "last")


def test_sigterm_stops_every_rank_at_the_same_step_with_last_saved(tmp_path: Path) -> None:
    # Checkpoints at epoch ends only: the launcher gives its processes 30 s to exit after passing the
    # signal on, and a checkpoint every few steps on a busy disk (fsync) can take that long.
    write_jsonl(tmp_path / "train.jsonl", 1500, seed=1)
    cmd = [sys.executable, "-m", "classiformer", "train", "--train", str(tmp_path / "train.jsonl"), "--preset", "tiny",
           "--epochs", "200", "--batch-size", "8", "--output", str(tmp_path / "run"), "--no-progress", "--nproc", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "run" / "last").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # as a scheduler stops a job: the launcher passes it on
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    progress = load_trainer_state(tmp_path / "run" / "last")["progress"]
    # Both ranks stopped at the step rank 0 saved (each says so), not one step apart.
    said = f"stopped by SIGTERM at epoch {progress['epoch'] + 1}, step {progress['step']}:"
    assert err.count(said) >= 2, err[-3000:]  # rank 0's warning and each rank's "interrupted" line
    assert err.count(f"interrupted: {said}") == 2, err[-3000:]
    # 1,350 training rows in batches of 8: 169 batches, 85 steps of 2 batches an epoch (the last with padding).
    assert progress["batches_done"] == min(169, 2 * (progress["step"] - 85 * progress["epoch"]))
    assert progress["world_size"] == 2
    assert "interrupted: stopped by SIGTERM: the processes stopped at their next step" in err


def test_two_processes_train_on_a_stream(tmp_path: Path) -> None:
    """``--streaming`` under torchrun: each rank reads its own shards of the stream (2 processes x
    1 loader worker), the run learns, rank 0 alone writes, and ``last/`` keeps both ranks' shard
    positions (the data position a resume needs)."""
    from .test_cli import write_split

    train, test = write_split(tmp_path / "train.csv", 400, seed=1), write_split(tmp_path / "test.csv", 90, seed=2)
    out = tmp_path / "run"
    torchrun(2, "-m", "classiformer", "train", "--train", str(train), "--test", str(test), "--output", str(out),
             "--streaming", "--max-steps", "60", "--eval-every", "30", "--preset", "tiny", "--vocab-size", "60",
             "--max-length", "12", "--batch-size", "8", "--lr", "0.03", "--patience", "0", "--threads", "1",
             "--no-progress", "--shuffle-window", "64", "--loader-workers", "1")
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.9
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [30, 60]
    assert {h["world_size"] for h in history} == {2} and {h["effective_batch_size"] for h in history} == {16}
    state = load_trainer_state(out / "last")
    stream = json.loads(state["stream"])
    assert stream["n_shards"] == 2 and sorted(stream["shards"]) == ["0", "1"]  # rank 0's and rank 1's
    # Every rank's batches counted once: 60 steps of 2 batches of at most 8 (a window's last is smaller).
    assert 0.9 * 60 * 16 < state["progress"]["samples_seen"] <= 60 * 16
