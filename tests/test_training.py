"""Training, checkpoints and prediction end to end on toy data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, evaluate, fit, resolve_config, write_evaluation
from classiformer.checkpoint import CheckpointError, atomic_dir, load_checkpoint, read_meta
from classiformer.config import ConfigError

from .conftest import make_texts


def tiny_config(**train):
    return resolve_config(
        "tiny",
        model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.1},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": 4, "batch_size": 16, "lr": 3e-2, "patience": 0, **train},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object]:
    run = tmp_path_factory.mktemp("run")
    result = fit(tiny_config(epochs=12), make_texts(240, seed=1), run, progress=False)
    return run, result


def test_it_learns_and_evaluates(trained) -> None:
    run, result = trained
    assert result.best_val_accuracy > 0.9
    clf = Classifier.load(run)
    report = evaluate(clf, make_texts(60, seed=2), progress=False)
    assert report["accuracy"] > 0.9
    assert sum(map(sum, report["confusion_matrix"])) == 60
    paths = write_evaluation(report, run)
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["accuracy"] == report["accuracy"] and metrics["train_samples_per_sec"] > 0
    for png in ("confusion_matrix", "training_curves"):
        assert paths[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 13))


def test_fp16_training_scales_the_loss_and_learns(tmp_path: Path, trained) -> None:
    """float16 autocast with a loss scaler (the path for GPUs without bf16; CPUs run it too)."""
    result = fit(tiny_config(epochs=12, fp16=True), make_texts(240, seed=1), tmp_path / "run", progress=False)
    assert result.best_val_accuracy > 0.9
    scaler = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)["scaler"]
    assert scaler["scale"] > 1  # the loss was scaled up (65536 at the start, halved on overflow)
    fp32 = Classifier.load(trained[0])
    texts = ["goal match team", "chip software robot", "stock market bank"]
    assert Classifier.load(trained[0], fp16=True).predict(texts) == fp32.predict(texts) == ["sports", "tech", "money"]
    with pytest.raises(ConfigError, match="bf16 and fp16"):
        tiny_config(bf16=True, fp16=True)


def test_predict_api(trained) -> None:
    run, _ = trained
    clf = Classifier.load(run)
    texts = ["goal match team", "chip software robot", "stock market bank"]
    assert clf.predict(texts) == ["sports", "tech", "money"]
    proba = clf.predict_proba(texts)
    assert proba.shape == (3, 3) and np.allclose(proba.sum(1), 1)
    # Batch order and batch size never change a prediction.
    many = texts * 7 + ["the a of"]
    small = Classifier.load(run, batch_size=2)
    np.testing.assert_allclose(clf.predict_proba(many), small.predict_proba(many), rtol=1e-5, atol=1e-6)
    assert clf.predict_proba([]).shape == (0, 3)
    with pytest.raises(TypeError):
        clf.predict([3])  # type: ignore[list-item]


def test_save_load_gives_identical_logits(trained, tmp_path: Path) -> None:
    run, _ = trained
    model, tok, meta = load_checkpoint(run / "best")
    ids = tok.encode(["goal team today", "bank profit"])
    from classiformer.data import collate

    b = collate(ids, tok.pad_id)
    with torch.inference_mode():
        before = model(b["input_ids"], b["attention_mask"]).logits
    from classiformer.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "copy", model, tok, meta)
    model2, tok2, _ = load_checkpoint(tmp_path / "copy")
    with torch.inference_mode():
        after = model2(b["input_ids"], b["attention_mask"]).logits
    assert torch.equal(before, after)
    assert [a.tolist() for a in tok2.encode(["goal team today", "bank profit"])] == [a.tolist() for a in ids]
    meta_json = json.loads((run / "best" / "classiformer.json").read_text())
    assert meta_json["format_version"] == 1 and meta_json["labels"] == ["money", "sports", "tech"]
    assert not list((run / "best").glob("*.pt")) and not list((run / "best").glob("*.pkl"))


def test_ngram_branch_trains_and_round_trips(tmp_path: Path) -> None:
    cfg = tiny_config(epochs=3)
    cfg.model.ngram_buckets = 97
    result = fit(cfg, make_texts(120, seed=1), tmp_path / "run", progress=False)
    model, tok, meta = load_checkpoint(result.best_dir)
    assert model.ngrams is not None and float(model.ngrams.pairs.weight.detach().abs().sum()) > 0  # it trained
    from classiformer.data import collate

    b = collate(tok.encode(["goal team today", "bank profit"]), tok.pad_id)
    clf = Classifier.load(result.best_dir)
    with torch.inference_mode():
        logits = model(b["input_ids"], b["attention_mask"]).logits.numpy()
    np.testing.assert_allclose(clf.logits(["goal team today", "bank profit"]), logits, rtol=1e-6, atol=1e-6)


def test_idf_weights_come_from_the_training_texts_and_stay_with_the_checkpoint(tmp_path: Path) -> None:
    from classiformer.config import TransformerConfig
    from classiformer.models.transformer import NgramBranch

    # by hand: 2 texts; id 2 in both, 3 and 4 in one (4 twice), 5 in none
    branch = NgramBranch(TransformerConfig(vocab_size=6, num_labels=2, ngram_buckets=7, ngram_idf=True, ngram_pairs=False))
    branch.fit_idf([np.array([2, 3]), np.array([2, 4, 4])])
    want = [0.0, 0.0, 1.0, np.log(3 / 2) + 1, np.log(3 / 2) + 1, 0.0]  # ids in no text weigh nothing
    np.testing.assert_allclose(branch.idf.numpy(), want, rtol=1e-6)  # type: ignore[union-attr]
    with torch.no_grad():
        branch.words.weight.copy_(torch.arange(12, dtype=torch.float32).view(6, 2))
        ids, keep = torch.tensor([[3, 4, 4, 0]]), torch.tensor([[True, True, True, False]])
        w = torch.tensor([want[3], want[4], want[4]], dtype=torch.float32)
        expected = branch.scale * (branch.words.weight[[3, 4, 4]] * w[:, None]).sum(0) / w.square().sum().sqrt()
        torch.testing.assert_close(branch(ids, keep)[0], expected)
    # fit sets them from the training split; the checkpoint keeps them; without the setting, no buffer
    cfg = tiny_config(epochs=1)
    cfg.model.ngram_buckets, cfg.model.ngram_idf = 97, True
    result = fit(cfg, make_texts(120, seed=1), tmp_path / "run", progress=False)
    model, tok, _ = load_checkpoint(result.best_dir)
    idf = model.ngrams.idf
    assert idf is not None and float(idf.max()) > 1.0 and float(idf[tok.pad_id]) == 0.0
    df = np.zeros(len(idf))
    for row in tok.encode(make_texts(120, seed=1).texts):
        df[np.unique(row)] += 1
    seen = idf.numpy() > 0
    assert int(np.argmin(np.where(seen, idf.numpy(), np.inf))) == int(np.argmax(df))  # the commonest word weighs least
    plain = tiny_config(epochs=1)
    plain.model.ngram_buckets = 97
    fit(plain, make_texts(60, seed=1), tmp_path / "plain", progress=False)
    assert load_checkpoint(tmp_path / "plain" / "best")[0].ngrams.idf is None


def test_same_seed_same_loss_curve(tmp_path: Path) -> None:
    data = make_texts(120, seed=5)
    a = fit(tiny_config(epochs=2), data, tmp_path / "a", progress=False)
    b = fit(tiny_config(epochs=2), data, tmp_path / "b", progress=False)
    c = fit(tiny_config(epochs=2, seed=7), data, tmp_path / "c", progress=False)
    key = ["train_loss", "val_loss"]
    assert [[h[k] for k in key] for h in a.history] == [[h[k] for k in key] for h in b.history]
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


@pytest.mark.parametrize("half", [{}, {"fp16": True}])  # fp16: the loss scaler's state resumes too
def test_interrupted_then_resumed_run_matches_uninterrupted(tmp_path: Path, half: dict[str, bool]) -> None:
    data = make_texts(150, seed=3)
    full = fit(tiny_config(epochs=3, **half), data, tmp_path / "full", progress=False)

    def interrupt(step: int) -> None:
        if step == 11:  # mid-epoch 2 (9 steps per epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(epochs=3, **half), data, tmp_path / "cut", progress=False, on_step=interrupt)
    state = torch.load(tmp_path / "cut" / "last" / "trainer_state.pt", weights_only=True)
    assert state["progress"]["step"] == 11 and state["progress"]["batches_done"] == 2
    assert bool(state["scaler"]) == bool(half)
    resumed = fit(None, data, tmp_path / "cut", resume=True, progress=False)  # None: the stored config
    strip = ("train_samples_per_sec",)
    assert [{k: v for k, v in h.items() if k not in strip} for h in resumed.history] == [
        {k: v for k, v in h.items() if k not in strip} for h in full.history
    ]
    a, _, _ = load_checkpoint(tmp_path / "full" / "last")
    b, _, _ = load_checkpoint(tmp_path / "cut" / "last")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_existing_run_is_not_overwritten_by_accident(trained) -> None:
    run, _ = trained
    with pytest.raises(FileExistsError, match="--resume"):
        fit(tiny_config(), make_texts(60), run, progress=False)


def test_early_stopping(tmp_path: Path) -> None:
    # Labels carry no signal, so validation accuracy soon stops improving.
    data = make_texts(90, seed=4)
    rng = np.random.default_rng(0)
    data.labels = [str(x) for x in rng.integers(0, 3, len(data))]
    result = fit(tiny_config(epochs=30, patience=2), data, tmp_path / "r", progress=False)
    assert result.stopped_early and len(result.history) < 30


def test_the_loss_can_choose_the_best_epoch(tmp_path: Path) -> None:
    """monitor "loss": the kept epoch has the lowest validation loss (labels without signal, so
    the loss rises once the model memorises), and best_val_accuracy is that epoch's accuracy."""
    data = make_texts(90, seed=4)
    data.labels = [str(x) for x in np.random.default_rng(0).integers(0, 3, len(data))]
    result = fit(tiny_config(epochs=10, lr=0.1, monitor="loss"), data, tmp_path / "r", progress=False)
    losses = [h["val_loss"] for h in result.history]
    assert len(set(losses)) == 10 and losses.index(min(losses)) not in (0, 9)  # neither the first nor the last
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert result.best_val_accuracy == result.history[result.best_epoch - 1]["val_accuracy"]


