"""The adaptive training recipe (recipe.py): budgets from the data's shape, explicit settings win,
word deletion spares short texts, and a multi-label toy set learns with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, read_dataset, resolve_config
from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.data import TextDataset
from classiformer.metrics import multilabel_report
from classiformer.models.transformer import sample_deletions
from classiformer.recipe import (
    IDF_MAX_EXAMPLES,
    IDF_MAX_WORDS,
    MAX_EPOCHS,
    MIN_STEPS,
    MIN_STEPS_MULTI_LABEL,
    MIN_STEPS_PER_CLASS,
    DataStats,
    adapt,
    budget_epochs,
    counts_words,
    min_steps_for,
    ngram_buckets_for,
)
from classiformer.training import encode_labels, monitored

from .conftest import make_texts
from .test_multilabel_training import NAMES, multilabel_texts


def stats(examples: int, words: float = 30.0, labels: int = 4, multi: bool = False, imbalance: float = 1.0,
          singletons: float = 0.0) -> DataStats:
    return DataStats(examples=examples, mean_words=words, labels=labels, multi_label=multi, imbalance=imbalance,
                     singleton_share=singletons)


def adapted(preset: str, data: DataStats, **train: object) -> tuple[object, dict]:
    config = resolve_config(preset, train=train)
    return config, adapt(config, data)


def test_the_budget_is_a_floor_in_steps_and_the_same_for_the_same_data() -> None:
    small, _ = adapted("lesson", stats(900))  # 8 batches of 128 per epoch
    large, _ = adapted("lesson", stats(120_000))  # 938 per epoch: the preset's 5 epochs are 4,690 steps
    tiny_set, _ = adapted("lesson", stats(60, multi=True))  # 1 per epoch, and the sigmoid heads' floor
    assert small.train.epochs == -(-MIN_STEPS // 8) and (small.train.epochs - 1) * 8 < MIN_STEPS
    assert large.train.epochs == 5  # never fewer than the preset's
    assert tiny_set.train.epochs == MAX_EPOCHS  # one step per epoch: capped
    # early stopping waits longer when an epoch is a handful of steps
    assert small.train.patience > large.train.patience == 3
    again, chosen = adapted("lesson", stats(900))
    assert again.to_dict() == small.to_dict() and chosen["choices"]["train.epochs"]["value"] == small.train.epochs
    assert budget_epochs(900, 128, 1, 5) == budget_epochs(900, 128, 1, 5)
    reused = resolve_config("base")
    first = adapt(reused, stats(7_000, labels=90, multi=True))
    assert adapt(reused, stats(7_000, labels=90, multi=True)) == first  # fit changes a config in place: no drift
    assert reused.train.lr == 5e-3 and first["choices"]["train.lr"]["preset"] == 1e-3
    assert budget_epochs(900, 64, 2, 5) == budget_epochs(900, 128, 1, 5)  # steps count, not batches


def test_the_same_data_gives_the_same_run_settings(tmp_path: Path) -> None:
    data = make_texts(150, seed=3)
    stored = []
    for name in ("a", "b"):
        fit(resolve_config("lesson", tokenizer={"vocab_size": 60, "max_length": 12}, train={"epochs": 2}), data,
            tmp_path / name, progress=False)
        stored.append(json.loads((tmp_path / name / "config.json").read_text()))
    assert stored[0]["recipe"] == stored[1]["recipe"] and stored[0]["train"] == stored[1]["train"]
    assert stored[0]["recipe"]["stats"]["examples"] == 135  # the training part: 10% held out


def test_sets_of_thousands_keep_the_preset_epochs_and_sigmoid_heads_get_a_larger_floor() -> None:
    # 4,500 rows in batches of 128 are 36 steps per epoch: the preset's 5 epochs (180 steps, a full
    # decay) were better there than any longer plan (docs/benchmarks.md, "Defaults across data shapes")
    mid, _ = adapted("base", stats(4_500))
    assert mid.train.epochs == -(-MIN_STEPS // 36) == 6
    thousands, _ = adapted("base", stats(6_000))  # 47 per epoch: 5 epochs already pass the floor
    assert thousands.train.epochs == 5
    # a 90-label sigmoid head on 6,300 rows (50 steps per epoch) was still improving at 660 steps
    multi, chosen = adapted("base", stats(6_300, labels=90, multi=True))
    assert multi.train.epochs == MIN_STEPS_MULTI_LABEL // 50 == 20 > thousands.train.epochs
    assert "1000 steps (sigmoid heads)" in chosen["choices"]["train.epochs"]["why"]
    assert budget_epochs(6_300, 128, 1, 5, MIN_STEPS_MULTI_LABEL) == 20 and budget_epochs(6_300, 128, 1, 5) == 5
    # 52 classes on 5,900 rows (47 steps per epoch): 20 steps per class, 1,040, not the preset's 235;
    # 10 classes or fewer keep the plain floor.
    many, chosen = adapted("base", stats(5_900, labels=52))
    assert many.train.epochs == -(-52 * MIN_STEPS_PER_CLASS // 47) == 23 and many.train.patience == 5
    assert "1040 steps (20 per class)" in chosen["choices"]["train.epochs"]["why"]
    assert adapted("base", stats(5_900, labels=10))[0].train.epochs == 5
    assert min_steps_for(False, 52) == 1_040 and min_steps_for(False, 4) == MIN_STEPS
    assert min_steps_for(True, 90) == MIN_STEPS_MULTI_LABEL  # sigmoid heads: as measured on Reuters


def test_shapes_get_their_own_settings() -> None:
    balanced, _ = adapted("base", stats(5_000, labels=4))
    skewed, _ = adapted("base", stats(5_000, labels=4, imbalance=10.0))
    multi, _ = adapted("base", stats(7_000, labels=90, multi=True, imbalance=500.0))
    assert balanced.train.monitor == skewed.train.monitor == "loss" and multi.train.monitor == "macro_f1"
    assert balanced.model.ngram_aux == skewed.model.ngram_aux == 1.0 and multi.model.ngram_aux == 0.0
    assert multi.train.lr > balanced.train.lr == 1e-3  # BCE needs a larger step
    assert balanced.model.ngram_buckets == 2**20  # the preset's, for a few classes
    assert multi.model.ngram_buckets < 2**20 and multi.model.ngram_buckets * 90 <= 2**24
    assert ngram_buckets_for(90, 0) == 0 and ngram_buckets_for(3, 2**20) == 2**20
    # too few buckets per label to tell word pairs apart: words only; 52 labels still get 2^18 buckets
    many, chosen = adapted("base", stats(7_000, labels=52))
    assert multi.model.ngram_pairs is False and balanced.model.ngram_pairs is True is many.model.ngram_pairs
    assert "model.ngram_pairs" not in chosen["choices"] and many.model.ngram_buckets == 2**18
    asked = resolve_config("base", model={"ngram_buckets": 2**10})
    adapt(asked, stats(7_000, labels=90, multi=True))
    assert asked.model.ngram_buckets == 2**10 and asked.model.ngram_pairs  # buckets asked for: pairs kept
    assert balanced.model.token_dropout_length > 0


def test_words_seen_once_stay_when_they_are_much_of_the_text() -> None:
    """Rule 7: the share of the words seen once, as the words tokenizer splits them; base keeps
    them from 10% on, lesson (no n-gram branch) never, and an explicit setting wins."""
    texts = ["Alpha beta, gamma!", "alpha BETA delta", "beta epsilon"]  # 8 words; gamma, delta, epsilon once
    assert DataStats.of(texts, [2, 1], False).singleton_share == round(3 / 8, 4)
    rare, chosen = adapted("base", stats(1_000, singletons=0.3))
    common, _ = adapted("base", stats(1_000, singletons=0.05))
    assert rare.tokenizer.min_frequency == 1 and common.tokenizer.min_frequency == 2
    assert chosen["choices"]["tokenizer.min_frequency"]["preset"] == 2
    assert adapted("lesson", stats(1_000, singletons=0.3))[0].tokenizer.min_frequency == 2
    asked = resolve_config("base", tokenizer={"min_frequency": 3})
    adapt(asked, stats(1_000, singletons=0.3))
    assert asked.tokenizer.min_frequency == 3
    # the words are counted only where the rule can apply (a pass over the texts as long as the tokenizer's)
    assert counts_words(resolve_config("base"))
    assert not any(counts_words(c) for c in (asked, resolve_config("lesson"), resolve_config("base", train={"recipe": "fixed"})))
    assert DataStats.of(texts, [2, 1], False, count_words=False).singleton_share is None


def test_short_texts_weigh_the_branchs_words_by_inverse_document_frequency() -> None:
    """Rule 8: up to IDF_MAX_WORDS words per text on average and IDF_MAX_EXAMPLES texts; longer
    texts or larger sets weigh words equally;
    an explicit setting wins; a model without a branch is left alone."""
    short, chosen = adapted("base", stats(IDF_MAX_EXAMPLES, words=IDF_MAX_WORDS))
    long, _ = adapted("base", stats(1_000, words=IDF_MAX_WORDS + 1))
    many, _ = adapted("base", stats(IDF_MAX_EXAMPLES + 1, words=10))
    assert short.model.ngram_idf is True and long.model.ngram_idf is False is many.model.ngram_idf
    assert chosen["choices"]["model.ngram_idf"]["preset"] is False
    asked = resolve_config("base", model={"ngram_idf": False})
    adapt(asked, stats(1_000, words=10))
    assert asked.model.ngram_idf is False
    assert "model.ngram_idf" not in adapted("lesson", stats(1_000, words=10))[1]["choices"]


def test_multi_label_models_with_a_branch_train_with_the_hinge_loss(tmp_path: Path) -> None:
    """Rule 9: multi-label data and an n-gram branch -> the one-vs-rest hinge loss; single-label
    data, a model without a branch, or an explicit choice keep theirs; fit builds the loss from
    the setting, and refuses it for single-label data."""
    multi, chosen = adapted("base", stats(2_000, labels=20, multi=True))
    assert multi.train.multilabel_loss == "hinge" and chosen["choices"]["train.multilabel_loss"]["preset"] == "bce"
    assert adapted("base", stats(2_000))[0].train.multilabel_loss == "bce"
    assert "train.multilabel_loss" not in adapted("lesson", stats(2_000, multi=True))[1]["choices"]
    assert adapted("base", stats(2_000, multi=True), multilabel_loss="bce")[0].train.multilabel_loss == "bce"
    with pytest.raises(ConfigError, match="multilabel_loss"):
        resolve_config("base", train={"multilabel_loss": "svm"})
    with pytest.raises(ConfigError, match="hinge_margin"):
        resolve_config("base", train={"hinge_margin": -1.0})
    texts, sets = multilabel_texts(120, seed=0)
    small = {"embed_dim": 8, "ff_dim": 8, "hidden_dim": 8, "ngram_buckets": 64}
    config = resolve_config("base", model=small, tokenizer={"vocab_size": 60, "max_length": 12},
                            train={"epochs": 2, "hinge_margin": 2.5})
    seen: list[object] = []

    def spy(loss: object, labels: list[str]) -> object:
        seen.append(loss)
        return loss

    fit(config, TextDataset(texts, None, label_sets=sets), tmp_path / "run", progress=False, loss_hook=spy)
    assert getattr(seen[0], "hinge_margin", None) == 2.5
    with pytest.raises(ConfigError, match="single-label"):
        fit(resolve_config("base", train={"multilabel_loss": "hinge"}), make_texts(60), tmp_path / "single",
            progress=False)


def test_explicit_settings_win_and_fixed_turns_it_off(tmp_path: Path) -> None:
    config, chosen = adapted("lesson", stats(900, multi=True), epochs=3, lr=2e-3)
    assert config.train.epochs == 3 and config.train.lr == 2e-3
    assert "train.epochs" not in chosen["choices"] and "train.lr" not in chosen["choices"]
    assert "train.patience" in chosen["choices"]  # what was not given still adapts
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"train": {"patience": 7}, "model": {"token_dropout_length": 0}}))
    from_file = resolve_config("lesson", config_file=file)
    adapt(from_file, stats(900))
    assert from_file.train.patience == 7 and from_file.model.token_dropout_length == 0
    fixed = resolve_config("lesson", train={"recipe": "fixed"})
    assert adapt(fixed, stats(900)) == {} and fixed.train.epochs == 5
    not_adaptive = resolve_config("tiny")
    assert adapt(not_adaptive, stats(900)) == {} and not_adaptive.train.epochs == 10
    with pytest.raises(ConfigError, match="recipe must be 'auto' or 'fixed'"):
        resolve_config("lesson", train={"recipe": "on"})


def test_cli_flags_win_over_the_recipe(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    ds = make_texts(120, seed=1)
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [])))
    out = tmp_path / "run"
    assert main(["train", "--train", str(data), "--preset", "lesson", "--epochs", "2", "--patience", "1",
                 "--vocab-size", "60", "--max-length", "12", "-o", str(out), "--no-progress"]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["train"]["epochs"] == 2 and stored["train"]["patience"] == 1
    assert "train.epochs" not in stored["recipe"]["choices"] and "train.epochs" in stored["recipe"]["explicit"]
    assert stored["recipe"]["choices"]["train.monitor"]["value"] == "loss"
    # a yes/no model setting: base on these short texts would get IDF weights; off wins
    base = tmp_path / "base"
    assert main(["train", "--train", str(data), "--preset", "base", "--epochs", "1", "--ngram-idf", "off",
                 "--vocab-size", "60", "--max-length", "12", "-o", str(base), "--no-progress"]) == 0
    stored = json.loads((base / "config.json").read_text())
    assert stored["model"]["ngram_idf"] is False and "model.ngram_idf" in stored["recipe"]["explicit"]
    with pytest.raises(SystemExit):
        main(["train", "--train", str(data), "--ngram-idf", "maybe", "-o", str(tmp_path / "x")])


def test_word_deletion_never_removes_most_of_a_short_text() -> None:
    lengths = torch.tensor([1, 2, 3, 4, 5, 6, 7, 9, 12, 24, 60])
    keep = torch.arange(60)[None] < lengths[:, None]
    torch.manual_seed(0)
    deleted = torch.stack([sample_deletions(keep, 0.4, 24).sum(1) for _ in range(500)])  # (500, 11)
    assert (deleted <= (lengths - 1) // 2).all()  # never most of a row, whatever the draw
    assert deleted[:, :2].max() == 0  # one or two words: nothing to spare
    rate = deleted.float().mean(0) / lengths
    assert rate[4] < 0.15 and rate[-1] > 0.38  # 5 words at 0.4 * 5/24; 60 words at the full 0.4
    assert (deleted[:, -1] >= 23).all()  # the per-row floor of long rows stays
    # the old rule (no full_length) lets a 3-word phrase lose two words
    old = torch.stack([sample_deletions(keep, 0.4).sum(1) for _ in range(500)])
    assert (old[:, 2] == 2).any()


def test_monitor_names_the_validation_measure() -> None:
    assert monitored("auto", False) == "val_accuracy" and monitored("auto", True) == "val_micro_f1"
    assert monitored("macro_f1", False) == "val_macro_f1" and monitored("macro_f1", True) == "val_macro_f1"
    assert monitored("micro_f1", False) == "val_accuracy" and monitored("accuracy", True) == "val_subset_accuracy"


def test_imbalanced_data_picks_the_best_epoch_by_validation_loss(tmp_path: Path) -> None:
    # Macro-F1 is flat while a model predicts the large class everywhere (early stopping then ends
    # the run before it learns); the loss moves from the first step.
    ds = make_texts(300, seed=2)
    keep = [i for i, y in enumerate(ds.labels or []) if y != NAMES[0] or i % 12 == 0]  # one class at a quarter
    result = fit(resolve_config("lesson", tokenizer={"vocab_size": 60, "max_length": 12}, train={"epochs": 3}),
                 ds.subset(keep), tmp_path / "run", progress=False)
    best = result.history[result.best_epoch - 1]
    assert best["val_loss"] == min(h["val_loss"] for h in result.history)
    assert result.best_val_accuracy == best["val_accuracy"]  # reported as accuracy, whatever chose the epoch


def test_a_multi_label_toy_set_learns_with_the_recipe(tmp_path: Path) -> None:
    texts, sets = multilabel_texts(400, seed=0)
    train = TextDataset(texts, None, label_sets=sets)
    # Only sizes are given; budget, learning rate, patience and monitor come from the recipe.
    config = resolve_config("lesson", model={"embed_dim": 16, "ff_dim": 16, "hidden_dim": 12, "dropout": 0.0},
                            tokenizer={"vocab_size": 60, "max_length": 12})
    result = fit(config, train, tmp_path / "run", progress=False)
    chosen = json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["choices"]
    assert chosen["train.lr"]["value"] == pytest.approx(5e-3) and chosen["train.monitor"]["value"] == "macro_f1"
    assert chosen["train.epochs"]["value"] == MAX_EPOCHS  # 360 examples: 3 steps per epoch
    clf = Classifier.load(result.best_dir)
    test_texts, test_sets = multilabel_texts(150, seed=9)
    test = TextDataset(test_texts, None, label_sets=test_sets)
    y = encode_labels(test, clf.labels)
    report = multilabel_report(y, clf.predict_proba(test.texts), NAMES, np.array(clf.thresholds.per_label))
    assert report["micro_f1"] > 0.9 and report["macro_f1"] > 0.9


def test_reading_the_stats_of_a_dataset() -> None:
    s = DataStats.of(["a b c", "d e", "f"], [30, 3, 0], multi_label=False)
    assert s.examples == 3 and s.mean_words == 2.0 and s.labels == 3 and s.imbalance == 10.0
    # a character of a script written without spaces is a word: "很好" is two, as the tokenizer sees it
    assert DataStats.of(["我很好", "很好 ok"], [1, 1], multi_label=False).mean_words == 3.0


def test_recipe_choices_reach_the_checkpoint(tmp_path: Path) -> None:
    ds = read_dataset_from(make_texts(120, seed=4), tmp_path / "d.jsonl")
    result = fit(resolve_config("lesson", tokenizer={"vocab_size": 60, "max_length": 12}, train={"epochs": 1}), ds,
                 tmp_path / "run", progress=False)
    meta = Classifier.load(result.best_dir).meta
    assert meta.model["token_dropout_length"] > 0 and meta.train["monitor"] == "loss"
    # base on texts whose words are mostly seen once: its vocabulary keeps them (rule 7)
    rare = TextDataset([f"w{i} v{i} common" for i in range(40)], ["a", "b"] * 20)
    result = fit(resolve_config("base", model={"ngram_buckets": 64}, tokenizer={"max_length": 8}, train={"epochs": 1}),
                 rare, tmp_path / "rare", progress=False)
    stored = json.loads((tmp_path / "rare" / "config.json").read_text())
    assert stored["tokenizer"]["min_frequency"] == 1 and "tokenizer.min_frequency" in stored["recipe"]["choices"]
    assert Classifier.load(result.best_dir).tokenizer.vocab_size > 60  # the 36 training rows' w_i and v_i too


def read_dataset_from(ds: TextDataset, path: Path) -> TextDataset:
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [])))
    return read_dataset(path)


def test_a_label_below_the_minimum_validation_f1_takes_the_global_threshold() -> None:
    from classiformer.thresholds import tune_thresholds

    rng = np.random.default_rng(0)
    y = np.zeros((200, 2), dtype=np.int64)
    y[:60, 0] = 1  # label 0: learned (scores separate it)
    y[rng.choice(200, 20, replace=False), 1] = 1  # label 1: scores are noise around its base rate
    scores = np.stack([np.where(y[:, 0] == 1, 0.8, 0.2) + rng.normal(0, 0.05, 200), rng.uniform(0, 0.3, 200)], 1)
    plain = tune_thresholds(y, scores)
    strict = tune_thresholds(y, scores, min_f1=0.5)
    assert plain.tuned == [True, True] and strict.tuned == [True, False]
    assert strict.per_label[1] == strict.global_threshold and strict.per_label[0] == plain.per_label[0]
    assert strict.to_dict()["min_f1"] == 0.5 and type(strict).from_dict(strict.to_dict()) == strict


def test_rule_10_raises_the_head_rate_of_multi_label_fine_tuning_only() -> None:
    from classiformer.recipe import MULTI_LABEL_HEAD_LR

    multi = resolve_config("finetune")
    chosen = adapt(multi, stats(900, labels=90, multi=True, imbalance=300.0))
    assert multi.train.head_lr == MULTI_LABEL_HEAD_LR and list(chosen["choices"]) == ["train.head_lr"]
    # Nothing else of the from-scratch rules touches a pretrained encoder: its rate, epochs, monitor.
    assert (multi.train.lr, multi.train.epochs, multi.train.monitor, multi.train.patience) == (3e-5, 3, "auto", 0)
    partial = resolve_config("partial")
    adapt(partial, stats(900, multi=True))
    assert partial.train.head_lr == MULTI_LABEL_HEAD_LR
    for config, data in ((resolve_config("finetune"), stats(900)),  # single-label: one rate
                         (resolve_config("frozen"), stats(900, multi=True)),  # trains its head alone
                         (resolve_config("finetune", train={"head_lr": 1e-3}), stats(900, multi=True)),  # given
                         (resolve_config("finetune", train={"lr": 5e-3}), stats(900, multi=True)),  # rate above it
                         (resolve_config("finetune", train={"recipe": "fixed"}), stats(900, multi=True))):
        before = config.train.head_lr
        adapt(config, data)
        assert config.train.head_lr == before
