"""Stage 1: the student, derived from the teacher to the target (or the one given)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch.nn as nn

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.latency_fit import derive_to_latency
from fewshot_kd.adapt.size_fit import derive_to_size
from fewshot_kd.adapt.stages.job import Job


@dataclass(frozen=True)
class Derived:
    """The student on the job's device and what was cut (``{"derived_from_teacher": False}``
    for a given student)."""

    student: nn.Module
    decisions: dict
    seconds: float


def derive(job: Job, student: nn.Module | None, policy: Policy) -> Derived:
    """Prune a copy of the teacher to ``job.target`` (on the CPU), or take the given ``student``;
    either moves to the job's device."""
    tick = time.perf_counter()
    if job.derive:
        # pruning traces and measures the model on the shots, which stay on the CPU: derive from a CPU copy
        teacher = job.teacher if job.device.type == "cpu" else copy.deepcopy(job.teacher).cpu()
        fit = derive_to_latency if job.target.latency is not None else derive_to_size
        student, decisions = fit(teacher, job.support, job.target, policy)
    else:
        decisions = {"derived_from_teacher": False}
    student = student.to(job.device)
    return Derived(student, decisions, time.perf_counter() - tick)
