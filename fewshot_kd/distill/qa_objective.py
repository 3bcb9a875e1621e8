"""Distillation of an extractive QA model: the teacher's start and end distributions (KL at a
temperature) plus cross-entropy on the gold start/end tokens of labelled questions.

Same form as :func:`~fewshot_kd.distill.objective.distillation_objective`, applied to the start
and the end logits and averaged: ``alpha * T^2 * KL + (1 - alpha) * CE``. A window whose gold
position is ``UNLABELLED`` (-1: an unlabelled question with its context) gets the soft targets
only. Padding tokens (``token_mask`` 0) get no probability from either model.
"""

from __future__ import annotations

import torch

from fewshot_kd.distill.objective import ObjectiveWeights, logit_terms

MASKED = -1e4  # a logit far below any real one, still finite under half precision


def _masked(logits: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    return logits if token_mask is None else logits.masked_fill(token_mask == 0, MASKED)


def span_terms(start_logits: torch.Tensor, end_logits: torch.Tensor, teacher_start: torch.Tensor,
               teacher_end: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor,
               temperature, token_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T^2 * KL, CE)``, each the mean of its start and end terms; logits are ``[N, L]``."""
    kl_start, ce_start = logit_terms(_masked(start_logits, token_mask), _masked(teacher_start, token_mask),
                                     start_positions, temperature)
    kl_end, ce_end = logit_terms(_masked(end_logits, token_mask), _masked(teacher_end, token_mask),
                                 end_positions, temperature)
    return (kl_start + kl_end) / 2, (ce_start + ce_end) / 2


def span_distillation_objective(start_logits: torch.Tensor, end_logits: torch.Tensor, teacher_start: torch.Tensor,
                                teacher_end: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor,
                                weights: ObjectiveWeights, token_mask: torch.Tensor | None = None
                                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and its parts (``kd``, ``kl``, ``ce``) for one batch of windows."""
    kl, ce = span_terms(start_logits, end_logits, teacher_start, teacher_end, start_positions, end_positions,
                        weights.temperature, token_mask)
    kd = weights.alpha * kl + (1 - weights.alpha) * ce
    return kd, {"kd": kd, "kl": kl.detach(), "ce": ce.detach()}
