"""Distillation of a causal language model: token-level KL to the teacher's next-token
distribution at a temperature plus next-token cross-entropy, padding masked.

Position ``t`` predicts token ``t + 1``; a position counts when the token it predicts is real
(``attention_mask`` 1 at ``t + 1``; labels -100 also drop it). Both terms are means over the
counted positions: ``alpha * T^2 * KL + (1 - alpha) * CE``, as
:func:`~fewshot_kd.distill.objective.distillation_objective`.
"""

from __future__ import annotations

import torch

from fewshot_kd.distill.objective import ObjectiveWeights, logit_terms

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
    ``logits`` ``[B, L, V]``, ``targets`` ``[B, L-1]`` from :func:`next_token_targets`. Every
    counted position is one row of :func:`~fewshot_kd.distill.objective.logit_terms`, the
    classification objective's logit terms."""
    vocab = logits.shape[-1]
    counted = (targets != IGNORE).reshape(-1)
    if not bool(counted.any()):
        zero = logits.sum() * 0.0
        return zero, zero
    rows = logits[:, :-1].reshape(-1, vocab)[counted]
    teacher_rows = teacher_logits[:, :-1].reshape(-1, vocab)[counted]
    return logit_terms(rows, teacher_rows, targets.reshape(-1)[counted], temperature)


def lm_distillation_objective(logits: torch.Tensor, teacher_logits: torch.Tensor, input_ids: torch.Tensor,
                              weights: ObjectiveWeights, attention_mask: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and its parts (``kd``, ``kl``, ``ce``) for a batch of token sequences."""
    kl, ce = token_terms(logits, teacher_logits, next_token_targets(input_ids, attention_mask), weights.temperature)
    kd = weights.alpha * kl + (1 - weights.alpha) * ce
    return kd, {"kd": kd, "kl": kl.detach(), "ce": ce.detach()}
