"""The adaptive training recipe: settings derived from the training data's shape.

The ``lesson`` and ``base`` presets were tuned on three sets of similar shape (AG News, SST-2 and
IMDB: thousands of examples, 2-4 classes, 10-230 words). Taken as fixed numbers to other data they
fall short: 5 epochs of 1,000 rows are 40 optimizer steps; 40% word deletion leaves a 6-word title
with 3 or 4 words; a 90-label sigmoid head at the single-label learning rate stays unfitted; a
2^20-bucket n-gram branch times 90 labels is 94M weights that AdamW updates every step. With
``train.recipe = "auto"`` (the default) and a preset marked ``adaptive``, :func:`adapt` rewrites
every such setting that no config file or flag set, by the rules below; what it chose, and why, is
logged and stored in the run's ``config.json`` (``"recipe"``). The rules are plain functions of
the data's statistics (:class:`DataStats`), so the same data gives the same settings.

Rules (each measured by ``bench/shapes.py``; docs/benchmarks.md, "Defaults across data shapes"):

1. Budget in optimizer steps with a floor: ``epochs = max(preset epochs, ceil(floor / steps per
   epoch))``, at most ``MAX_EPOCHS``; early stopping on validation then ends a run that stopped
   improving (``patience`` grows with the epoch count, as an epoch of a small set is a handful of
   noisy steps). The floor is ``MIN_STEPS`` (200) for a softmax head and ``MIN_STEPS_MULTI_LABEL``
   (1,000) for sigmoid heads. Why these two: the preset's 5 epochs of a 1,000-row set are 40 steps
   and underfit (AG News 1k: 75.2%, against 78.1 / 79.1 / 79.0 / 78.4% with plans of 96 / 200 /
   300 / 800 steps; the best epochs came after about 100 steps), while on 5-6k-row sets the
   preset's 5 epochs (~200 steps ending in a full linear decay) beat every longer plan (AG News 5k:
   87.3% at 5 epochs, 86.3% at 9, 85.9% at 28; titles 77.0 / 76.5 / 76.1%), because the schedule
   decays over the plan and a long plan's best epoch comes early, at a high learning rate. A floor
   of 200 steps gives the small sets their steps and leaves the preset's epochs to sets of 5,000
   rows and more (one seed each; IMDB 1k was the exception: 81.4% at 200 steps, 82.1% at 800).
   A 90-label sigmoid head, each label seeing few positives, was still improving after 660 steps
   (Reuters-21578, docs/benchmarks.md, "Multi-label"): its floor stays at 1,000. A softmax head
   over many classes gets ``MIN_STEPS_PER_CLASS`` (20) steps per class when that is more (more
   than 10 classes; sets of up to 10 are as before): R52's 52 classes, 47 steps per epoch, were
   planned 5 epochs; planned 23, with early stopping, R52 headlines went from 85.58 to 86.08% and
   R52 documents from 90.41 to 90.68% (bench/shapes.py, seed 42; the runs stopped at epochs 14 and
   8: the longer plan keeps the rate higher where the best epoch falls).
2. The measure that picks the best epoch and drives early stopping: macro-F1 when the model is
   multi-label, else the validation loss. Accuracy over a validation split of a hundred rows moves in steps of
   1% and ties often, so it picks among noisy epochs (IMDB 1k: the best epoch by accuracy was the
   third of 25, 81.5% on the test set; by loss the ninth, 83.2%); the loss moves with every
   example's probability. On the shapes of ``bench/shapes.py`` choosing by loss was as good or
   better on each set (AG News 1k +0.3, titles +0.4, IMDB 1k +1.8, AG News 5k +0.1 points).
   Imbalanced classes included: macro-F1 was their measure until 2026-12-06, and it is flat while
   a model still predicts the large class everywhere, so early stopping ended such runs before
   they learned (AG News at 100/30/10/3%, ``lesson`` unweighted: macro-F1 0.095 in each of three
   seeds, 0.322 by the loss; with balanced class weights 0.701 against 0.702). By the loss R8
   headlines scored 92.89% against 91.94, R52 headlines 86.63 against 86.08, R8 96.60 against
   96.51, R52 the same 90.68% (bench/shapes.py and bench/multilabel.py imbalance, seed 42).
3. Word deletion scaled by length (``token_dropout_length``): a text shorter than
   ``FULL_DELETION_LENGTH`` tokens deletes proportionally fewer, and none loses most of its words.
4. Multi-label (sigmoid + binary cross-entropy): the learning rate times ``BCE_LR_FACTOR``.
5. The n-gram branch (``base``): at most ``MAX_NGRAM_WEIGHTS`` weights (buckets x labels), buckets
   a power of two; when that leaves fewer than ``MIN_PAIR_BUCKETS`` buckets (more than 64 labels),
   the branch weighs words alone (``ngram_pairs`` False). A text collection has hundreds of
   thousands of distinct word pairs; hashed into 2^17 buckets, most buckets are shared, and every
   label's weight for a shared bucket adds the other pairs' evidence as noise. On Reuters (90 labels)
   TF-IDF + LinearSVC loses 2.2 points of micro-F1 when its features are hashed into 2^17 buckets,
   and ``base`` gains 1.6 / 2.1 points of micro / macro-F1 (and trains faster) without the pairs
   (docs/benchmarks.md, "Multi-label and imbalanced classes").
6. The n-gram branch of a single-label model is also trained alone (``ngram_aux`` ``NGRAM_AUX``: a
   second cross-entropy on its logits). On a small set the transformer fits the training rows by
   itself within a few epochs; the summed loss is then near zero and the branch, which generalises
   better there, stops learning. With the second loss (and rule 2): AG News 1k +0.9, titles +0.1,
   IMDB 1k +0.1, AG News 5k +0.1 points. Multi-label models keep none: on Reuters (90 labels) it
   cost 1.8 / 1.4 points of micro / macro-F1.
7. Words seen once stay in the vocabulary (``tokenizer.min_frequency`` 1, not 2) of a model with an
   n-gram branch when they are at least ``SINGLETON_SHARE`` of the training text's words. Dropping
   them is right for a transformer's embeddings, which one example cannot train (``lesson`` on AG
   News 1k: 79.6% without them, 71.5% with), but the branch is a linear model over words, and
   TF-IDF + LR keeps every word. How much it matters follows the share of the text they make up
   (``bench/shapes.py``, ``base``, points gained by keeping them; the share in the training part):
   1,000 AG News titles (31%) +8.6, 2,000 titles (22%) +2.2, 2,000 SST-2 phrases (16%) +0.7, 500
   AG News rows (~16%) +0.6, all 6,080 titles (12%) +0.4, AG News 1k (11%) −0.1 (+1.0 on the mean
   of three seeds); below the threshold, with the rule forced: 5,000 SST-2 phrases (8%) −0.5, AG
   News 5k (4%) −0.3, IMDB 1k (4%) −0.1.
8. The n-gram branch weighs words by inverse document frequency (``ngram_idf``, as TF-IDF does;
   ids no training text has weigh 0) when the texts average at most ``IDF_MAX_WORDS`` words and
   there are at most ``IDF_MAX_EXAMPLES`` of them. A word common to most texts then counts little
   and a rare one much; with Adam, whose step is about the same for every weight, a rare word's
   weight also moves the logits further per step, which matters where the branch has few examples
   per word. ``base``, points against words weighed equally (seed 42 unless said): AG News 1k
   +0.9 / +0.5 / +0.5 (seeds 42 / 1 / 2), 1,000 titles +0.8, 2,000 titles +1.3, 2,000 SST-2
   phrases +1.3, 5,000 +0.2, AG News 5k +0.4 (see docs/benchmarks.md for the rest). IMDB's reviews
   (235 words) lost 0.0-0.3 (1k, three seeds) and 0.3 (5k): there the rare words are mostly names
   and plot, and reviews are long enough for the common words to carry their sentiment. With many
   examples per word the gain goes: all 67,349 SST-2 phrases −0.1 and −1.1 (two runs), the
   6,080-row AG News split +0.3 / −0.6 / −0.5 (seeds 1 / 42 / 2), against +0.5 on 6,080 titles
   and +0.3 on R52's 6,570 documents; hence the cap. The unknown-word id is what made the weights
   fail at first: with every training word in the vocabulary (rule 7) it occurs in no training
   text, took the largest weight and, untrained, diluted every test text with unseen words (1,000
   titles −3.2 points, 2,000 SST-2 phrases −1.0); at 0 it takes no part, as a word outside
   TF-IDF's vocabulary.
9. A multi-label model with an n-gram branch trains with the one-vs-rest hinge loss
   (``train.multilabel_loss`` ``hinge``, margin ``train.hinge_margin`` 6 in logits; losses.py)
   instead of BCE: the branch is a linear model over TF-IDF-like rows, and a linear SVM per label
   is what wins on such features (TF-IDF + LinearSVC beats every other peer on Reuters). With
   BCE every one of a 90-label head's easy negatives keeps pulling on the weights; past the margin
   a hinge decision costs nothing. ``base``, micro / macro-F1, mean of seeds 42 / 1 / 2, per-label
   thresholds (at 0.5 in brackets): Reuters-21578 (90 labels) 83.93 / 43.27% (85.70 / 43.01%)
   against BCE's 82.66 / 40.03% (83.54 / 37.84%); with the thresholds chosen out of fold
   (thresholds.py) 85.60 / 44.32% against 83.71 / 40.57%, and on the AG News split's texts, half
   of them joined in pairs with another (4 labels, 1.4 per text), 83.77 / 83.81% against 82.44 /
   82.59% (``bench/multilabel.py reuters`` and ``pairs``). The
   margin was chosen on validation micro-F1 at 0.5 (Reuters, seed 42, without the transformer
   block: 86.89 / 87.81 / 87.99 / 87.80% for margins 2 / 4 / 6 / 10). A squared hinge and BCE on
   logits divided by 4 were no better than BCE (docs/benchmarks.md, "Multi-label and imbalanced
   classes").

Pretrained encoders (the ``finetune`` and ``partial`` presets) get one rule of their own; none of the
above, which are about models that learn their words from the data:

10. A multi-label head on a pretrained body learns at ``MULTI_LABEL_HEAD_LR``
    (``train.head_lr``) while the body keeps the fine-tuning rate. A label with a handful of
    positives moves its row of the head in a handful of steps, which at 1e-4 is too little: MiniLM
    fine-tuned on Reuters-21578 (90 labels; 128 tokens, 5 epochs, lr 1e-4, the prior start of
    ``losses.prior_logits``) went from 84.32 / 29.30% micro / macro-F1 to 88.40 / 44.26% with the
    head at 3e-3 (docs/benchmarks.md, "Multi-label and imbalanced classes"). A single-label head
    sees every class often and keeps one rate (not measured otherwise); the frozen mode trains
    only its head, at its own rate already.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

from .config import PRESETS, RunConfig, TokenizerConfig, TrainConfig
from .data.scripts import spaced
from .tokenizers.words import split_words

log = logging.getLogger(__name__)

MIN_STEPS = 200
MIN_STEPS_MULTI_LABEL = 1_000
MIN_STEPS_PER_CLASS = 20
MAX_EPOCHS = 100
FULL_DELETION_LENGTH = 24
BCE_LR_FACTOR = 5.0
MAX_NGRAM_WEIGHTS = 2**24
MIN_PAIR_BUCKETS = 2**18
NGRAM_AUX = 1.0
SINGLETON_SHARE = 0.1
IDF_MAX_WORDS = 150
IDF_MAX_EXAMPLES = 20_000
MULTI_LABEL_HEAD_LR = 3e-3


@dataclass(frozen=True)
class DataStats:
    """What the recipe reads from the training part of the data (after the validation split)."""

    examples: int
    mean_words: float  # whitespace-separated words per text (a Chinese or Thai character is a word)
    labels: int
    multi_label: bool
    imbalance: float  # examples of the most frequent label / of the least frequent (>= 1)
    # of the words (as the words tokenizer splits them), those seen once; None: not counted
    singleton_share: float | None = None

    @classmethod
    def of(cls, texts: list[str], label_counts: list[int], multi_label: bool, count_words: bool = True) -> DataStats:
        """The statistics of ``texts``; ``count_words`` False skips ``singleton_share``, a pass over
        the text as long as the tokenizer's own (2.4 s for IMDB's 25,000 reviews here), for a
        config that rule 7 cannot change (:func:`counts_words`)."""
        counts = [c for c in label_counts if c > 0] or [1]
        words = sum(len(spaced(t).split()) for t in texts)
        share = None
        if count_words:
            seen = Counter(chain.from_iterable(map(split_words, texts)))
            share = round(sum(1 for c in seen.values() if c == 1) / max(1, seen.total()), 4)
        return cls(
            examples=len(texts), mean_words=round(words / max(1, len(texts)), 2), labels=len(label_counts),
            multi_label=multi_label, imbalance=round(max(counts) / min(counts), 2), singleton_share=share,
        )


def applies(config: RunConfig) -> bool:
    """Whether :func:`adapt` changes ``config``: the recipe is ``auto`` and the preset adaptive."""
    preset = PRESETS.get(config.preset)
    return config.train.recipe == "auto" and preset is not None and preset.adaptive


def counts_words(config: RunConfig) -> bool:
    """Whether rule 7 can choose ``config``'s ``min_frequency``, so that :meth:`DataStats.of` must
    count the words: a word-level tokenizer for a model with an n-gram branch, the setting not given."""
    return (applies(config) and getattr(config.model, "ngram_buckets", 0) > 0 and config.tokenizer.kind == "words"
            and "tokenizer.min_frequency" not in config.explicit)


def min_steps_for(multi_label: bool, labels: int = 0) -> int:
    """The step floor of rule 1: larger for sigmoid heads, and for a softmax head over more than
    ``MIN_STEPS // MIN_STEPS_PER_CLASS`` classes (see the module docstring)."""
    return MIN_STEPS_MULTI_LABEL if multi_label else max(MIN_STEPS, MIN_STEPS_PER_CLASS * labels)


