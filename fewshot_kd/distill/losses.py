"""Logit distillation (Hinton et al., 2015): soft-target KL plus hard-label cross-entropy.

Losses take tensors and return a scalar. Teacher tensors are detached, so gradients reach
the student only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.distill._checks import check_alpha, check_temperature, require_finite, require_tensor
from fewshot_kd.errors import ClassCountMismatchError


def check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Same shape ``[..., C]`` for both, same class count, finite values."""
    require_tensor("student_logits", student_logits)
    require_tensor("teacher_logits", teacher_logits)
    if student_logits.dim() < 2:
        raise ValueError(f"student_logits must be shaped [N, C], got {tuple(student_logits.shape)}")
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ClassCountMismatchError(
            f"student predicts {student_logits.shape[-1]} classes but the teacher {teacher_logits.shape[-1]}; "
            "give both models the same classifier width (num_classes) for logit distillation"
        )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ in batch shape; run both models on the same batch"
        )
    require_finite("student_logits", student_logits)
    require_finite("teacher_logits", teacher_logits)


def soft_target_kl_from_probs(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """``KL(target_probs || softmax(student / T))`` summed over classes, averaged over rows
    (``batchmean``); no ``T**2`` factor. ``target_probs`` rows must sum to 1."""
    temperature = check_temperature(temperature)
    require_tensor("target_probs", target_probs)
    if target_probs.shape != student_logits.shape:
        if target_probs.shape[-1:] != student_logits.shape[-1:]:
            raise ClassCountMismatchError(
                f"student predicts {student_logits.shape[-1]} classes but the targets have {target_probs.shape[-1]}"
            )
        raise ValueError(f"target_probs {tuple(target_probs.shape)} and student logits {tuple(student_logits.shape)} differ")
    require_finite("student_logits", student_logits)
    require_finite("target_probs", target_probs)
    num_classes = student_logits.shape[-1]
    log_student = F.log_softmax(student_logits.reshape(-1, num_classes) / temperature, dim=-1)
    targets = target_probs.detach().reshape(-1, num_classes).to(log_student.dtype)
    return F.kl_div(log_student, targets, reduction="batchmean")


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))``, ``batchmean``, no ``T**2`` factor."""
    check_logits(student_logits, teacher_logits)
    temperature = check_temperature(temperature)
    teacher_probs = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return soft_target_kl_from_probs(student_logits, teacher_probs, temperature)


def hard_label_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with integer labels; checks their shape and range first."""
    require_tensor("labels", labels)
    num_classes = student_logits.shape[-1]
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != student_logits.shape[:-1]:
        raise ValueError(
            f"labels shaped {tuple(labels.shape)} do not match logits {tuple(student_logits.shape)}; "
            "give one class index per row"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ClassCountMismatchError(
            f"labels range over [{int(labels.min())}, {int(labels.max())}] but the logits have {num_classes} classes"
        )
    return F.cross_entropy(student_logits.reshape(-1, num_classes), labels.reshape(-1).long())


def combine_soft_and_hard(
    soft_kl: torch.Tensor,
    student_logits: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * T**2 * soft_kl + (1 - alpha) * CE(student, labels)``."""
    alpha = check_alpha(alpha)
    loss = alpha * temperature**2 * soft_kl
    if alpha < 1.0:
        if labels is None:
            raise ValueError(f"alpha={alpha} < 1 needs labels for the cross-entropy term; pass labels or set alpha=1")
        loss = loss + (1.0 - alpha) * hard_label_ce(student_logits, labels)
    elif labels is not None:
        hard_label_ce(student_logits, labels)  # still validate what was passed
    return loss


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """Hinton KD: ``alpha * T**2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)``.

    The KL is ``batchmean``; ``T**2`` keeps its gradient scale independent of ``T``.
    ``alpha=1`` needs no labels.
    """
    temperature = check_temperature(temperature)
    soft = soft_target_kl(student_logits, teacher_logits, temperature)
    return combine_soft_and_hard(soft, student_logits, labels, temperature, alpha)


@dataclass(frozen=True)
class KDConfig:
    """Logit-distillation settings; the defaults are the seed-003 values (T=4, alpha=0.7)."""

    temperature: float = 4.0
    alpha: float = 0.7

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        check_alpha(self.alpha)


class KDLoss(nn.Module):
    """``kd_loss`` as a module with a fixed ``KDConfig``."""

    def __init__(self, config: KDConfig = KDConfig()) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, labels, self.config.temperature, self.config.alpha)

    def extra_repr(self) -> str:
        return f"temperature={self.config.temperature}, alpha={self.config.alpha}"
