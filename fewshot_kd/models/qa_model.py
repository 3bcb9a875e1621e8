"""Extractive question answering models: a BERT-family encoder with a start/end span head.

Every model here is a Hugging Face ``AutoModelForQuestionAnswering`` (outputs carry
``start_logits`` and ``end_logits``, ``[N, L]``), so the packaged MiniLM, a tiny random BERT
and a user's fine-tuned folder are used, pruned and saved alike.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Sequence

import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.models._minilm import ATTENTION, _offline_error, load_tokenizer, quiet_transformers, resolve_source
from fewshot_kd.models._text_layers import keep_layers_, layer_indices


def qa_model(name_or_path: str | os.PathLike | None = None, download: bool = False) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)``: the packaged all-MiniLM-L6-v2 (``None``) or a local BERT-family
    folder with a span head. A folder holding a fine-tuned ``...ForQuestionAnswering`` keeps
    its head; an encoder-only one (the MiniLM) gets a fresh, randomly initialised head."""
    from transformers import AutoModelForQuestionAnswering

    loadable, _ = resolve_source(name_or_path)
    try:
        with quiet_transformers():
            model = AutoModelForQuestionAnswering.from_pretrained(
                loadable, local_files_only=not download, attn_implementation=ATTENTION)
    except OSError as err:
        raise _offline_error(loadable, download, err) from err
    return model, load_tokenizer(name_or_path, download=download)


def qa_model_from_config(config: Any) -> nn.Module:
    """A randomly initialised ``AutoModelForQuestionAnswering`` of a transformers config
    (for tests and students built from a description)."""
    from transformers import AutoModelForQuestionAnswering

    with quiet_transformers():
        return AutoModelForQuestionAnswering.from_config(config, attn_implementation=ATTENTION)


def qa_encoder(model: nn.Module) -> nn.Module:
    """The encoder inside a QA model (``model.bert``, ``model.roberta``, ...)."""
    prefix = getattr(model, "base_model_prefix", "")
    encoder = getattr(model, prefix, None) if prefix else None
    if encoder is None:
        raise UnsupportedLayerError(f"{type(model).__name__} has no encoder (base_model_prefix {prefix!r})")
    return encoder


def truncate_qa_layers(model: nn.Module, keep: Sequence[int] | str = "last 3") -> nn.Module:
    """A deep copy of a QA model keeping only the ``keep`` encoder blocks (``"last 3"``,
    ``"first 2"`` or indices), its embeddings and span head; ``model`` is left untouched."""
    clone = copy.deepcopy(model)
    encoder = qa_encoder(clone)
    keep_layers_(encoder, layer_indices(keep, encoder.config.num_hidden_layers))
    clone.config.num_hidden_layers = encoder.config.num_hidden_layers
    return clone
