"""The steps adapt()'s task-type paths (causal LM, extractive QA) share: the argument checks, the
frozen teacher, the derived student, distillation, quantize / QAT / export under the size budget,
the sizes of both models, the stage clock and the finished files."""

from __future__ import annotations

import copy
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from fewshot_kd.adapt._distill_loop import distill_
from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.out_folder import publish_files
from fewshot_kd.adapt.target import Target
from fewshot_kd.errors import BadInputError, FewShotKDError
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes


def check_classifier_only(integer: bool, teachers, exported: str) -> None:
    """Refuse adapt()'s classifier-only arguments; ``exported`` names the student ("a QA student")."""
    if integer or teachers is not None:
        raise BadInputError(f"integer=True (onnxruntime int8) and teachers=[...] are for classifiers; {exported} "
                            f"is exported with packed int weights by target.bits")


def check_shots(shots, unit: str) -> None:
    """``shots`` a whole number >= 1; ``unit`` says what one shot is ("labelled questions")."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise BadInputError(f"shots is the number of {unit}, a whole number >= 1; got {shots!r}")


def check_reach(limit: int | None, lengths: dict[str, int]) -> None:
    """Refuse policy ``lengths`` (name -> tokens) longer than the teacher's ``limit`` of positions."""
    if limit is not None and max(lengths.values()) > limit:
        raise BadInputError(f"the teacher reads at most {limit} tokens; lower the policy's {' / '.join(lengths)} "
                            f"({' / '.join(str(v) for v in lengths.values())})")


class TaskSteps:
    """One run of a task-type path: the teacher frozen on ``device``, the seed set and the clock
    started on construction; ``view`` wraps a student for the distillation loop and ``label``
    ("LM", "QA") names the run in progress bars."""

    def __init__(self, teacher: nn.Module, device, policy, target: Target, seed: int, progress: bool,
                 view: Callable[[nn.Module], nn.Module], label: str):
        self.device = torch.device(device) if device is not None else next(teacher.parameters()).device
        self.teacher = teacher.to(self.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.policy, self.target, self.seed, self.progress, self.view, self.label = (policy, target, seed, progress,
                                                                                    view, label)
        torch.manual_seed(seed)
        self.start = self._tick = time.perf_counter()

    def lap(self) -> float:
        """Seconds since the last lap (or the start)."""
        now = time.perf_counter()
        seconds, self._tick = now - self._tick, now
        return seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def student(self, student, derive: Callable, example, given: Callable) -> tuple[nn.Module, dict, bool]:
        """``(student, decisions, derived)`` on the device: ``derive(teacher, target, example)`` on a
        CPU copy of the teacher when ``student`` is None or "derive", else ``given(student)`` checks it."""
        if student is None or (isinstance(student, str) and student == "derive"):
            teacher = self.teacher
            source = teacher if next(teacher.parameters()).device.type == "cpu" else copy.deepcopy(teacher).cpu()
            built, decisions = derive(source, self.target, example)
            for p in built.parameters():
                p.requires_grad_(True)  # copied from the frozen teacher
            return built.to(self.device), decisions, True
        given(student)
        return student.to(self.device), {"derived_from_teacher": False}, False

    def distill(self, student: nn.Module, bank, qat: bool = False, layers: list[str] = ()) -> list[dict]:
        """The distillation steps (``qat``: the quantization-aware ones, at their own lr and seed + 1);
        ``layers``: the viewed student's layers hinted by the bank's teacher features at the policy's
        ``feature_weight`` (none: logits only)."""
        p = self.policy
        steps, lr, seed = (p.qat_steps, p.qat_lr, self.seed + 1) if qat else (p.steps, p.lr, self.seed)
        description = f"QAT int{self.target.bits}" if qat else f"distilling {self.label}"
        return distill_(self.view(student), bank, list(layers), steps=steps, lr=lr, weight_decay=p.weight_decay,
                        batch_size=p.batch_size, temperature=p.temperature, alpha=p.alpha,
                        feature_weight=getattr(p, "feature_weight", 0.0),  # distill_ hints nothing without layers
                        seed=seed, progress=self.progress, description=description)

    def export(self, student: nn.Module, bank, work: Path, quantize_: Callable, export: Callable,
               dequantized_: Callable = lambda model: None, layers: list[str] = ()) -> tuple[Path, int, list[dict]]:
        """``(weights, bytes, qat_history)``: at ``target.bits``, ``quantize_`` the student, run the QAT
        steps, ``export`` it packed and dequantize it (then ``dequantized_``); else export it fp32."""
        history: list[dict] = []
        bits = self.target.bits
        if bits is not None:
            from fewshot_kd.quant import dequantize_model_

            quantize_(student, bits)
            if self.policy.qat_steps:
                history = self.distill(student, bank, qat=True, layers=layers)
            artifact, artifact_bytes = export(student, bits, work)
            dequantize_model_(student)
            dequantized_(student)
        else:
            artifact, artifact_bytes = export(student, None, work)
        return artifact, artifact_bytes, history

    def check_budget(self, artifact_bytes: int) -> None:
        """Refuse exported files larger than the target's size budget (a fraction of the teacher's bytes)."""
        budget = self.target.size_budget(self.teacher_bytes)
        if budget is not None and artifact_bytes > budget:
            raise FewShotKDError(f"the exported student takes {artifact_bytes:,} bytes, over the target of {budget:,}; "
                                 f"lower target.bits or target.macs, or raise the size budget")

    @cached_property
    def teacher_bytes(self) -> int:
        return saved_size_bytes(self.teacher)

    def sizes(self, student: nn.Module, inputs: dict, artifact_bytes: int) -> dict:
        """The report's ``teacher``, ``student`` and ``compression`` fields (MACs on ``inputs``)."""
        bits = self.target.bits
        weights = (f"int{bits} (stored packed, embeddings included; float inference with dequantized weights)"
                   if bits else "fp32")
        teacher = ModelSize(params=count_params(self.teacher), macs=count_macs(self.teacher, inputs),
                            bytes=self.teacher_bytes)
        student = StudentSize(params=count_params(student), macs=count_macs(student, inputs), bytes=artifact_bytes,
                              weights=weights)
        return {"teacher": teacher, "student": student, "compression": Compression.of(teacher, student)}

    def finish(self, result, work: Path, export_dir):
        """``result`` with its files moved to ``export_dir`` (``artifact`` None without one), printed when asked."""
        result.artifact = publish_files(work, Path(export_dir), result.artifact) if export_dir is not None else None
        if self.progress:
            result.print()
        return result
