"""Distillation: the loss, the teacher's cached logits, augmentation and the distill command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, resolve_config
from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.data import DataError, TextDataset
from classiformer.data.augment import MASK, Augmenter
from classiformer.data.datasets import stratified_split
from classiformer.distill import (
    DistillLoss,
    default_students,
    distill,
    distill_students,
    kd_term,
    soft_targets,
    teacher_logits,
    transfer_set,
    validation_log_loss,
)
from classiformer.losses import Loss
from classiformer.tracking import start_tracking

from .conftest import make_texts

TINY = {"epochs": 6, "lr": 3e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the toy topics: the teacher of every test here."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("teacher")
    fit(resolve_config("tiny", train=TINY), make_texts(240, seed=1), run, progress=False)
    return run


def write_jsonl(path: Path, ds: TextDataset) -> Path:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [])))
    return path


# -- the loss -----------------------------------------------------------------------------------


def test_kd_term_equals_a_hand_computation() -> None:
    s = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    z = np.array([[1.0, 0.0, -1.0], [-0.5, 2.5, 0.0]])
    t = 2.0

    def sm(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    q, p = sm(z / t), sm(s / t)
    hand = t * t * (q * np.log(q / p)).sum(1)
    got = kd_term(torch.tensor(s), torch.tensor(soft_targets([z], t, False)), t, False)
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-5)
    # multi-label: the Bernoulli KL per label, averaged
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    qb, pb = sig(z / t), sig(s / t)
    hand_ml = t * t * (qb * np.log(qb / pb) + (1 - qb) * np.log((1 - qb) / (1 - pb))).mean(1)
    got_ml = kd_term(torch.tensor(s), torch.tensor(soft_targets([z], t, True)), t, True)
    np.testing.assert_allclose(got_ml.numpy(), hand_ml, rtol=1e-5)
    # a student that matches its teacher pays nothing
    assert float(kd_term(torch.tensor(z), torch.tensor(soft_targets([z], t, False)), t, False).abs().max()) < 1e-6


def test_distill_loss_mixes_teacher_and_gold_only_where_gold_exists() -> None:
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    labels = torch.tensor([0, 0, 1])
    teacher = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    has_gold = np.array([True, False, True])
    loss = DistillLoss.wrap(Loss(), teacher, has_gold, alpha=0.3, temperature=2.0)
    index = torch.tensor([0, 1, 2])
    soft = kd_term(logits, torch.from_numpy(teacher), 2.0, False)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none") * torch.tensor([1.0, 0.0, 1.0])
    assert torch.allclose(loss(logits, labels, index), (0.3 * soft + 0.7 * ce).mean())
    # rows are found by index, not by position in the batch
    assert torch.allclose(loss(logits[[2, 0]], labels[[2, 0]], index[[2, 0]]), (0.3 * soft + 0.7 * ce)[[2, 0]].mean())
    with pytest.raises(ValueError, match="index"):
        loss(logits, labels)
    with pytest.raises(ConfigError, match="alpha"):
        DistillLoss.wrap(Loss(), teacher, has_gold, alpha=1.5, temperature=2.0)


def test_a_multi_label_students_gold_term_keeps_its_hinge_loss() -> None:
    """A student whose own loss is the hinge (recipe rule 9) keeps it as the gold term: the wrap
    (and the move to a device) carry the margin, and each example's gold term is its mean hinge."""
    logits = torch.tensor([[3.0, -0.5], [0.2, 1.0]])
    labels = torch.tensor([[1, 0], [0, 1]])
    teacher = np.array([[0.9, 0.2], [0.3, 0.7]], dtype=np.float32)
    loss = DistillLoss.wrap(Loss(multi_label=True, hinge_margin=2.0), teacher, np.array([True, True]),
                            alpha=0.5, temperature=1.0).to("cpu")
    assert loss.hinge_margin == 2.0
    hinge = torch.tensor([(0.0 + 1.5) / 2, (2.2 + 1.0) / 2])  # max(0, 2 - s z) per decision, by hand
    soft = kd_term(logits, torch.from_numpy(teacher), 1.0, True)
    assert torch.allclose(loss(logits, labels, torch.tensor([0, 1])), (0.5 * soft + 0.5 * hinge).mean())


