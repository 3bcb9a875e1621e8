"""Distillation from several teachers: average (or weight) their temperature-softened
probabilities and distil the student towards the mixture."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from fewshot_kd.distill._checks import LayerWeights, check_temperature, resolve_layer_weights
from fewshot_kd.distill.losses import check_logits, combine_soft_and_hard, soft_target_kl_from_probs
from fewshot_kd.errors import ClassCountMismatchError

Averaging = Literal["probs", "logits"]


def _teacher_weights(weights: LayerWeights, count: int) -> list[float]:
    values = resolve_layer_weights(weights, count, what="teacher")
    total = sum(values)
    if total <= 0:
        raise ValueError("teacher weights sum to 0; give at least one teacher a positive weight")
    return [w / total for w in values]


def multi_teacher_soft_targets(
    teacher_logits_list: Sequence[torch.Tensor],
    weights: LayerWeights = None,
    temperature: float = 4.0,
    average: Averaging = "probs",
) -> torch.Tensor:
    """``sum_k w_k softmax(t_k / T)`` with weights normalised to sum to 1 (equal by default).

    ``average="logits"`` gives ``softmax(sum_k w_k t_k / T)`` instead. The result is detached.
    """
    if isinstance(teacher_logits_list, torch.Tensor) or len(teacher_logits_list) == 0:
        raise ValueError("pass a non-empty list of teacher logits, one tensor per teacher")
    temperature = check_temperature(temperature)
    first = teacher_logits_list[0]
    for k, logits in enumerate(teacher_logits_list):
        try:
            check_logits(logits, first)  # shapes, class counts, finiteness
        except ClassCountMismatchError as error:
            raise ClassCountMismatchError(f"teacher {k} disagrees with teacher 0: {error}") from None
    normalised = _teacher_weights(weights, len(teacher_logits_list))
    stacked = torch.stack([t.detach().float() for t in teacher_logits_list])
    mix = torch.tensor(normalised, dtype=stacked.dtype, device=stacked.device).view(-1, *([1] * first.dim()))
    if average == "probs":
        return (F.softmax(stacked / temperature, dim=-1) * mix).sum(dim=0)
    if average == "logits":
        return F.softmax((stacked * mix).sum(dim=0) / temperature, dim=-1)
    raise ValueError(f"unknown average {average!r}; use 'probs' or 'logits'")


def multi_teacher_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits_list: Sequence[torch.Tensor],
    labels: torch.Tensor | None = None,
    weights: LayerWeights = None,
    temperature: float = 4.0,
    alpha: float = 0.7,
    average: Averaging = "probs",
) -> torch.Tensor:
    """``alpha * T**2 * KL(mixture || softmax(s / T)) + (1 - alpha) * CE(s, labels)``; with one
    teacher it equals ``kd_loss``."""
    targets = multi_teacher_soft_targets(teacher_logits_list, weights, temperature, average)
    check_logits(student_logits, teacher_logits_list[0])
    soft = soft_target_kl_from_probs(student_logits, targets, temperature)
    return combine_soft_and_hard(soft, student_logits, labels, check_temperature(temperature), alpha)
