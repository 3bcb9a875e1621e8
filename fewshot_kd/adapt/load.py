"""Read back the student adapt() exported: its architecture JSON and its weights file."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.export import ARCH_FILE, tokenizer_folder
from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import load_tensors, read_json


def _weights_file(folder: Path) -> Path:
    found = sorted(folder.glob("student.int*.safetensors")) + sorted(folder.glob("student.safetensors"))
    if len(found) != 1:
        raise FewShotKDError(f"{folder} should hold exactly one student weights file (student.int<bits>.safetensors "
                             f"or student.safetensors), found {[p.name for p in found]}; pass adapt()'s export_dir")
    return found[0]


def _tokenizer_in(folder: Path, description: dict) -> dict:
    """``description`` with a tokenizer saved beside the weights named by this folder's path."""
    if tokenizer_folder(folder, description["arch"].get("tokenizer")) is None:
        return description
    return {**description, "arch": {**description["arch"], "tokenizer": str(folder)}}


def load_student(folder: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The student adapt() wrote to ``export_dir``, rebuilt from the model registry (no code
    is unpickled): a float model holding the dequantized weights (BatchNorm restored from
    the folded file), in eval mode. It computes what ``result.student`` computes. A student
    derived from a Hugging Face folder is rebuilt from its config JSON; a text, causal-LM or QA
    student whose tokenizer is not the library's own (the packaged MiniLM's, the byte tokenizer)
    reads the tokenizer files saved beside it."""
    from fewshot_kd.prune.serialize import build_skeleton

    folder = Path(folder)
    if not (folder / ARCH_FILE).is_file():
        raise FewShotKDError(f"{folder / ARCH_FILE} is missing: load_student reads a folder written by "
                             f"adapt(..., export_dir=...) for a model from fewshot_kd.create_model")
    description = read_json(folder / ARCH_FILE)
    if isinstance(description, dict) and description.get("kind") == "causal_lm":
        from fewshot_kd.adapt.lm.export import load_lm_student

        return load_lm_student(folder, description, _weights_file(folder)).to(device).eval()
    if isinstance(description, dict) and description.get("kind") == "extractive_qa":
        from fewshot_kd.adapt.qa.export import load_qa_student

        return load_qa_student(folder, description, _weights_file(folder)).to(device).eval()
    if not (isinstance(description, dict) and isinstance(description.get("arch"), dict)
            and "name" in description["arch"] and isinstance(description.get("modules"), dict)):
        raise CorruptFileError(f"{folder / ARCH_FILE} does not describe an architecture (needs 'arch' with a "
                               f"'name', and 'modules'); export the student again with adapt(..., export_dir=...)")
    description = _tokenizer_in(folder, description)
    weights = _weights_file(folder)
    if weights.name == "student.safetensors":
        state = load_tensors(weights, device="cpu")
        model = build_skeleton(description, state, source=str(folder))
        model.load_state_dict(state, strict=True)
        return model.to(device).eval()
    from fewshot_kd.quant.export import float_state, load_quantized

    skeleton = build_skeleton(description, float_state(weights), source=str(folder))
    return load_quantized(weights, skeleton).to(device).eval()