def test_ensemble_averages_probabilities() -> None:
    a, b = np.array([[4.0, 0.0]]), np.array([[0.0, 4.0]])
    np.testing.assert_allclose(soft_targets([a, b], 1.0, False), [[0.5, 0.5]], rtol=1e-6)


# -- the teacher --------------------------------------------------------------------------------


def test_cached_teacher_logits_equal_recomputed(teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clf = Classifier.load(teacher)
    texts = make_texts(30, seed=5).texts
    first = teacher_logits(clf, texts, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*/part-*.keys.npy"))) == 1
    fresh = clf.logits(texts)
    monkeypatch.setattr(Classifier, "logits", lambda *a, **k: pytest.fail("labelled again instead of read from the cache"))
    cached = teacher_logits(clf, texts, tmp_path / "cache")
    np.testing.assert_array_equal(cached, fresh)
    np.testing.assert_array_equal(first, fresh)
    monkeypatch.undo()
    # only a text not seen before is labelled, into a part of its own; a repeated text once
    asked: list[int] = []
    logits = Classifier.logits
    monkeypatch.setattr(Classifier, "logits", lambda self, t, *a: asked.append(len(t)) or logits(self, t, *a))
    more = [*texts[:-1], "stock market", "stock market"]
    other = teacher_logits(clf, more, tmp_path / "cache")
    assert asked == [1]
    # (the new text was labelled in a batch of its own: other batch shapes round differently)
    np.testing.assert_allclose(other, logits(clf, more), rtol=1e-5, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("*/part-*.keys.npy"))) == 2
    # a part whose keys a killed run never wrote is ignored
    next((tmp_path / "cache").glob("*/part-0001-*.keys.npy")).unlink()
    teacher_logits(clf, more, tmp_path / "cache")
    assert asked == [1, 1]


def test_a_labelling_pass_stopped_partway_keeps_its_finished_parts(
    teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    d = importlib.import_module("classiformer.distill")  # the package's `distill` is the function
    monkeypatch.setattr(d, "PART_TEXTS", 8)
    clf = Classifier.load(teacher)
    texts = list(dict.fromkeys(make_texts(40, seed=6).texts))[:30]
    assert len(texts) == 30
    asked: list[int] = []
    logits = Classifier.logits

    def stopped_at_the_third(self: Classifier, t: list[str], *a: object) -> np.ndarray:
        if len(asked) == 2:
            raise KeyboardInterrupt  # the session ends while the third lot is labelled
        asked.append(len(t))
        return logits(self, t)

    monkeypatch.setattr(Classifier, "logits", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        teacher_logits(clf, texts, tmp_path / "cache")
    assert asked == [8, 8]
    assert len(list((tmp_path / "cache").glob("*/part-*.keys.npy"))) == 2
    asked.clear()
    monkeypatch.setattr(Classifier, "logits", lambda self, t, *a: asked.append(len(t)) or logits(self, t))
    again = teacher_logits(clf, texts, tmp_path / "cache")
    assert asked == [8, 6]  # only the 14 texts the stopped pass did not finish
    assert len(list((tmp_path / "cache").glob("*/part-*.keys.npy"))) == 4
    np.testing.assert_allclose(again, logits(clf, texts), rtol=1e-5, atol=1e-6)


# -- augmentation -------------------------------------------------------------------------------


def test_augmentation_is_seeded_and_reproducible() -> None:
    texts = make_texts(40, seed=3).texts
    a, src_a = Augmenter(seed=7).augment(texts, 3)
    b, src_b = Augmenter(seed=7).augment(texts, 3)
    c, _ = Augmenter(seed=8).augment(texts, 3)
    assert (a, src_a) == (b, src_b)
    assert a != c
    assert all(v != texts[i] for v, i in zip(a, src_a))
    # a text's variants do not depend on the other texts in the set (seeded by its index)
    aug = Augmenter(seed=7).fit(texts)
    assert aug.variants(texts[5], 3, 5) == [v for v, i in zip(a, src_a) if i == 5]


def test_augmentation_rules() -> None:
    words = ["the", "big", "match", "ended", "in", "a", "late", "goal"]
    rng = np.random.default_rng(0)
    assert Augmenter(p_mask=1.0, p_replace=0.0, p_ngram=0.0).fit([]).variant(words, rng) == [MASK] * len(words)
    for _ in range(20):
        cut = Augmenter(p_mask=0.0, p_replace=0.0, p_ngram=1.0, max_ngram=3).fit([]).variant(words, rng)
        assert 1 <= len(cut) <= 3 and " ".join(cut) in " ".join(words)
    # replacement draws a word seen between the same neighbours
    aug = Augmenter(p_mask=0.0, p_replace=1.0, p_ngram=0.0).fit(["a red car", "a blue car", "a fast car"])
    got = aug.variant(["a", "red", "car"], rng)
    assert got[1] in {"red", "blue", "fast"} and got[0] == "a" and got[2] == "car"
    with pytest.raises(ValueError, match="p_mask"):
        Augmenter(p_mask=2.0)


def test_augmentation_edits_the_characters_of_text_without_spaces() -> None:
    aug = Augmenter(p_mask=0.0, p_replace=0.0, p_ngram=1.0, max_ngram=2, seed=1).fit([])
    variants = aug.variants("房间很一般", 3, 0)
    # n-gram samples of its characters (one "word" would have no variant at all)
    assert variants and all(1 <= len(v.split()) <= 2 and v.replace(" ", "") in "房间很一般" for v in variants)


def test_transfer_set_flags_gold_rows_only() -> None:
    train = make_texts(12, seed=1)
    ts = transfer_set(train, ["no label here", "nor here"], augment=2, seed=0)
    assert ts.texts[:12] == train.texts and ts.texts[12:14] == ["no label here", "nor here"]
    assert ts.has_gold[:12].all() and not ts.has_gold[12:].any()
    assert ts.n_unlabeled == 2 and ts.n_augmented == len(ts.texts) - 14 > 0


# -- the whole run ------------------------------------------------------------------------------


def test_toy_teacher_distils_into_a_tiny_student_that_matches_it(teacher: Path, tmp_path: Path) -> None:
    # alpha 1: the student learns from the teacher's soft targets alone, gold labels unused
    config = resolve_config("tiny", train={**TINY, "epochs": 8, "lr": 1e-2})
    unlabeled = make_texts(60, seed=9).texts
    result = distill([teacher, teacher], config, make_texts(240, seed=1), tmp_path / "student",
                     unlabeled=unlabeled, augment=1, alpha=1.0, progress=False)
    test = make_texts(90, seed=2)
    t, s = Classifier.load(teacher), Classifier.load(result.best_dir)
    agreement = np.mean(np.array(s.predict(test.texts)) == np.array(t.predict(test.texts)))
    assert agreement >= 0.85
    record = s.meta.extra["distillation"]
    assert record["teachers"] == [str(teacher / "best")] * 2
    assert record["transfer_set"]["gold"] == 216 and record["transfer_set"]["unlabeled"] == 60
    assert record["transfer_set"]["augmented"] > 0
    saved = json.loads((result.best_dir / "classiformer.json").read_text())
    assert saved["extra"]["distillation"]["alpha"] == record["alpha"]


def test_distill_refuses_what_it_cannot_do(teacher: Path, tmp_path: Path) -> None:
    other = TextDataset(["a red car", "a blue car", "a fast car", "a slow car"], ["red", "blue", "red", "blue"])
    with pytest.raises(DataError, match="teacher does not know"):
        distill([teacher], resolve_config("tiny"), other, tmp_path / "s1", progress=False)
    with pytest.raises(ConfigError, match="from-scratch"):
        distill([teacher], resolve_config("finetune"), make_texts(30), tmp_path / "s2", progress=False)
    with pytest.raises(DataError, match="labelled"):
        distill([teacher], resolve_config("tiny"), TextDataset(["x", "y"], None), tmp_path / "s3", progress=False)


def test_distill_command_gives_an_ordinary_run(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", make_texts(240, seed=1))
    test = write_jsonl(tmp_path / "test.jsonl", make_texts(60, seed=2))
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(make_texts(30, seed=4).texts) + "\n\n", encoding="utf-8")
    run = tmp_path / "student"
    args = ["distill", str(teacher), "--train", str(train), "--unlabeled", str(extra), "--augment", "1",
            "--student", "tiny", "--epochs", "6", "--lr", "3e-3", "--batch-size", "16", "-o", str(run), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "transfer set:" in out and "30 unlabelled" in out
    assert main(["evaluate", str(run), "--test", str(test), "--no-progress"]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["predict", str(run), "stock market shares rise"]) == 0
    assert "money" in capsys.readouterr().out
    meta = json.loads((run / "best" / "classiformer.json").read_text())
    assert meta["extra"]["distillation"]["teachers"] == [str(teacher / "best")]
    # the teacher's logits are cached in the run folder and reused by --overwrite
    assert list((run / "teacher_logits").glob("*/part-*.keys.npy"))
    assert main(args) == 1
    assert "already holds a training run" in capsys.readouterr().err


def test_an_exported_onnx_teacher_teaches_as_its_checkpoint_does(teacher: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    exported = tmp_path / "onnx"
    assert main(["export", str(teacher), "-o", str(exported), "--quantize", "none"]) == 0
    texts = make_texts(30, seed=5).texts
    onnx, torch_teacher = Classifier.load(exported), Classifier.load(teacher)
    np.testing.assert_allclose(teacher_logits(onnx, texts, tmp_path / "cache"), torch_teacher.logits(texts),
                               rtol=1e-4, atol=1e-5)
    result = distill([exported], resolve_config("tiny", train={**TINY, "epochs": 2}), make_texts(120, seed=1),
                     tmp_path / "student", progress=False)
    assert Classifier.load(result.best_dir).meta.extra["distillation"]["teachers"] == [str(exported)]


def test_a_long_fp32_labelling_pass_on_a_cpu_without_bf16_suggests_the_int8_export(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib
    from types import SimpleNamespace

    from classiformer.runtime import CpuFeatures

    d = importlib.import_module("classiformer.distill")  # the package's `distill` is the function

    def cpu(flags: tuple[str, ...]) -> CpuFeatures:
        return CpuFeatures(model="test", cores=2, flags=flags, torch_capability="AVX2", known=True)

    encoder = SimpleNamespace(model=object(), meta=SimpleNamespace(family="hf"), device="cpu")
    exported = SimpleNamespace(model=None, meta=SimpleNamespace(family="hf"), device="cpu")
    scratch = SimpleNamespace(model=object(), meta=SimpleNamespace(family="transformer"), device="cpu")
    many = d.SUGGEST_INT8_TEXTS
    cases = [  # (cpu flags, teacher, texts, warns)
        (("avx2", "fma"), encoder, many, True),
        (("avx2", "fma"), encoder, many - 1, False),  # a short pass: not worth a word
        (("avx512f", "avx512_bf16", "amx_bf16"), encoder, many, False),  # bf16 units: labelled in bf16
        (("avx2", "fma"), exported, many, False),  # already ONNX Runtime
        (("avx2", "fma"), scratch, many, False),  # a from-scratch teacher is fast as it is
    ]
    for flags, teacher, n, warns in cases:
        monkeypatch.setattr(d, "cpu_features", lambda flags=flags: cpu(flags))
        caplog.clear()
        with caplog.at_level("WARNING", logger="classiformer.distill"):
            d._suggest_int8_teacher([teacher], [Path("runs/t/best")], n)
        said = [r.getMessage() for r in caplog.records]
        assert bool(said) == warns, (flags, teacher, n, said)
        if warns:
            assert "classiformer export runs/t/best -o runs/t/best-int8 --quantize int8" in said[0]


RNN_TINY = {"embed_dim": 8, "hidden_dim": 5, "attention_dim": 4, "dropout": 0.0}


def test_of_several_students_the_one_with_the_lower_validation_loss_becomes_the_run(teacher: Path, tmp_path: Path) -> None:
    # the GRU cannot learn at this rate, so it keeps its first predictions: a loss near ln 3
    stuck = resolve_config("rnn-attention", model=RNN_TINY, train={**TINY, "epochs": 1, "lr": 1e-9})
    learns = resolve_config("tiny", train=TINY)
    train = make_texts(240, seed=1)
    run = tmp_path / "student"
    tracker = start_tracking(["tensorboard"])
    assert tracker is not None
    with tracker:
        result = distill_students([teacher], [stuck, learns], train, run, progress=False, callbacks=[tracker])
    assert result.run_dir == run and (run / "best" / "classiformer.json").exists()
    assert not (run / "students" / "tiny").exists()  # moved up: the run's own folders, logs and events
    assert json.loads((run / "config.json").read_text())["preset"] == "tiny"
    assert (run / "metrics.jsonl").exists() and list((run / "tensorboard").glob("events.*"))
    assert list((run / "students" / "rnn-attention" / "tensorboard").glob("events.*"))
    assert (run / "students" / "rnn-attention" / "best" / "classiformer.json").exists()
    kept, other = Classifier.load(run), Classifier.load(run / "students" / "rnn-attention")
    assert kept.meta.family == "transformer" and other.meta.family == "rnn-attention"
    choice = kept.meta.extra["distillation"]["student_choice"]
    assert choice["chosen"] == "tiny" and choice["candidates"] == ["rnn-attention", "tiny"]
    losses = choice["validation_log_loss"]
    assert losses["tiny"] < losses["rnn-attention"] and losses["rnn-attention"] > 0.9  # ln 3 = 1.10
    # the recorded losses are those of the one validation split both were trained beside
    _, validation = stratified_split(train, learns.train.val_fraction, learns.train.seed)
    assert choice["validation_texts"] == len(validation)
    assert validation_log_loss(run, validation) == pytest.approx(losses["tiny"], abs=1e-5)
    assert validation_log_loss(run / "students" / "rnn-attention", validation) == pytest.approx(losses["rnn-attention"], abs=1e-5)
    assert Classifier.load(run / "last").meta.extra["distillation"]["student_choice"] == choice
    # the teacher labelled the texts once, into the run's one cache
    assert len(list((run / "teacher_logits").iterdir())) == 1
    assert not list((run / "students" / "rnn-attention").glob("teacher_logits"))
    with pytest.raises(FileExistsError, match="already holds"):
        distill_students([teacher], [stuck, learns], train, run, progress=False)


def test_the_distill_command_trains_both_default_students_unless_told_one(
    teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", make_texts(160, seed=1))
    run = tmp_path / "student"
    common = ["distill", str(teacher), "--train", str(train), "--epochs", "2", "--batch-size", "16", "--embed-dim", "8",
              "--hidden-dim", "6", "--no-progress"]
    assert main([*common, "-o", str(run)]) == 0
    out = capsys.readouterr().out
    assert "student: " in out and "validation log loss base " in out and "rnn-attention " in out
    kept = Classifier.load(run).meta.extra["distillation"]["student_choice"]["chosen"]
    other = {"base": "rnn-attention", "rnn-attention": "base"}[kept]
    assert (run / "students" / other / "best").exists()
    # a flag only one family has, with both students: a clear error naming the way out
    assert main([*common, "--heads", "2", "-o", str(tmp_path / "s2")]) == 1
    assert "--student auto trains base and rnn-attention" in capsys.readouterr().err
    assert main([*common, "--heads", "2", "--student", "tiny", "-o", str(tmp_path / "s3")]) == 0
    assert not (tmp_path / "s3" / "students").exists()


def test_long_texts_get_the_transformer_student_alone() -> None:
    short = TextDataset(["good film", "bad plot twist"], ["pos", "neg"])
    long = TextDataset([" ".join(["word"] * 51), "a b"], ["pos", "neg"])  # 26.5 words on average
    longer = TextDataset([" ".join(["word"] * 120), "a b"], ["pos", "neg"])  # 61
    assert default_students(short) == default_students(long) == ["base", "rnn-attention"]
    assert default_students(longer) == ["base"]
