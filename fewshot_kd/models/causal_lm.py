"""GPT-2-architecture causal language models: a small configuration, a DistilGPT-2-style
student built from a teacher (every other block), and any local Hugging Face causal-LM folder.

``transformers`` is imported inside the functions. Models use the eager attention, so
attention maps can be returned for distillation and pruning.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch.nn as nn

from fewshot_kd.errors import DataNotFoundError, UnsupportedLayerError
from fewshot_kd.models._minilm import ATTENTION, quiet_transformers
from fewshot_kd.models._text_layers import keep_layers_
from fewshot_kd.models.byte_tokenizer import BYTE_VOCAB_SIZE


def small_gpt2_config(vocab_size: int = BYTE_VOCAB_SIZE, n_positions: int = 256, n_embd: int = 256,
                      n_layer: int = 6, n_head: int = 8, dropout: float = 0.1) -> Any:
    """A ``GPT2Config`` for a small GPT-2 (default: byte vocabulary, 6 blocks, width 256)."""
    from transformers import GPT2Config

    if n_embd % n_head:
        raise ValueError(f"n_embd {n_embd} must be divisible by n_head {n_head}")
    return GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                      resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=0, eos_token_id=0)


def gpt2_lm(config: Any) -> nn.Module:
    """A randomly initialised ``GPT2LMHeadModel`` (eager attention) of ``config`` (a
    ``GPT2Config`` or keyword arguments of :func:`small_gpt2_config`)."""
    from transformers import GPT2LMHeadModel, PretrainedConfig

    if not isinstance(config, PretrainedConfig):
        config = small_gpt2_config(**dict(config))
    config._attn_implementation = ATTENTION
    with quiet_transformers():
        return GPT2LMHeadModel(config)


def gpt2_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a GPT-2 (``transformer.h``)."""
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if not isinstance(blocks, nn.ModuleList):
        raise UnsupportedLayerError(f"{type(model).__name__} has no transformer.h: not a GPT-2-architecture model")
    return blocks


def keep_blocks(teacher: nn.Module, indices: list[int]) -> nn.Module:
    """A deep copy of ``teacher`` holding only the blocks ``indices`` (renumbered, so the
    key-value cache of generation still lines up), with ``config.n_layer`` updated."""
    gpt2_blocks(teacher)  # a GPT-2, or the error that says it is not one
    return keep_layers_(copy.deepcopy(teacher), indices)  # config.num_hidden_layers is GPT-2's n_layer


def every_other_layer(teacher: nn.Module) -> nn.Module:
    """A DistilGPT-2-style student: the teacher's embeddings, final norm and head, and its
    blocks 0, 2, 4, ... (half the depth, rounded up), initialised from the teacher's weights."""
    return keep_blocks(teacher, list(range(0, len(gpt2_blocks(teacher)), 2)))


def load_causal_lm_folder(folder: str | os.PathLike) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from a local Hugging Face causal-LM folder (``config.json``,
    weights, tokenizer files), never downloading; safetensors weights are preferred."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise DataNotFoundError(f"{path} is not a Hugging Face model folder: config.json is missing")
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, attn_implementation=ATTENTION)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer
