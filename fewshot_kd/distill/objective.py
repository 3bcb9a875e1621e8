"""The one distillation objective adapt() trains with and the meta-learner's inner loop
differentiates through: logit KD + cross-entropy on labelled rows + hints through adaptors.

Every hyperparameter may be a float or a tensor, so a meta-learner's outputs (temperature,
alpha, feature weight, per-pair weights) receive gradients through it. The teacher's logits and
features are detached (only the student learns) unless ``teacher_grad``: the meta-learner's
views carry the learned augmentation strength's graph through the frozen teacher
(:mod:`fewshot_kd.meta.augment_views`). Rows whose label is ``UNLABELLED`` (-1) get the soft
targets only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

UNLABELLED = -1
Scalar = float | torch.Tensor


@dataclass(frozen=True)
class ObjectiveWeights:
    """``alpha * T^2 * KL`` on every row + ``(1 - alpha) * CE`` on labelled rows +
    ``feature_weight * sum_p w_p MSE(adaptor_p(s_p), t_p) / P``."""

    temperature: Scalar
    alpha: Scalar
    feature_weight: Scalar = 0.0
    pair_weights: Sequence[Scalar] | torch.Tensor | None = None
    teacher_grad: bool = False


def logit_terms(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                temperature: Scalar, teacher_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T^2 * KL(teacher_T || student_T) per batch, CE over the labelled rows)``; both means.
    The teacher's logits are detached unless ``teacher_grad``."""
    log_student = F.log_softmax(logits / temperature, -1)
    soft = F.softmax((teacher_logits if teacher_grad else teacher_logits.detach()) / temperature, -1)
    kl = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(-1).mean() * temperature**2
    known = (labels != UNLABELLED).to(logits.dtype)
    per_row = F.cross_entropy(logits, labels.clamp_min(0), reduction="none")
    ce = (per_row * known).sum() / known.sum().clamp_min(1.0)
    return kl, ce


def hint_term(student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor],
              adaptors: Sequence[Callable[[torch.Tensor], torch.Tensor]], pair_weights=None,
              teacher_grad: bool = False) -> torch.Tensor:
    """``sum_p w_p * MSE(adaptor_p(s_p), t_p) / P`` (plain MSE, as :class:`HintLoss`); the
    teacher's features are detached unless ``teacher_grad``."""
    total = None
    for p, (s, t, adaptor) in enumerate(zip(student_features, teacher_features, adaptors)):
        term = F.mse_loss(adaptor(s), (t if teacher_grad else t.detach()).to(s.dtype))
        if pair_weights is not None:
            term = term * pair_weights[p]
        total = term if total is None else total + term
    return total / len(student_features)


def distillation_objective(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                           weights: ObjectiveWeights, student_features: Sequence[torch.Tensor] = (),
                           teacher_features: Sequence[torch.Tensor] = (),
                           adaptors: Sequence[Callable] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and its parts (``kd``: the logit terms, ``hint``: the unweighted hint term)."""
    kl, ce = logit_terms(logits, teacher_logits, labels, weights.temperature, weights.teacher_grad)
    kd = weights.alpha * kl + (1 - weights.alpha) * ce
    parts = {"kd": kd}
    loss = kd
    if student_features and not _is_zero(weights.feature_weight):
        hint = hint_term(student_features, teacher_features, adaptors, weights.pair_weights, weights.teacher_grad)
        parts["hint"] = hint
        loss = loss + weights.feature_weight * hint
    return loss, parts


def _is_zero(value: Scalar) -> bool:
    return not isinstance(value, torch.Tensor) and float(value) == 0.0
