"""What the task-type students' files (causal LM, extractive QA) share: the weights (packed ints
or fp32) beside the architecture JSON, the tokenizer (by name when it is the library's own, else
its files), a skeleton cut to the recorded widths, and reading the weights and tokenizer back."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch.nn as nn

from fewshot_kd.adapt.export import ARCH_FILE, TOKENIZER_IN_FOLDER, tokenizer_folder
from fewshot_kd.errors import CorruptFileError
from fewshot_kd.files import save_tensors, write_json

FP32_WEIGHTS = "student.safetensors"


def tokenizer_record(tokenizer, builtin: str | None) -> dict:
    """The architecture JSON's ``tokenizer`` field: ``builtin`` (the name of the library's own
    tokenizer, which the loader builds), else :data:`TOKENIZER_IN_FOLDER` for one ``save_pretrained``
    writes beside the weights; none for a tokenizer that is neither (the loader's fallback then)."""
    if builtin is not None:
        return {"tokenizer": builtin}
    if callable(getattr(tokenizer, "save_pretrained", None)):
        return {"tokenizer": TOKENIZER_IN_FOLDER}
    return {}


def write_student_files(student: nn.Module, bits: int | None, out_dir: Path, fp32_state: Callable[[], dict],
                        architecture: dict, tokenizer, builtin: str | None) -> tuple[Path, int]:
    """Write the weights (packed ints at ``bits``, else ``fp32_state()``) and ``architecture`` as
    JSON into ``out_dir``, recording ``tokenizer`` (:func:`tokenizer_record`) and saving its files
    there unless it is the ``builtin`` one; returns the weights path and the bytes of the weights
    and architecture files (the tokenizer's are not counted: the teacher reads the same ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if bits is not None:
        from fewshot_kd.quant import export_quantized

        weights = export_quantized(student, out_dir / f"student.int{bits}.safetensors")
    else:
        weights = save_tensors(out_dir / FP32_WEIGHTS, fp32_state())
    architecture = {**architecture, **tokenizer_record(tokenizer, builtin)}
    arch = write_json(out_dir / ARCH_FILE, architecture, compact=True)
    if architecture.get("tokenizer") == TOKENIZER_IN_FOLDER:
        tokenizer.save_pretrained(str(out_dir))
    return weights, weights.stat().st_size + arch.stat().st_size


def saved_tokenizer(folder: Path, description: dict):
    """The tokenizer saved beside the weights in ``folder`` when ``description`` records it there, else None."""
    beside = tokenizer_folder(folder, description.get("tokenizer"))
    if beside is None:
        return None
    from fewshot_kd.models._minilm import load_tokenizer

    return load_tokenizer(beside)


def cut_to_recorded_widths_(layers: list, description: dict, source: str, unit: str) -> None:
    """Prune each of ``layers`` to the heads and FFN width ``description`` records (``unit``:
    "blocks", "layers", for the error when the counts differ)."""
    heads, ffn = description["heads"], description["ffn"]
    if len(heads) != len(layers) or len(ffn) != len(layers):
        raise CorruptFileError(f"{source} lists {len(heads)} {unit}' heads for a config of {len(layers)} {unit}")
    for layer, h, f in zip(layers, heads, ffn):
        if h < layer.num_heads:
            layer.prune_heads_(range(int(h)))
        if f < layer.ffn_width:
            layer.prune_ffn_(range(int(f)))


def read_weights(skeleton: nn.Module, weights: Path, load_fp32: Callable[[nn.Module, dict], nn.Module]) -> nn.Module:
    """``skeleton`` with the weights of ``weights``: fp32 through ``load_fp32(skeleton, tensors)``,
    packed ints dequantized."""
    if weights.name == FP32_WEIGHTS:
        from fewshot_kd.files import load_tensors

        return load_fp32(skeleton, load_tensors(weights))
    from fewshot_kd.quant.export import load_quantized

    return load_quantized(weights, skeleton)