def test_the_ngram_branch_is_also_trained_alone(tmp_path: Path) -> None:
    """``ngram_aux``: the branch's logits get a loss of their own while training (and only then),
    so the same run with and without it ends with different branch weights."""
    def run(aux: float, name: str) -> torch.nn.Module:
        cfg = tiny_config(epochs=2)
        cfg.model.ngram_buckets, cfg.model.ngram_aux = 97, aux
        result = fit(cfg, make_texts(120, seed=1), tmp_path / name, progress=False)
        return load_checkpoint(result.last_dir)[0]

    plain, aux = run(0.0, "plain"), run(1.0, "aux")
    assert not torch.equal(plain.ngrams.words.weight, aux.ngrams.words.weight)
    ids, mask = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]])
    aux.train()
    out = aux(ids, mask)
    ((weight, wide),) = out.aux_logits
    assert weight == 1.0 and torch.allclose(wide, aux.ngrams(ids, mask.bool()))
    aux.eval()
    assert aux(ids, mask).aux_logits == ()  # prediction and export never see it
    assert aux.config.ngram_aux == 1.0  # stored with the checkpoint


def test_failed_write_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    dest = tmp_path / "ckpt"
    atomic_dir(dest, lambda d: (d / "a.txt").write_text("good"))

    def crash(d: Path) -> None:
        (d / "a.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_dir(dest, crash)
    assert (dest / "a.txt").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folders left


def test_corrupted_and_incompatible_checkpoints(trained, tmp_path: Path) -> None:
    import shutil

    run, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(run / "best", bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupted weights"):
        Classifier.load(bad)
    meta = json.loads((run / "best" / "classiformer.json").read_text())
    shutil.copytree(run / "best", tmp_path / "future")
    (tmp_path / "future" / "classiformer.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        read_meta(tmp_path / "future")
    shutil.copytree(run / "best", tmp_path / "shape")
    (tmp_path / "shape" / "classiformer.json").write_text(json.dumps({**meta, "model": {**meta["model"], "embed_dim": 21}}))
    with pytest.raises(CheckpointError, match="do not fit the model config"):
        Classifier.load(tmp_path / "shape")
    with pytest.raises(CheckpointError, match="not a classiformer model"):
        Classifier.load(tmp_path)


def test_training_limits_the_onednn_cache_unless_the_user_chose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from classiformer.runtime import release_free_memory

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    fit(tiny_config(epochs=1), make_texts(40, seed=1), tmp_path / "a", progress=False)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    fit(tiny_config(epochs=1), make_texts(40, seed=1), tmp_path / "b", progress=False)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"
    release_free_memory()  # glibc here; elsewhere a no-op
