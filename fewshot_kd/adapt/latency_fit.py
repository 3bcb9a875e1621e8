"""Derive a student whose measured latency fits ``target.latency``: a search on the MACs fraction
with the student's latency measured on real pruned copies."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.size_fit import derive_to_size
from fewshot_kd.adapt.target import Target
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure import paired_latency_ms
from fewshot_kd.model_io import model_device
from fewshot_kd.prune.targets import PruneTargetError

LOWEST_MACS = (0.05, 0.1, 0.2, 0.3, 0.4)
SEARCH_STEPS = 7


def paired_ms(teacher: nn.Module, student: nn.Module, example, repeats: int = 10) -> tuple[float, float]:
    """``(teacher ms, student ms)``, timed round-robin in the same spell (a shared machine's slow
    spells then hit both, and their ratio holds)."""
    times = paired_latency_ms({"teacher": teacher, "student": student}, example, warmup=3, repeats=repeats)
    return times["teacher"], times["student"]


def _lowest(attempt, high: float):
    """The smallest MACs fraction in :data:`LOWEST_MACS` (below ``high``) the pruner can reach, and its attempt."""
    failure = None
    for fraction in (f for f in LOWEST_MACS if f < high):
        try:
            return fraction, attempt(fraction)
        except PruneTargetError as error:  # below what pruning every group to its limit leaves
            failure = error
    raise FewShotKDError(f"cannot search a latency target below target.macs={high}: {failure}")


def _example(shots: LabelledDataset, batch: int):
    rows = torch.arange(batch) % len(shots)
    return shots.input_batch(rows)


def derive_to_latency(teacher: nn.Module, shots: LabelledDataset, target: Target, policy: Policy,
                      measure=None) -> tuple[nn.Module, dict]:
    """:func:`derive_to_size` at the largest MACs fraction (at most ``target.macs``) whose
    student runs a batch of ``target.latency_batch`` in at most ``target.latency`` times the
    teacher's time, by bisection over the fraction. By default each attempt times the teacher
    and the student round-robin (:func:`paired_ms`) and judges their ratio; ``measure(model,
    example) -> ms`` times each model on its own instead (the teacher once). The measurements,
    and which attempt was kept (``chosen``), are in ``decisions["latency_fit"]``
    (``teacher_ms``: the first attempt's teacher time; ``budget_ms``: its fraction)."""
    example = _example(shots, target.latency_batch)
    alone = None if measure is None else measure(teacher, example)

    def pair(student: nn.Module) -> tuple[float, float]:
        return paired_ms(teacher, student, example) if measure is None else (alone, measure(student, example))

    attempts: list[dict] = []

    def attempt(fraction: float):
        student, decisions = derive_to_size(teacher, shots, replace(target, macs=fraction, params=None), policy)
        teacher_ms, ms = pair(student)
        attempts.append({"macs_target": fraction, "macs_fraction": decisions["macs_fraction"], "ms": ms,
                         "teacher_ms": teacher_ms, "ratio": ms / teacher_ms})
        return student, decisions, ms / teacher_ms, len(attempts) - 1

    high = target.macs if target.macs is not None else 1.0
    best = attempt(high)
    if best[2] > target.latency:
        low, lowest = _lowest(attempt, high)
        if lowest[2] > target.latency:
            last = attempts[lowest[3]]
            raise FewShotKDError(
                f"cannot reach target.latency={target.latency}: even at {low} of the teacher's MACs the student takes "
                f"{last['ms']:.2f} ms against the teacher's {last['teacher_ms']:.2f} ms (batch {target.latency_batch}); "
                f"ask for a larger latency fraction, or try policy structure='width' (with prune_round_to=8) or 'blocks'")
        fitted = lowest
        for _ in range(SEARCH_STEPS):
            middle = (low + high) / 2
            trial = attempt(middle)
            if trial[2] <= target.latency:
                low, fitted = middle, trial
            else:
                high = middle
        best = fitted
    student, decisions, _, chosen = best
    teacher_ms = attempts[0]["teacher_ms"]
    decisions["latency_fit"] = {"teacher_ms": teacher_ms, "budget_ms": target.latency * teacher_ms,
                                "batch": target.latency_batch,
                                "device": str(model_device(teacher)), "attempts": attempts,
                                "chosen": chosen}
    return student, decisions
