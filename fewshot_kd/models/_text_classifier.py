"""``TextClassifier``: tokenizer, Hugging Face encoder, mean pooling, dropout, linear head."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.models._minilm import MINILM_SOURCE
from fewshot_kd.models._shared_tokenizer import SharesTokenizerOnCopy
from fewshot_kd.models._text_layers import encoder_layers

TextInputs = Any
"""``list[str]``, a tokenised batch (mapping with ``input_ids``), or an ``input_ids`` tensor."""


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


class TextClassifier(SharesTokenizerOnCopy, nn.Module):
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
        # the encoder's embeddings stay float under every quantization scheme, unlike the head
        return next(self.encoder.parameters()).device

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

