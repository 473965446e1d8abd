"""Explanations: which tokens a prediction rests on, and what attention looked like.

Methods (each gives one score per token):

- ``rollout``: attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in
  Transformers"). Per layer, average the heads, add the identity for the residual connection and
  renormalise the rows; multiply the layers together. The pooled output of a mean-pooling model
  is the average of the real tokens' rows, so the importance is that average; a model that pools
  the first token (a pretrained encoder with ``pooling`` ``cls`` or ``pooler``) uses the first row.
- ``gradient``: integrated gradients (Sundararajan, Taly & Yan, 2017, "Axiomatic Attribution for
  Deep Networks") of the explained label's probability (by default the predicted class) with
  respect to the token embeddings, from an all-zero embedding baseline, summed over the embedding
  dimension. Signed: positive scores support the label. Works on any family that accepts
  ``inputs_embeds``.
- ``attention``: raw attention. For models with attention pooling (the RNN family) the pooling
  weights; for self-attention models the last layer's attention, heads averaged, over real rows.
- ``ngram``: for a from-scratch transformer with an n-gram branch (the ``base`` preset, a "wide and
  deep" model, Cheng et al., 2016), that linear branch's exact share of the predicted class's logit,
  per token: the word's weight for the class, plus half of each neighbouring pair's, each minus its
  mean over the classes (softmax ignores what all classes share). Gradients do not see this branch
  (it reads ids, not embeddings), so the explanation says so in its ``notes``.

Which label: any label can be explained (``label=``); gradients and the n-gram part are then taken
for that label's own score, while rollout and attention do not depend on the label. A multi-label
model scores each label with its own sigmoid, so each label it predicts has an explanation of its
own (``explain_labels``); by default a single-label model's is its predicted class.

Special tokens ([CLS], [SEP], padding, unknown pieces: whatever the tokenizer marks as special)
stay in ``tokens`` with ``special`` flagging them; displays leave them out unless asked, since
rollout and attention pile weight on them (Clark et al., 2019, "What Does BERT Look At?") and
they say nothing about the text.

Hugging Face models compute attention with SDPA by default, which returns no weights; they are
switched to eager attention for the duration of an explanation and switched back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .inference import sigmoid
from .tokenizers import Tokenizer

log = logging.getLogger(__name__)

METHODS = ("rollout", "gradient", "attention", "ngram")
DEFAULT_METHODS = ("rollout", "gradient", "ngram")  # ngram only where the model has the branch


@dataclass
class Explanation:
    """One text's explanation. ``importance`` maps a method to one score per entry of ``tokens``;
    ``attentions`` is layers x heads x T x T (rows = queries) for models with self-attention;
    ``special`` is True for the tokenizer's special tokens; ``notes`` say what the scores leave out.
    ``label`` is the label explained; ``predicted`` what the model predicts for the text (its class,
    or a multi-label model's labels at their thresholds, possibly none), which need not include it."""

    text: str
    tokens: list[str]
    label: str
    probabilities: dict[str, float]
    importance: dict[str, list[float]]
    attentions: list[list[list[list[float]]]] | None
    special: list[bool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    multi_label: bool = False

    @property
    def is_predicted(self) -> bool:
        """Whether the label explained is one the model predicts for the text."""
        return self.label in self.predicted

    def shown(self, include_special: bool = False) -> list[int]:
        """Positions a display shows: all with ``include_special``, else those not special."""
        flags = self.special or [False] * len(self.tokens)
        return [i for i, s in enumerate(flags) if include_special or not s]

    def top_tokens(self, method: str, k: int = 1, include_special: bool = False) -> list[tuple[str, float]]:
        """The ``k`` tokens with the highest ``method`` score, special tokens left out unless asked."""
        scores = self.importance[method]
        order = sorted(self.shown(include_special), key=lambda i: -scores[i])
        return [(self.tokens[i], scores[i]) for i in order[:k]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Explainable(Protocol):
    """What an explanation needs of a classifier: the model, its tokenizer, the class names in
    logit order, the temperature that calibrates its probabilities and the device the model is on.
    ``predict.Classifier`` is one; this module does not import it, so that it stays below
    prediction in the layering and can explain any model that has these. A multi-label model
    also has ``multi_label``, ``label_temperatures`` (one per label) and ``thresholds`` (with
    ``per_label``), read where present."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def labels(self) -> list[str]: ...

    @property
    def temperature(self) -> float: ...

    @property
    def device(self) -> torch.device: ...


# -- attention rollout ----------------------------------------------------------------------------


def rollout_matrix(attentions: Sequence[torch.Tensor], keep: torch.Tensor | None = None) -> torch.Tensor:
    """Attention rollout of one example. ``attentions``: one (H, T, T) tensor per layer, first
    layer first; ``keep``: (T,) bool, True for real tokens. Returns R (T, T) where row i says how
    much of output position i flows from each input token; padded columns are zero."""
    if not attentions:
        raise ValueError("attention rollout needs at least one layer of attention weights")
    T = attentions[0].shape[-1]
    eye = torch.eye(T, dtype=torch.float64, device=attentions[0].device)
    if keep is not None:
        eye = torch.diag(keep.to(eye.dtype))  # padding keeps no residual weight of its own
    rollout = eye.clone()
    for layer in attentions:
        a = layer.to(torch.float64).mean(0) + eye  # (T, T): heads averaged, plus the residual
        a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)
        rollout = a @ rollout  # later layers apply on top of earlier ones
    return rollout


def rollout_importance(
    attentions: Sequence[torch.Tensor], keep: torch.Tensor | None = None, pooling: str = "mean"
) -> torch.Tensor:
    """One score per token (T,), summing to 1 over real tokens: the rollout rows that feed the
    pooled output (mean over real rows, or row 0 for ``pooling="cls"``)."""
    r = rollout_matrix(attentions, keep)
    if pooling == "cls":
        return r[0]
    if keep is None:
        return r.mean(0)
    k = keep.to(r.dtype)
    return (r * k[:, None]).sum(0) / k.sum().clamp(min=1.0)


# -- integrated gradients -------------------------------------------------------------------------


def integrated_gradients(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    target: int,
    steps: int = 32,
    temperature: float = 1.0,
    chunk: int = 16,
    sigmoid: bool = False,
) -> torch.Tensor:
    """Integrated gradients of ``softmax(logits / temperature)[target]`` (with ``sigmoid``, of a
    multi-label model's ``sigmoid(logits[target] / temperature)``) for one example
    (input_ids, attention_mask: (1, T)) with respect to its token embeddings, from a zero
    baseline, midpoint Riemann sum over ``steps``. Returns (T,) scores that sum to about
    p(target | text) - p(target | zero embeddings)."""
    emb_layer = model.get_input_embeddings()  # type: ignore[operator]
    with torch.no_grad():
        emb = emb_layer(input_ids).detach().float()  # (1, T, E)
    base = torch.zeros_like(emb)
    alphas = (torch.arange(steps, dtype=emb.dtype, device=emb.device) + 0.5) / steps  # (S,)
    total = torch.zeros_like(emb[0])  # (T, E)
    param_dtype = next(model.parameters()).dtype
    for start in range(0, steps, chunk):
        a = alphas[start : start + chunk]
        path = (base + a[:, None, None] * (emb - base)).to(param_dtype).requires_grad_(True)  # (S, T, E)
        mask = attention_mask.expand(len(a), -1)
        # A from-scratch model's n-gram branch reads the ids, not embeddings: it stays as it is
        # along the path, so the scores attribute the transformer's part of the prediction.
        ids = input_ids.expand(len(a), -1) if getattr(model, "ngrams", None) is not None else None
        with torch.enable_grad(), _no_cudnn_rnn():
            logits = model(input_ids=ids, attention_mask=mask, inputs_embeds=path).logits  # (S, C)
            z = logits.float() / temperature
            prob = (z[:, target].sigmoid() if sigmoid else z.softmax(-1)[:, target]).sum()
            (grad,) = torch.autograd.grad(prob, path)
        total += grad.float().sum(0)
    return ((emb[0] - base[0]) * total / steps).sum(-1)  # (T,)


@contextlib.contextmanager
def _no_cudnn_rnn() -> Iterator[None]:
    # cuDNN refuses RNN backward passes in eval mode; the native kernels do not.
    with torch.backends.cudnn.flags(enabled=False):
        yield


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch Hugging Face sub-models to eager attention (the only implementation that returns
    weights) for the duration of the block, then restore what they used."""
    changed: list[tuple[Any, str]] = []
    for m in model.modules():
        cfg = getattr(m, "config", None)
        impl = getattr(cfg, "_attn_implementation", None)
        if impl is None or impl == "eager":
            continue
        setter = getattr(m, "set_attn_implementation", None)
        try:
            if callable(setter):
                setter("eager")
            else:
                cfg._attn_implementation = "eager"  # type: ignore[union-attr]
            changed.append((m, impl))
        except (ValueError, AttributeError) as e:  # e.g. a model with no eager path
            log.warning("could not switch %s to eager attention: %s", type(m).__name__, e)
    try:
        yield
    finally:
        for m, impl in changed:
            setter = getattr(m, "set_attn_implementation", None)
            if callable(setter):
                setter(impl)
            else:
                m.config._attn_implementation = impl


# -- words ----------------------------------------------------------------------------------------

_WORD_START = ("\u2581", "\u0120")  # SentencePiece "▁" and byte-level BPE "Ġ" mark a word's start
_SPECIAL = ("[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "[UNK]", "<unk>")


def word_groups(tokens: Sequence[str], special: Sequence[bool] | None = None) -> list[list[int]]:
    """Group subword positions into words: WordPiece continuations start with ``##``; with
    SentencePiece or byte-level BPE tokens, a piece without a word-start mark continues the
    previous word. Special tokens (``special``, or without it the usual names) stay on their own."""
    flags = list(special) if special is not None else [t in _SPECIAL for t in tokens]
    marked = any(t.startswith(_WORD_START) for t in tokens)
    groups: list[list[int]] = []
    for i, t in enumerate(tokens):
        continues = t.startswith("##") if not marked else not t.startswith(_WORD_START)
        if groups and continues and not flags[i] and not flags[groups[-1][-1]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _word_text(tokens: Sequence[str], group: list[int]) -> str:
    out = []
    for i in group:
        t = tokens[i]
        if t.startswith("##"):
            t = t[2:]
        elif t.startswith(_WORD_START):
            t = t[1:]
        out.append(t)
    return "".join(out)


def merge_words(
    tokens: list[str],
    importance: dict[str, np.ndarray],
    attentions: np.ndarray | None,
    special: Sequence[bool] | None = None,
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray | None]:
    """Merge subword tokens into words: scores of a word's pieces are summed; attention *to* a
    word is summed over its pieces and attention *from* a word averaged, so rows still sum to 1
    (as in Clark et al., 2019, "What Does BERT Look At?")."""
    groups = word_groups(tokens, special)
    words = [_word_text(tokens, g) for g in groups]
    merged = {m: np.array([s[g].sum() for g in groups]) for m, s in importance.items()}
    if attentions is not None:
        L, H, T, _ = attentions.shape
        P = np.zeros((T, len(groups)))  # (T, W): piece -> word
        for w, g in enumerate(groups):
            P[g, w] = 1.0
        avg = P / P.sum(0, keepdims=True)  # column-normalised, to average rows
        attentions = np.einsum("tw,lhts,sv->lhwv", avg, attentions, P)  # (L, H, W, W)
    return words, merged, attentions


# -- special tokens ------------------------------------------------------------------------------


def special_ids(tokenizer: Any) -> set[int]:
    """The ids the tokenizer marks as special: a Hugging Face tokenizer's ``all_special_ids``, a
    ``tokenizers`` vocabulary's special added tokens ([PAD], [UNK] of the trained WordPiece), and the
    padding id. The word vectorizer's unknown id is not special: its token is the word itself."""
    ids = {int(tokenizer.pad_id)} if getattr(tokenizer, "pad_id", None) is not None else set()
    for owner in (tokenizer, *vars(tokenizer).values()):
        listed = getattr(owner, "all_special_ids", None)
        if isinstance(listed, (list, tuple, set)):
            ids.update(int(i) for i in listed)
        added = getattr(owner, "get_added_tokens_decoder", None)
        if callable(added) and not isinstance(listed, (list, tuple, set)):
            ids.update(int(i) for i, tok in added().items() if getattr(tok, "special", False))
    return ids


# -- the n-gram branch ----------------------------------------------------------------------------


def ngram_scores(branch: Any, input_ids: torch.Tensor, target: int) -> torch.Tensor:
    """Per-token share of an n-gram branch's logit for ``target`` (input_ids: (1, T), no padding),
    centred over the classes: the word's weight plus half of each neighbouring pair's. Exact: the
    scores sum to the branch's ``logits[target] - logits.mean()``. Follows ``NgramBranch.forward``."""
    ids = input_ids[0]  # (T,)
    T = ids.shape[0]

    def centred(w: torch.Tensor, n: int) -> torch.Tensor:  # (N, C) -> (N,)
        return float(branch.scale) * (w[:, target] - w.mean(-1)) / max(n, 1) ** 0.5

    scores = centred(branch.words(ids).float(), T)  # (T,)
    if T > 1 and branch.pairs is not None:
        pairs = (ids[:-1] * branch.PAIR_PRIME + ids[1:]) % branch.buckets  # (T-1,)
        half = centred(branch.pairs(pairs).float(), T - 1) / 2
        scores[:-1] += half
        scores[1:] += half
    return scores


def _ngram_note(branch_part: float, total: float) -> str:
    return (
        "This model adds an n-gram branch (a linear classifier over words and word pairs) to the "
        "transformer's logits. Gradients and attention explain only the transformer part; the 'ngram' "
        "scores are the branch's own part, word by word. Of the explained label's logit margin "
        f"(over the mean of the classes), {total:.3g}, the n-gram branch gives {branch_part:.3g} and the "
        f"transformer {total - branch_part:.3g}."
    )


# -- the whole explanation ------------------------------------------------------------------------


def _pooling(model: nn.Module) -> str:
    """``cls`` for models that classify from the first token (the pretrained family's ``cls`` and
    ``pooler`` pooling), else ``mean`` (the from-scratch transformer's masked mean)."""
    pooling = getattr(model, "pooling", None) or getattr(getattr(model, "config", None), "pooling", None)
    return "cls" if pooling in ("cls", "pooler") else "mean"


def token_strings(tokenizer: Any, text: str, ids: np.ndarray) -> list[str]:
    """The token strings for ``ids`` (the ids ``tokenizer.encode`` gave for ``text``)."""
    toks = list(tokenizer.tokens(text))
    if len(toks) == len(ids):
        return toks
    # Tokenizers that add special tokens ([CLS], [SEP]) in encode() may leave them out of tokens();
    # then ask the tokenizer, or the Hugging Face tokenizer it wraps, to name each id.
    for owner in (tokenizer, *vars(tokenizer).values()):
        convert = getattr(owner, "convert_ids_to_tokens", None)
        if callable(convert):
            return [str(t) for t in convert([int(i) for i in ids])]
        id_to_token = getattr(owner, "id_to_token", None)
        if callable(id_to_token):
            return [str(id_to_token(int(i))) for i in ids]
    raise ValueError(
        f"tokenizer {type(tokenizer).__name__}: tokens() gave {len(toks)} tokens but encode() gave {len(ids)} ids"
    )


def label_index(labels: Sequence[str], label: str) -> int:
    """The position of ``label`` in ``labels``; a ValueError listing ``labels`` when it is not one."""
    try:
        return list(labels).index(label)
    except ValueError:
        raise ValueError(f"unknown label {label!r}: this model's labels are {', '.join(labels)}") from None


def explain(
    clf: Explainable,
    text: str,
    methods: Sequence[str] = DEFAULT_METHODS,
    words: bool = False,
    steps: int = 32,
    label: str | None = None,
) -> Explanation:
    """Explain ``clf``'s score of ``label`` for ``text`` (see the module docstring for the
    methods); without ``label``, of its highest-scoring label (a single-label model's predicted
    class). An unknown ``label`` is a ValueError that lists the model's labels.

    For models without self-attention (the RNN family), ``rollout`` is replaced by ``attention``
    (the pooling weights); methods a model cannot support are left out with a log message."""
    return _explain(clf, text, methods, words, steps, [label] if label is not None else "top")[0]


def explain_labels(
    clf: Explainable,
    text: str,
    labels: Sequence[str] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    words: bool = False,
    steps: int = 32,
) -> list[Explanation]:
    """One explanation per label of ``labels`` (any of the model's labels, predicted or not), in
    the order given; without ``labels``, per label the model predicts: a single-label model's
    class, a multi-label model's labels at or above their thresholds (when none is, its
    highest-scoring label, with a note saying so). The forward pass and the label-independent
    scores (rollout, attention) are computed once."""
    if labels is not None and not labels:
        raise ValueError("no labels to explain: name at least one, or none for the predicted ones")
    return _explain(clf, text, methods, words, steps, list(labels) if labels is not None else "predicted")


def _explain(
    clf: Explainable,
    text: str,
    methods: Sequence[str],
    words: bool,
    steps: int,
    which: list[str] | str,
) -> list[Explanation]:
    """The explanations of ``which``: a list of label names, ``"top"`` (the highest-scoring label)
    or ``"predicted"`` (each predicted label)."""
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}, not str")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown explanation method(s) {unknown}; choose from {list(METHODS)}")
    named = [label_index(clf.labels, lbl) for lbl in which] if isinstance(which, list) else None
    model, device = clf.model, clf.device
    ids = clf.tokenizer.encode([text])[0]
    tokens = token_strings(clf.tokenizer, text, ids)
    if tokens == token_strings(clf.tokenizer, "", clf.tokenizer.encode([""])[0]):
        # Tokenizers give an empty text a placeholder token; a text that tokenizes like the empty
        # text ("", "!!!") has nothing to explain.
        raise ValueError("text has no tokens to explain")
    specials = special_ids(clf.tokenizer)
    special = [int(i) in specials for i in ids]
    input_ids = torch.as_tensor(ids, dtype=torch.long, device=device)[None]  # (1, T)
    mask = torch.ones_like(input_ids)
    was_training = model.training
    model.eval()
    results: list[tuple[int, dict[str, np.ndarray], list[str]]] = []
    try:
        with torch.no_grad(), eager_attention(model):
            out = model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
        logits = out.logits[0].float()  # (C,)
        # A multi-label model scores each label on its own (a sigmoid at its own temperature), and
        # predicts those at or above their thresholds; a softmax model predicts its top class.
        multi = bool(getattr(clf, "multi_label", False))
        if multi:
            temps = torch.as_tensor(
                np.broadcast_to(np.asarray(getattr(clf, "label_temperatures", 1.0), dtype=np.float32), logits.shape).copy(),
                device=logits.device,
            )
            proba = (logits / temps).sigmoid()
            # Decided as predict decides: float64 sigmoid rounded to float32, against the thresholds.
            decided = sigmoid(logits.cpu().numpy(), temps.cpu().numpy()).astype(np.float32)
            cut = np.asarray(getattr(getattr(clf, "thresholds", None), "per_label", 0.5), dtype=np.float64)
            predicted = [int(j) for j in np.flatnonzero(decided >= cut)]
        else:
            proba = (logits / clf.temperature).softmax(-1)
            predicted = [int(proba.argmax())]
        top = int(proba.argmax())
        shared_notes: list[str] = []
        if named is not None:
            targets = named
        elif which == "predicted" and predicted:
            targets = predicted
        else:
            targets = [top]
            if which == "predicted":
                shared_notes.append(
                    f"No label reaches its decision threshold for this text; the highest-scoring label, "
                    f"{clf.labels[top]}, is explained instead."
                )
        layers = [a[0].detach().float().cpu() for a in (out.attentions or ()) if a is not None]  # (H, T, T) each
        pooling = _pooling(model)
        pooled_w = getattr(out, "pooling_weights", None)
        branch = getattr(model, "ngrams", None)
        shared: dict[str, np.ndarray] = {}  # label-independent scores, computed once
        for method in dict.fromkeys(methods):
            if method == "rollout" and not layers:
                if pooled_w is not None:
                    method = "attention"
                else:
                    log.info("%s returns no attention weights; skipping rollout", type(model).__name__)
                    continue
            if method == "rollout":
                shared[method] = rollout_importance(layers, pooling=pooling).numpy()
            elif method == "attention":
                if pooled_w is not None:
                    shared[method] = pooled_w[0].detach().float().cpu().numpy()
                elif layers:
                    last = layers[-1].mean(0)  # (T, T)
                    shared[method] = (last[0] if pooling == "cls" else last.mean(0)).numpy()
                else:
                    log.info("%s returns no attention weights; skipping attention", type(model).__name__)
            elif method == "ngram" and branch is None:  # worth a word only when asked for, not as one of the defaults
                level = logging.DEBUG if tuple(methods) == DEFAULT_METHODS else logging.INFO
                log.log(level, "%s has no n-gram branch; skipping ngram", type(model).__name__)
        if branch is not None:
            with torch.no_grad():
                part = branch(input_ids, mask.bool())[0].float()  # (C,)
        for target in targets:
            target_t = float(temps[target]) if multi else clf.temperature
            notes = list(shared_notes)
            if branch is not None:
                notes.append(_ngram_note(float(part[target] - part.mean()), float(logits[target] - logits.mean())))
            scores: dict[str, np.ndarray] = {}
            for method in dict.fromkeys(methods):
                if method == "rollout" and "rollout" not in shared and "attention" in shared:
                    method = "attention"
                if method in shared:
                    scores[method] = shared[method]
                elif method == "gradient":
                    scores[method] = integrated_gradients(
                        model, input_ids, mask, target, steps=steps, temperature=target_t, sigmoid=multi
                    ).detach().cpu().numpy()
                elif method == "ngram" and branch is not None:
                    with torch.no_grad():
                        scores[method] = ngram_scores(branch, input_ids, target).cpu().numpy()
            results.append((target, scores, notes))
    finally:
        model.train(was_training)
    att = np.stack([a.numpy() for a in layers]) if layers else None  # (L, H, T, T)
    flags = special
    shown_tokens = tokens
    if words:
        groups = word_groups(tokens, special)
        flags = [all(special[i] for i in g) for g in groups]
    probabilities = {lbl: float(p) for lbl, p in zip(clf.labels, proba.cpu().tolist())}
    attentions = None
    explanations = []
    for target, scores, notes in results:
        merged_att = att
        if words:
            shown_tokens, scores, merged_att = merge_words(tokens, scores, att, special)
        if merged_att is not None and attentions is None:
            attentions = np.round(merged_att, 6).tolist()
        explanations.append(Explanation(
            text=text,
            tokens=list(shown_tokens),
            label=clf.labels[target],
            probabilities=dict(probabilities),
            importance={m: [float(x) for x in s] for m, s in scores.items()},
            attentions=attentions,
            special=list(flags),
            notes=notes,
            predicted=[clf.labels[j] for j in predicted],
            multi_label=multi,
        ))
    return explanations


__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "Explainable",
    "Explanation",
    "eager_attention",
    "explain",
    "explain_labels",
    "integrated_gradients",
    "label_index",
    "merge_words",
    "ngram_scores",
    "rollout_importance",
    "rollout_matrix",
    "special_ids",
    "word_groups",
]
