"""Stage 5: quantize (with optional QAT) and export the student, checking the size budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from fewshot_kd.adapt._distill_loop import distill_
from fewshot_kd.adapt.export import export_student, quantize_for_export_
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.distill import loop_options
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure import saved_size_bytes


@dataclass(frozen=True)
class Exported:
    """The exported ``artifact`` in ``job.work`` and its ``bytes``; the QAT loss ``history``,
    ``quantize_seconds`` and the ``qat_steps`` that ran (both ``None`` for a float student)."""

    artifact: Path
    bytes: int
    history: list[dict]
    quantize_seconds: float | None
    qat_steps: int | None = None


def export_stage_(job: Job, student: nn.Module, views: Views, policy: Policy) -> Exported:
    """Quantize ``student`` to ``job.target.bits`` (QAT for ``policy.quantization.qat_steps_for(bits)``
    steps), write its files, and leave it a float module again; a :class:`FewShotKDError` if over the
    size budget."""
    arch = getattr(student, "arch", None)
    bits, history, seconds = job.target.bits, [], None
    qat_steps = policy.quantization.qat_steps_for(bits)
    if bits is not None:
        from fewshot_kd.quant import dequantize_model_

        tick = time.perf_counter()
        quantize_for_export_(student, bits, policy.per_layer_bits)
        if qat_steps > 0:
            history = distill_(student, views.bank, [s for _, s in views.pairs], steps=qat_steps,
                               lr=policy.qat_lr, description=f"QAT int{bits}", **loop_options(job, policy))
        artifact, size = export_student(student, bits, job.work, arch)
        dequantize_model_(student)
        seconds = time.perf_counter() - tick
    else:
        artifact, size = export_student(student, None, job.work, arch)
    budget = job.target.size_budget(saved_size_bytes(job.teacher))
    if budget is not None and size > budget:
        raise FewShotKDError(
            f"the exported student takes {size:,} bytes, over the target of {budget:,}; "
            f"give a smaller student, lower target.bits, or raise target.size_bytes / lower target.size_ratio"
        )
    return Exported(artifact, size, history, seconds, qat_steps if bits is not None else None)
