"""The student's saved artifact: packed integer weights (or fp32) plus its architecture JSON."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch.nn as nn

from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import save_tensors, write_json

ARCH_FILE = "student.arch.json"
TOKENIZER_IN_FOLDER = "<the student's folder>"
"""What student.arch.json records as ``tokenizer`` when the tokenizer files lie beside it."""


def tokenizer_folder(folder: Path, recorded) -> Path | None:
    """``folder`` when student.arch.json records the tokenizer beside it (``recorded`` is
    :data:`TOKENIZER_IN_FOLDER`), else None; :class:`CorruptFileError` when its files are missing."""
    if recorded != TOKENIZER_IN_FOLDER:
        return None
    if not (folder / "tokenizer_config.json").is_file():
        raise CorruptFileError(f"{folder / ARCH_FILE} says the tokenizer lies beside it, but {folder} has no "
                               f"tokenizer_config.json; export the student again with adapt(..., export_dir=...)")
    return folder


def _tokenizer_beside(student: nn.Module, arch: dict) -> bool:
    """A text student whose tokenizer came from a folder or the Hub (not the packaged MiniLM)
    is saved with it: its source may not travel with the student's folder."""
    from fewshot_kd.models._minilm import MINILM_SOURCE

    if arch.get("tokenizer") in (None, MINILM_SOURCE):
        return False
    return callable(getattr(getattr(student, "tokenizer", None), "save_pretrained", None))


def export_student(student: nn.Module, bits: int | None, out_dir: Path, arch: dict | None,
                   tokenizer_files: bool = True) -> tuple[Path, int]:
    """Write the student's weights (packed ints when quantized, BatchNorm folded into the
    convolutions) and its architecture JSON (compact); returns the weights path and the
    bytes of both files together. :func:`fewshot_kd.adapt.load_student` reads them back.
    A text student's tokenizer files (``tokenizer.json``, ``tokenizer_config.json``), unless
    it is the packaged MiniLM's, are written beside them (not with ``tokenizer_files=False``)
    and student.arch.json says so; they are not counted (the teacher reads the same ones)."""
    from fewshot_kd.quant import export_quantized

    out_dir.mkdir(parents=True, exist_ok=True)
    if bits is not None:
        weights = export_quantized(student, out_dir / f"student.int{bits}.safetensors", fold_batchnorm=True)
    else:
        weights = save_tensors(out_dir / "student.safetensors", student.state_dict())
    total = weights.stat().st_size
    if arch is not None:
        from fewshot_kd.prune.serialize import describe_architecture

        if _tokenizer_beside(student, arch):
            arch = {**arch, "tokenizer": TOKENIZER_IN_FOLDER}
            if tokenizer_files:
                student.tokenizer.save_pretrained(str(out_dir))
        arch_path = write_json(out_dir / ARCH_FILE, describe_architecture(student, arch), compact=True)
        total += arch_path.stat().st_size
    return weights, total


def weight_bits(student: nn.Module, bits: int, per_layer: dict):
    """``bits`` for every layer, or the policy's per-layer widths (their parameter-weighted
    average must stay within ``bits``)."""
    if not per_layer:
        return bits
    modules = dict(student.named_modules())
    sizes = {n: modules[n].weight.numel() for n in per_layer if n in modules}
    average = sum(per_layer[n] * sizes[n] for n in sizes) / max(sum(sizes.values()), 1)
    if average > bits + 1e-6:
        raise FewShotKDError(f"the policy's per-layer bit widths average {average:.2f} bits, over the target's {bits}; "
                             f"lower per_layer_bits or raise target.bits")
    return {n: per_layer.get(n, bits) for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))}


def quantize_for_export_(student: nn.Module, bits: int, per_layer_bits: dict) -> nn.Module:
    """Swap in the weight quantizers adapt() exports with (embedding tables included)."""
    from fewshot_kd.quant import quantize_model_

    return quantize_model_(student, weight_bits=weight_bits(student, bits, per_layer_bits), act_bits=None,
                           embeddings=True)


def exported_bytes(student: nn.Module, bits: int | None, per_layer_bits: dict) -> int:
    """The bytes the student's artifact would take, measured by exporting a copy (the size
    depends on the architecture and bit widths only, not on the weights' values)."""
    trial = copy.deepcopy(student)
    if bits is not None:
        quantize_for_export_(trial, bits, per_layer_bits)
    with tempfile.TemporaryDirectory(prefix="fewshot_kd-size-") as tmp:
        return export_student(trial, bits, Path(tmp), getattr(student, "arch", None), tokenizer_files=False)[1]
