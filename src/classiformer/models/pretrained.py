"""A pretrained Hugging Face encoder (BERT and friends, Devlin et al., 2019) as a classifier.

Three modes (``PretrainedConfig.mode``):

- ``finetune``: the architecture's own ``AutoModelForSequenceClassification`` (for BERT: encoder,
  pooler, dropout, ``Linear(hidden, num_labels)``) trains end to end. Its checkpoint is a valid
  Hugging Face folder, so ``AutoModelForSequenceClassification.from_pretrained(path)`` loads it.
- ``partial``: the same model with everything below the top ``unfreeze_top`` encoder layers frozen.
- ``frozen``: ``AutoModel`` as a fixed feature extractor (always in eval mode, weights never change)
  with pooling (``cls``, ``pooler`` or masked ``mean``), dropout and a linear head. Training and
  validation batches carry example indices, so each example's pooled features are computed once per
  run and cached (feature_cache.py; in memory, or memory-mapped for big sets): every epoch after the
  first costs only the head.

The model is built by :meth:`PretrainedClassifier.from_source` (pretrained weights + tokenizer)
or by ``load_weights`` from a checkpoint folder; ``__init__`` alone holds no weights yet.
"""

from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import ConfigError, PretrainedConfig, TokenizerConfig
from ..hub import ModelSourceError, resolve_source
from .feature_cache import FeatureCache
from .output import ClassifierOutput, masked_mean

log = logging.getLogger(__name__)

ENCODER_DIR = "encoder"  # frozen checkpoints: the (unchanged) encoder as a Hugging Face folder
HEAD_FILE = "head.safetensors"  # frozen checkpoints: the linear head


