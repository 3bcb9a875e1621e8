"""Distillation of a causal language model: token-level KL to the teacher's next-token
distribution at a temperature plus next-token cross-entropy, padding masked.

Position ``t`` predicts token ``t + 1``; a position counts when the token it predicts is real
(``attention_mask`` 1 at ``t + 1``; labels -100 also drop it). Both terms are means over the
counted positions: ``alpha * T^2 * KL + (1 - alpha) * CE``, as
:func:`~fewshot_kd.distill.objective.distillation_objective`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot_kd.distill.objective import ObjectiveWeights

IGNORE = -100


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L-1]``: the token each position predicts, -100 where it is padding."""
    targets = input_ids[:, 1:].clone()
    if attention_mask is not None:
        targets[attention_mask[:, 1:] == 0] = IGNORE
    return targets


def token_terms(logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                temperature) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T^2 * KL(teacher_T || student_T), CE)``, means over the counted positions;
    ``logits`` ``[B, L, V]``, ``targets`` ``[B, L-1]`` from :func:`next_token_targets`."""
    counted = (targets != IGNORE).to(logits.dtype)
    student, teacher = logits[:, :-1], teacher_logits[:, :-1].detach()
    log_student = F.log_softmax(student / temperature, -1)
    soft = F.softmax(teacher / temperature, -1)
    kl_per_position = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(-1)
    count = counted.sum().clamp_min(1.0)
    kl = (kl_per_position * counted).sum() / count * temperature**2
    ce_per_position = F.cross_entropy(student.transpose(1, 2), targets.clamp_min(0), reduction="none")
    ce = (ce_per_position * counted).sum() / count
    return kl, ce


def lm_distillation_objective(logits: torch.Tensor, teacher_logits: torch.Tensor, input_ids: torch.Tensor,
                              weights: ObjectiveWeights, attention_mask: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and its parts (``kd``, ``kl``, ``ce``) for a batch of token sequences."""
    kl, ce = token_terms(logits, teacher_logits, next_token_targets(input_ids, attention_mask), weights.temperature)
    kd = weights.alpha * kl + (1 - weights.alpha) * ce
    return kd, {"kd": kd, "kl": kl.detach(), "ce": ce.detach()}