def budget_epochs(examples: int, batch_size: int, grad_accum: int, preset_epochs: int, min_steps: int = MIN_STEPS) -> int:
    """Epochs that give at least ``min_steps`` optimizer steps (the preset's epochs at least,
    ``MAX_EPOCHS`` at most)."""
    steps_per_epoch = math.ceil(math.ceil(examples / batch_size) / grad_accum)
    return min(MAX_EPOCHS, max(preset_epochs, math.ceil(min_steps / max(1, steps_per_epoch))))


def patience_for(epochs: int, preset_patience: int) -> int:
    """A fifth of the epochs, the preset's patience at least: 100 epochs of 8 steps each are
    validated 100 times on a hundred examples, and a few noisy epochs must not stop the run."""
    return max(preset_patience, math.ceil(epochs / 5))


def ngram_buckets_for(labels: int, preset_buckets: int) -> int:
    """The largest power of two of buckets with at most ``MAX_NGRAM_WEIGHTS`` weights in all."""
    if preset_buckets == 0:
        return 0
    cap = 2 ** int(math.log2(max(1, MAX_NGRAM_WEIGHTS // max(1, labels))))
    return min(preset_buckets, cap)


def adapt(config: RunConfig, stats: DataStats) -> dict[str, Any]:
    """Rewrite the settings of ``config`` that were not set explicitly, by the rules of the module
    docstring; returns what was chosen (``{"stats": ..., "choices": {"section.key": {"value",
    "preset", "why"}}, "explicit": [...]}``) for the run's config.json. Changes nothing (and
    returns ``{}``) when :func:`applies` is false."""
    if not applies(config):
        return {}
    t, m = config.train, config.model
    # Rules start from the preset's own values, not the config's current ones, so that a config
    # object adapted once (fit changes it in place) adapts the same way again.
    preset = PRESETS[config.preset]
    start, start_model = TrainConfig(**preset.train), type(m)(**preset.model)
    choices: dict[str, dict[str, Any]] = {}

    start_tokenizer = TokenizerConfig(**preset.tokenizer)
    targets = {"train": (t, start), "model": (m, start_model), "tokenizer": (config.tokenizer, start_tokenizer)}

    def choose(section: str, key: str, value: Any, why: str) -> None:
        target, first = targets[section]
        if f"{section}.{key}" in config.explicit or not hasattr(target, key):
            return
        setattr(target, key, value)
        choices[f"{section}.{key}"] = {"value": value, "preset": getattr(first, key), "why": why}

    if preset.family == "hf":  # rule 10 only: a pretrained body brings its words and their features
        if stats.multi_label and getattr(m, "mode", "frozen") != "frozen" and MULTI_LABEL_HEAD_LR > t.lr:
            choose("train", "head_lr", MULTI_LABEL_HEAD_LR, f"multi-label: the new head learns at "
                   f"{MULTI_LABEL_HEAD_LR:g}, so that labels with few positives move it; the body at {t.lr:g}")
        return _report(stats, choices, config)
    if stats.multi_label:
        choose("train", "lr", start.lr * BCE_LR_FACTOR, f"multi-label: {BCE_LR_FACTOR:g}x the single-label rate for "
               "the sigmoid head's binary cross-entropy")
    floor = min_steps_for(stats.multi_label, stats.labels)
    epochs = budget_epochs(stats.examples, t.batch_size, t.grad_accum, start.epochs, floor)
    steps = math.ceil(math.ceil(stats.examples / t.batch_size) / t.grad_accum)
    why_floor = (" (sigmoid heads)" if stats.multi_label else
                 f" ({MIN_STEPS_PER_CLASS} per class)" if floor > MIN_STEPS else "")
    choose("train", "epochs", epochs, f"{stats.examples} examples in batches of {t.batch_size}: {steps} steps per "
           f"epoch; at least {floor} steps{why_floor} (at most {MAX_EPOCHS} epochs)")
    choose("train", "patience", patience_for(t.epochs, start.patience), f"early stopping after a fifth of {t.epochs} "
           "epochs without improvement")
    monitor = "macro_f1" if stats.multi_label else "loss"
    choose("train", "monitor", monitor, "multi-label: macro-F1" if stats.multi_label else
           "single-label: the validation loss, which moves from the first step (balanced or not)")
    if getattr(m, "token_dropout", 0) > 0:
        choose("model", "token_dropout_length", FULL_DELETION_LENGTH, f"texts under {FULL_DELETION_LENGTH} tokens "
               f"delete fewer words (mean length {stats.mean_words:g} words); none loses most of its words")
    if getattr(m, "ngram_buckets", 0) > 0:
        buckets = ngram_buckets_for(stats.labels, start_model.ngram_buckets)
        choose("model", "ngram_buckets", buckets, f"{stats.labels} labels: at most {MAX_NGRAM_WEIGHTS:,} n-gram weights")
        if "model.ngram_buckets" not in config.explicit and buckets < MIN_PAIR_BUCKETS:  # buckets asked for are kept
            choose("model", "ngram_pairs", False, f"{buckets:,} buckets (< {MIN_PAIR_BUCKETS:,}) would share most "
                   "word pairs between buckets: words only")
        if config.tokenizer.kind == "words" and (stats.singleton_share or 0.0) >= SINGLETON_SHARE:
            choose("tokenizer", "min_frequency", 1, f"words seen once are {stats.singleton_share:.0%} of the training "
                   f"text (>= {SINGLETON_SHARE:.0%}): the n-gram branch keeps them")
        idf = stats.mean_words <= IDF_MAX_WORDS and stats.examples <= IDF_MAX_EXAMPLES
        choose("model", "ngram_idf", idf, f"{stats.examples} examples (at most {IDF_MAX_EXAMPLES:,} for IDF), mean "
               f"length {stats.mean_words:g} words (at most {IDF_MAX_WORDS}): "
               + ("words weighed by inverse document frequency" if idf else "words weighed equally"))
        if stats.multi_label:
            choose("train", "multilabel_loss", "hinge", f"multi-label with an n-gram branch: one-vs-rest hinge loss "
                   f"(margin {t.hinge_margin:g}), as a linear SVM per label, instead of BCE")
        choose("model", "ngram_aux", 0.0 if stats.multi_label else NGRAM_AUX,
               "multi-label: the branch trains only in the sum" if stats.multi_label else
               "single-label: the branch also trains alone, so that a transformer that fits the training set "
               "does not stop it learning")
    return _report(stats, choices, config)


def _report(stats: DataStats, choices: dict[str, dict[str, Any]], config: RunConfig) -> dict[str, Any]:
    for key, c in choices.items():
        log.info("recipe: %s = %r (preset: %r): %s", key, c["value"], c["preset"], c["why"])
    return {"stats": asdict(stats), "choices": choices, "explicit": sorted(config.explicit)}
