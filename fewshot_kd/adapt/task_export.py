"""What the task-type students' files (causal LM, extractive QA) share: the weights (packed ints
or fp32) beside the architecture JSON, a skeleton cut to the recorded widths, and reading the
weights back."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch.nn as nn

from fewshot_kd.adapt.export import ARCH_FILE
from fewshot_kd.errors import CorruptFileError
from fewshot_kd.files import save_tensors, write_json

FP32_WEIGHTS = "student.safetensors"


def write_student_files(student: nn.Module, bits: int | None, out_dir: Path, fp32_state: Callable[[], dict],
                        architecture: dict) -> tuple[Path, int]:
    """Write the weights (packed ints at ``bits``, else ``fp32_state()``) and ``architecture`` as
    JSON into ``out_dir``; returns the weights path and the bytes of both files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if bits is not None:
        from fewshot_kd.quant import export_quantized

        weights = export_quantized(student, out_dir / f"student.int{bits}.safetensors")
    else:
        weights = save_tensors(out_dir / FP32_WEIGHTS, fp32_state())
    arch = write_json(out_dir / ARCH_FILE, architecture, compact=True)
    return weights, weights.stat().st_size + arch.stat().st_size


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
