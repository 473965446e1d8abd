"""Model families. Each takes the same batch (``input_ids``, ``attention_mask``, ``labels``) and
returns a ``ClassifierOutput``, so training, evaluation, prediction and explanation are shared."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..config import MODEL_CONFIGS, ConfigError, from_dict
from .output import ClassifierOutput
from .pretrained import PretrainedClassifier
from .rnn import RNNAttentionClassifier
from .transformer import TransformerClassifier

# Family name -> model class, built as ``cls(config)``; its config class is in config.MODEL_CONFIGS.
# A class with a ``from_source(model_config, tokenizer_config) -> (model, tokenizer)`` classmethod
# brings pretrained weights and its own tokenizer, so training loads them instead of fitting a
# tokenizer (see training.fit).
FAMILIES: dict[str, type[nn.Module]] = {
    "transformer": TransformerClassifier,
    "rnn-attention": RNNAttentionClassifier,
    "hf": PretrainedClassifier,
}


def build_model(family: str, config: Any) -> nn.Module:
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[family](config)


def model_config_from_dict(family: str, data: dict[str, Any]) -> Any:
    if family not in MODEL_CONFIGS:
        raise ConfigError(f"unknown model family {family!r}; choose one of {sorted(MODEL_CONFIGS)}")
    return from_dict(MODEL_CONFIGS[family], data, f"{family} model config")


__all__ = [
    "FAMILIES",
    "ClassifierOutput",
    "PretrainedClassifier",
    "RNNAttentionClassifier",
    "TransformerClassifier",
    "build_model",
    "model_config_from_dict",
]
