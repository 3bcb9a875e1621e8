"""An extractive-QA student's files: packed int weights (or fp32), an architecture JSON (the
transformers config plus every layer's heads and FFN width) and, unless it is the packaged
MiniLM's, its tokenizer; and reading them back without code."""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

from fewshot_kd.adapt.export import ARCH_FILE
from fewshot_kd.adapt.task_export import cut_to_recorded_widths_, read_weights, saved_tokenizer, write_student_files
from fewshot_kd.errors import CorruptFileError
from fewshot_kd.prune.transformer import find_transformer_layers

QA_KIND = "extractive_qa"


def _is_packaged_minilm(tokenizer) -> bool:
    from fewshot_kd.models._minilm import minilm_model_dir

    try:
        return Path(str(tokenizer.name_or_path)).resolve() == minilm_model_dir()
    except Exception:  # the package is missing or the name is not a path: not the packaged one
        return False


def qa_architecture(student: nn.Module) -> dict:
    """What rebuilds ``student``: its config and the heads / FFN width of every layer."""
    layers = find_transformer_layers(student)
    return {"kind": QA_KIND, "config": json.loads(student.config.to_json_string()),
            "heads": [layer.num_heads for layer in layers], "ffn": [layer.ffn_width for layer in layers]}


def quantize_qa_(student: nn.Module, bits: int) -> nn.Module:
    """Weight fake-quantizers at ``bits`` on every linear layer (span head included) and embedding table."""
    from fewshot_kd.quant import quantize_model_

    return quantize_model_(student, weight_bits=bits, act_bits=None, embeddings=True)


def export_qa_student(student: nn.Module, tokenizer, bits: int | None, out_dir: Path) -> tuple[Path, int]:
    """Write the weights (packed ints after :func:`quantize_qa_`, else fp32), the architecture
    JSON and, for a tokenizer that is not the packaged MiniLM's, its files; returns the weights
    path and the bytes of the weights and architecture files (the model itself)."""
    from fewshot_kd.models._minilm import MINILM_SOURCE

    builtin = MINILM_SOURCE if _is_packaged_minilm(tokenizer) else None
    return write_student_files(student, bits, out_dir, student.state_dict, qa_architecture(student), tokenizer, builtin)


def build_qa_skeleton(description: dict, source: str = "the architecture") -> nn.Module:
    """An untrained QA model of the described config, each layer cut to its recorded heads and FFN width."""
    from transformers import AutoConfig

    from fewshot_kd.models.qa_model import qa_model_from_config

    try:
        config = dict(description["config"])
        model = qa_model_from_config(AutoConfig.for_model(config.pop("model_type"), **config))
        cut_to_recorded_widths_(find_transformer_layers(model), description, source, "layers")
    except (KeyError, TypeError, ValueError) as error:
        raise CorruptFileError(f"{source} does not describe a QA model ({error}); export the student again") from None
    return model


def _load_fp32(model: nn.Module, state: dict) -> nn.Module:
    model.load_state_dict(state, strict=True)
    return model


def load_qa_student(folder: Path, description: dict, weights: Path) -> nn.Module:
    """The QA student in ``folder`` (float, dequantized weights), its tokenizer attached as ``.tokenizer``."""
    from fewshot_kd.models._minilm import load_tokenizer

    model = read_weights(build_qa_skeleton(description, str(folder / ARCH_FILE)), weights, _load_fp32)
    beside = saved_tokenizer(folder, description)
    model.tokenizer = load_tokenizer() if beside is None else beside
    return model