def _encoder_layers(base: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a Hugging Face base model (BERT, RoBERTa, DistilBERT,
    ELECTRA, ...)."""
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "layer", "h"):
        obj: Any = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ConfigError(f"cannot find the encoder layers of {type(base).__name__}; mode 'partial' does not support it")


class PretrainedClassifier(nn.Module):
    family = "hf"
    hf: Any  # the Hugging Face classifier, or the encoder when frozen (built by _build)
    head: Any  # frozen mode's linear head
    # Inference batches on a CPU hold at most this many padded tokens (see inference.batch_tokens).
    cpu_batch_tokens = 4096

    def __init__(self, cfg: PretrainedConfig) -> None:
        super().__init__()
        self.config = cfg
        self.drop = nn.Dropout(cfg.dropout)
        self.hf = nn.Identity()
        self.head = nn.Identity()
        self._caches: dict[str, FeatureCache] = {}  # frozen mode: pooled features per dataset
        self._new_head = False  # the head was drawn here, not loaded (see fresh_output_bias)

    # -- building --------------------------------------------------------------------------------

    @classmethod
    def from_source(cls, cfg: PretrainedConfig, tok_cfg: TokenizerConfig) -> tuple[PretrainedClassifier, Any]:
        """Pretrained weights from ``cfg.source`` with a fresh head, and the source's tokenizer."""
        from ..tokenizers.hf import HFTokenizer

        source = resolve_source(cfg.source)
        model = cls(cfg)
        model._build(source, fresh_head=True)
        limit = int(getattr(model.encoder.config, "max_position_embeddings", 0) or 0) or None
        try:
            tokenizer = HFTokenizer.from_pretrained(source, tok_cfg.max_length, tok_cfg.long_text, limit)
        except OSError as e:
            raise ModelSourceError(f"{source}: cannot load the tokenizer ({str(e).splitlines()[0]})") from None
        if tokenizer.tok.model_max_length < tok_cfg.max_length:
            raise ConfigError(
                f"max_length {tok_cfg.max_length} exceeds {source}'s limit of {tokenizer.tok.model_max_length} tokens"
            )
        return model, tokenizer

    def _build(self, source: str | Path, fresh_head: bool) -> None:
        from transformers import AutoModel, AutoModelForSequenceClassification

        cfg = self.config
        labels = cfg.labels or [str(i) for i in range(cfg.num_labels)]
        try:
            if cfg.mode == "frozen":
                self.hf = _from_pretrained(AutoModel, source)
                hidden = int(self.hf.config.hidden_size)
                self.head = nn.Linear(hidden, cfg.num_labels)
                self._new_head = fresh_head
                if cfg.pooling == "pooler" and getattr(self.hf, "pooler", None) is None:
                    raise ConfigError(f"{source}: this encoder has no pooler; use pooling 'cls' or 'mean'")
            else:
                kwargs: dict[str, Any] = {}
                if cfg.attention_dropout is not None:
                    kwargs[_attention_dropout_key(source)] = cfg.attention_dropout
                source_labels = _head_labels(source) if fresh_head else None
                if fresh_head:
                    kwargs.update(
                        num_labels=cfg.num_labels, id2label=dict(enumerate(labels)),
                        label2id={lbl: i for i, lbl in enumerate(labels)}, ignore_mismatched_sizes=True,
                    )
                self.hf = _from_pretrained(AutoModelForSequenceClassification, source, **kwargs)
                self.hf.config.problem_type = cfg.problem_type  # written by save_pretrained
                # A source that is itself a classifier keeps its head only for the very same labels
                # (continued training); Hugging Face would keep it for any labels of the same count.
                if source_labels is not None and source_labels != labels:
                    log.info("%s: its head predicts %s; a new head for %s", source, source_labels, labels)
                    self._reset_head()
                self._new_head = fresh_head and source_labels != labels
        except OSError as e:
            raise ModelSourceError(f"{source}: cannot load model weights ({str(e).splitlines()[0]})") from None
        self._freeze()

    def fresh_output_bias(self) -> torch.Tensor | None:
        """The bias of the layer that gives the logits, where the head was drawn for this run (None
        where it was loaded: a checkpoint, or a source classifier kept for the same labels)."""
        if not self._new_head:
            return None
        if self.config.mode == "frozen":
            return cast(nn.Linear, self.head).bias
        outputs = [m for m in self._classifier_modules()
                   if isinstance(m, nn.Linear) and m.out_features == self.config.num_labels]
        return outputs[-1].bias if outputs else None

    def _classifier_modules(self) -> list[nn.Module]:
        """Every module of the Hugging Face classifier outside the encoder body (BERT: dropout and
        ``classifier``; RoBERTa: ``classifier.dense`` and ``out_proj``; DistilBERT:
        ``pre_classifier`` and ``classifier``): the head a fine-tuning run draws afresh."""
        return [m for child in self.hf.children() if child is not self.hf.base_model for m in child.modules()]

    def head_parameters(self) -> list[nn.Parameter]:
        """The classifier outside the encoder body (``train.head_lr`` applies to it): the layers
        :meth:`_reset_head` draws (BERT: ``classifier``; not the pretrained pooler), or the frozen
        mode's linear head."""
        if self.config.mode == "frozen":
            return list(self.head.parameters())
        return [p for m in self._classifier_modules() for p in m.parameters(recurse=False)]

    def _reset_head(self) -> None:
        """New weights for every part of the Hugging Face classifier outside the encoder body
        (:meth:`_classifier_modules`), drawn as the architecture draws a fresh head. Done by hand:
        Transformers does not re-initialise weights it has loaded."""
        std = float(getattr(self.hf.config, "initializer_range", 0.02))
        with torch.no_grad():
            for module in self._classifier_modules():
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, std)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.reset_parameters()

    def _freeze(self) -> None:
        cfg = self.config
        if cfg.mode == "frozen":
            self.hf.requires_grad_(False)
            self.hf.eval()
        elif cfg.mode == "partial":
            self.encoder.requires_grad_(False)
            layers = _encoder_layers(self.encoder)
            if cfg.unfreeze_top > len(layers):
                raise ConfigError(f"unfreeze_top {cfg.unfreeze_top} exceeds the encoder's {len(layers)} layers")
            for layer in layers[len(layers) - cfg.unfreeze_top :]:
                layer.requires_grad_(True)
            pooler = getattr(self.encoder, "pooler", None)
            if pooler is not None:
                pooler.requires_grad_(True)

    @property
    def encoder(self) -> Any:
        """The transformer body (``BertModel`` for BERT)."""
        return self.hf if self.config.mode == "frozen" else self.hf.base_model

    def parameter_depths(self) -> tuple[dict[int, int], int]:
        """Depth of each parameter (by ``id``) for layer-wise learning rates: the embeddings 0,
        encoder layer i at i + 1, everything above (pooler, head) at the top, which is returned too."""
        layers = _encoder_layers(self.encoder)
        top = len(layers) + 1
        depths = {id(p): top for p in self.parameters()}
        embeddings = getattr(self.encoder, "embeddings", None) or self.get_input_embeddings()
        depths.update({id(p): 0 for p in embeddings.parameters()})
        for i, layer in enumerate(layers):
            depths.update({id(p): i + 1 for p in layer.parameters()})
        return depths, top

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        if self.config.mode == "frozen":
            self.hf.eval()  # no dropout inside a fixed feature extractor: cached == recomputed
        return self

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    # -- checkpoints (called by checkpoint.save_checkpoint / load_checkpoint) ---------------------

    def save_weights(self, folder: Path, tokenizer: Any = None) -> None:
        """The Hugging Face folder (the whole model, or the frozen encoder in ``encoder/`` beside the
        head) with the tokenizer's files next to its weights, so that ``AutoTokenizer``, ``pipeline``
        and ``--model FOLDER`` find the vocabulary the model was trained with."""
        hf_folder = folder / ENCODER_DIR if self.config.mode == "frozen" else folder
        self.hf.save_pretrained(str(hf_folder))
        if self.config.mode == "frozen":
            state = {k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
            save_file(state, str(folder / HEAD_FILE), metadata={"format": "pt"})
        hf_tokenizer = getattr(tokenizer, "tok", None)
        if hf_tokenizer is not None:
            hf_tokenizer.save_pretrained(str(hf_folder))

    def load_weights(self, folder: Path) -> None:
        folder = Path(folder)
        if self.config.mode == "frozen":
            if not (folder / ENCODER_DIR / "config.json").exists() or not (folder / HEAD_FILE).exists():
                raise ModelSourceError(f"{folder}: frozen-encoder checkpoint lacks {ENCODER_DIR}/ or {HEAD_FILE}")
            self._build(folder / ENCODER_DIR, fresh_head=False)
            self.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
        else:
            if not (folder / "config.json").exists():
                raise ModelSourceError(f"{folder}: fine-tuned checkpoint lacks config.json")
            self._build(folder, fresh_head=False)
        self.clear_feature_cache()

    # -- forward ---------------------------------------------------------------------------------

    # DistributedDataParallel must look for parameters a step leaves without gradient: the
    # encoder's pooler runs but feeds nothing with cls or mean pooling, and an unused trainable
    # parameter would otherwise fail the next step's gradient reduction.
    ddp_find_unused_parameters = True

    @property
    def caches_features(self) -> bool:
        """Frozen mode caches pooled features per example (see :meth:`prepare_feature_cache`)."""
        return self.config.mode == "frozen"

    def prepare_feature_cache(self, key: str, size: int, folder: Path | None = None) -> None:
        """Frozen mode: cache the pooled features of dataset ``key`` (``size`` examples), in memory
        or, when they would take more than ``config.feature_cache_mb`` (or always, with a limit of
        0), in a memory-mapped file in ``folder``. Other modes: nothing to cache."""
        if self.config.mode != "frozen":
            return
        dim = int(self.hf.config.hidden_size)
        mb = size * dim * 4 / 2**20
        on_disk = folder is not None and mb > self.config.feature_cache_mb
        if key in self._caches:
            self._caches.pop(key).close()
        self._caches[key] = FeatureCache(dim, size, folder / f"{key}.npy" if on_disk and folder else None)
        log.info("feature cache %r: %d examples, %.0f MB %s", key, size, mb, "memory-mapped" if on_disk else "in memory")

    def feature_cache(self, key: str) -> FeatureCache | None:
        """The cache of dataset ``key``, if any (the trainer shares rows between ranks through it)."""
        return self._caches.get(key)

    def clear_feature_cache(self) -> None:
        for cache in self._caches.values():
            cache.close()
        self._caches = {}

    def _pool(self, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encoder output -> (B, H)."""
        if self.config.pooling == "pooler":
            return out.pooler_output
        x = out.last_hidden_state  # (B, T, H)
        if self.config.pooling == "cls":
            return x[:, 0]
        return masked_mean(x, attention_mask)

    def _features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, index: torch.Tensor, key: str) -> torch.Tensor:
        """Pooled features (B, H) of the examples ``index`` of dataset ``key``, computed at most once."""
        if key not in self._caches:
            self._caches[key] = FeatureCache(int(self.hf.config.hidden_size))

        def compute(todo: torch.Tensor) -> torch.Tensor:
            keep = attention_mask[todo]
            longest = int(keep.sum(1).max())
            with torch.no_grad():
                out = self.hf(input_ids=input_ids[todo][:, :longest], attention_mask=keep[:, :longest])
                return self._pool(out, keep[:, :longest])

        return self._caches[key].lookup(index, attention_mask.sum(1), compute).to(input_ids.device)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        cache_key: str | None = None,
        **_: object,
    ) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) (or inputs_embeds (B, T, E)); labels, index: (B,).
        Returns logits (B, C) and, when asked, one (B, H, T, T) attention tensor per layer.
        Frozen mode caches pooled features by example ``index`` of dataset ``cache_key`` (default
        ``"train"`` while training; without a key, evaluation always recomputes)."""
        if attention_mask is None:
            ref = input_ids if input_ids is not None else inputs_embeds
            assert ref is not None, "pass input_ids or inputs_embeds"
            attention_mask = torch.ones(ref.shape[:2], dtype=torch.long, device=ref.device)
        impl = getattr(self.hf.config, "_attn_implementation", None)
        if output_attentions and impl != "eager":
            self.hf.set_attn_implementation("eager")  # sdpa kernels do not return the weights
        try:
            attentions = None
            if self.config.mode == "frozen":
                key = cache_key or ("train" if self.training else None)
                if index is not None and key is not None and input_ids is not None and not output_attentions:
                    pooled = self._features(input_ids, attention_mask, index, key)
                else:
                    out = self.hf(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                  output_attentions=output_attentions)
                    pooled, attentions = self._pool(out, attention_mask), out.attentions
                logits = self.head(self.drop(pooled.to(self.head.weight.dtype)))  # (B, C)
            elif not output_attentions and input_ids is not None and inputs_embeds is None and self._cls_only_ok():
                logits = self._cls_only_logits(input_ids, attention_mask)
            else:
                out = self.hf(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                              output_attentions=output_attentions)
                logits, attentions = out.logits, out.attentions
        finally:
            if output_attentions and impl not in ("eager", None):
                self.hf.set_attn_implementation(impl)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, attentions=tuple(attentions) if output_attentions and attentions else None)

    def _cls_only_ok(self) -> bool:
        """Whether this model's logits depend on the last layer's first token alone and the layer
        is one :meth:`_cls_only_logits` knows (BERT's sequence classifier: pooler over [CLS])."""
        hf, base = self.hf, getattr(self.hf, "base_model", None)
        cfg: Any = getattr(hf, "config", None)
        return (
            type(hf).__name__ == "BertForSequenceClassification"
            and base is not None and _knows_bert_mask_helper(base)
            and getattr(base, "pooler", None) is not None
            and not cfg.is_decoder
            and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
            and cfg.num_hidden_layers > 0
        )

    def _cls_only_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) of BERT's sequence classifier, equal to the full forward pass but cheaper:
        the classifier reads only the [CLS] state of the last layer, so that layer computes keys
        and values for every token and the rest (query, attention, output projection, feed-forward)
        for [CLS] alone. The other tokens' outputs of that layer reach neither the logits nor the
        loss, so training takes this path too (same dropouts, same gradients). With 6 layers that
        saves about a seventh of the work."""
        base = self.hf.base_model
        h = base.embeddings(input_ids=input_ids)  # (B, T, H)
        mask = _bert_layer_mask(base, attention_mask, h)
        *lower, top = base.encoder.layer
        for layer in lower:
            h = layer(h, mask)
        att = top.attention.self
        B, T, _ = h.shape
        heads, d = att.num_attention_heads, att.attention_head_size
        q = att.query(h[:, :1]).view(B, 1, heads, d).transpose(1, 2)  # (B, heads, 1, d)
        k = att.key(h).view(B, T, heads, d).transpose(1, 2)  # (B, heads, T, d)
        v = att.value(h).view(B, T, heads, d).transpose(1, 2)
        key_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        drop = att.dropout.p if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=drop, scale=att.scaling)
        a = top.attention.output(a.transpose(1, 2).reshape(B, 1, heads * d), h[:, :1])  # (B, 1, H)
        cls = top.output(top.intermediate(a), a)
        return self.hf.classifier(self.hf.dropout(base.pooler(cls)))


_MASK_ARGUMENTS = ("attention_mask", "embedding_output", "encoder_attention_mask", "encoder_hidden_states",
                   "past_key_values", "cache", "position_ids")


def _mask_helper_parameters(base: Any) -> tuple[str, ...] | None:
    """The parameters of BERT's (private) mask helper, or None where the model has none."""
    helper = getattr(type(base), "_create_attention_masks", None)
    return None if helper is None else _parameters_of(helper)


@functools.cache
def _parameters_of(method: Any) -> tuple[str, ...]:
    # Once per transformers class: every forward pass asks (_cls_only_ok, then _bert_layer_mask).
    return tuple(inspect.signature(method).parameters)[1:]  # without self


def _knows_bert_mask_helper(base: Any) -> bool:
    """Whether BERT's mask helper exists and takes only parameters :func:`_bert_layer_mask` knows.
    Its parameters changed between transformers releases (``past_key_values`` became ``cache``,
    ``position_ids`` was added); with one this code does not know, the full forward pass runs
    instead of the [CLS]-only one rather than a guessed mask."""
    params = _mask_helper_parameters(base)
    return params is not None and all(p in _MASK_ARGUMENTS for p in params)


def _bert_layer_mask(base: Any, attention_mask: torch.Tensor, embeddings: torch.Tensor) -> Any:
    """The attention mask BERT's own forward pass hands its layers, built by BERT's own helper so it
    has the form the configured attention implementation expects; arguments go by name."""
    values = dict.fromkeys(_MASK_ARGUMENTS)
    values.update(attention_mask=attention_mask, embedding_output=embeddings)
    mask, _ = base._create_attention_masks(**{p: values[p] for p in _mask_helper_parameters(base) or ()})
    return mask


def _attention_dropout_key(source: str | Path) -> str:
    """The name of the attention-dropout rate in the configuration of the model at ``source``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(source))
    for key in ("attention_probs_dropout_prob", "attention_dropout"):  # BERT-likes; DistilBERT, BART, ...
        if hasattr(config, key):
            return key
    raise ConfigError(f"{source}: {type(config).__name__} has no attention-dropout setting; leave attention_dropout unset")


def _head_labels(source: str | Path) -> list[str] | None:
    """The labels of the classification head that ``source`` carries (a sequence classifier, e.g. a
    classiformer checkpoint or a fine-tuned hub model), or None for a bare encoder."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(source))
    if not any(str(a).endswith("ForSequenceClassification") for a in config.architectures or []):
        return None
    return [str(config.id2label[i]) for i in sorted(config.id2label)]


def _from_pretrained(auto_cls: Any, source: str | Path, **kwargs: Any) -> Any:
    """``auto_cls.from_pretrained`` with PyTorch's fused attention where the architecture has it."""
    try:
        return auto_cls.from_pretrained(str(source), attn_implementation="sdpa", **kwargs)
    except ValueError as e:
        if "sdpa" not in str(e).lower():
            raise
        return auto_cls.from_pretrained(str(source), **kwargs)
