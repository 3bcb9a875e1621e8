"""A causal-LM student's files: packed int weights (or fp32), an architecture JSON (the GPT-2
config plus every block's heads and FFN width) and, unless it is the byte tokenizer, its
tokenizer; and reading them back without code."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from fewshot_kd.adapt.export import ARCH_FILE
from fewshot_kd.adapt.task_export import cut_to_recorded_widths_, read_weights, saved_tokenizer, write_student_files
from fewshot_kd.errors import CorruptFileError
from fewshot_kd.models.lm_state import lm_state_dict, load_lm_state_
from fewshot_kd.prune.gpt2 import find_gpt2_layers

LM_KIND = "causal_lm"
BYTE_TOKENIZER = "byte"
"""What student.arch.json records as ``tokenizer`` for the library's byte tokenizer (the recipe teachers')."""


def lm_architecture(student: nn.Module) -> dict:
    """What rebuilds ``student``: its GPT-2 config and the heads / FFN width of every block."""
    layers = find_gpt2_layers(student)
    return {"kind": LM_KIND, "model": "gpt2", "config": json.loads(student.config.to_json_string()),
            "heads": [layer.num_heads for layer in layers], "ffn": [layer.ffn_width for layer in layers]}


def share_tied_quantizers_(model: nn.Module) -> nn.Module:
    """Quantized layers holding one weight Parameter (a head tied to the token embedding) use
    the first one's quantizer, so they quantize it alike and the file stores it once."""
    from fewshot_kd.quant import quantized_layers

    first: dict[int, nn.Module] = {}
    for layer in quantized_layers(model).values():
        owner = first.setdefault(id(layer.weight), layer)
        if owner is not layer and owner.weight_quant.step.shape == layer.weight_quant.step.shape:
            layer.weight_quant = owner.weight_quant
    return model


def quantize_lm_(student: nn.Module, bits: int) -> nn.Module:
    """Weight fake-quantizers at ``bits`` on every projection, the head and the embedding tables."""
    from fewshot_kd.quant import quantize_model_

    quantize_model_(student, weight_bits=bits, act_bits=None, embeddings=True)
    return share_tied_quantizers_(student)


def export_lm_student(student: nn.Module, tokenizer, bits: int | None, out_dir: Path) -> tuple[Path, int]:
    """Write the weights (packed ints after :func:`quantize_lm_`, else fp32), the architecture
    JSON and, for a tokenizer that is not the byte tokenizer, its files; returns the weights path
    and the bytes of the weights and architecture files (the model itself)."""
    from fewshot_kd.models.byte_tokenizer import ByteTokenizer

    builtin = BYTE_TOKENIZER if isinstance(tokenizer, ByteTokenizer) else None
    return write_student_files(student, bits, out_dir, lambda: lm_state_dict(student), lm_architecture(student),
                               tokenizer, builtin)


def build_lm_skeleton(description: dict, source: str = "the architecture") -> nn.Module:
    """An untrained GPT-2 of the described config, each block cut to its recorded heads and FFN width."""
    from transformers import GPT2Config

    from fewshot_kd.models.causal_lm import gpt2_lm

    try:
        model = gpt2_lm(GPT2Config.from_dict(description["config"]))
        cut_to_recorded_widths_(find_gpt2_layers(model), description, source, "blocks")
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptFileError(f"{source} does not describe a causal LM ({error}); export the student again") from None
    return model


def _lm_tokenizer(folder: Path, description: dict, vocab_size: int):
    """The tokenizer saved in ``folder``, else the byte tokenizer when it is recorded (or, in a
    folder exported before tokenizers were recorded, when the vocabulary is the 256 bytes), else None."""
    from fewshot_kd.models.byte_tokenizer import BYTE_VOCAB_SIZE, ByteTokenizer

    beside = saved_tokenizer(folder, description)
    if beside is not None:
        return beside
    if description.get("tokenizer") == BYTE_TOKENIZER or vocab_size == BYTE_VOCAB_SIZE:
        return ByteTokenizer()
    return None


def load_lm_student(folder: Path, description: dict, weights: Path) -> nn.Module:
    """The causal-LM student in ``folder`` (float, dequantized weights), its tokenizer attached as
    ``.tokenizer``: the one saved beside it, else the byte tokenizer (recorded, or a 256-token vocabulary)."""
    skeleton = build_lm_skeleton(description, str(folder / ARCH_FILE))
    model = read_weights(skeleton, weights, lambda model, state: load_lm_state_(model, state, str(weights)))
    model.tie_weights()  # the fp32 load ties it already; the packed one does not
    tokenizer = _lm_tokenizer(folder, description, model.config.vocab_size)
    if tokenizer is not None:
        model.tokenizer = tokenizer
    return model
