"""Token sequences as rows of the one distillation objective: each position that predicts a
next token is a row, its label the next token (or ``UNLABELLED``: soft targets only).

:class:`NextTokenLogits` makes a causal LM return ``[B * (L - 1), V]`` logits and
:class:`TokenBank` hands out batches in the view bank's layout ``(inputs, labels, teacher
logits, features)`` with the same flattening, so :func:`~fewshot_kd.distill.loop.run_distillation`
and :func:`~fewshot_kd.distill.objective.distillation_objective` train a language model as
they train a classifier: ``alpha * T^2 * KL`` over every position plus ``(1 - alpha) * CE``
over the labelled ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.distill.objective import UNLABELLED

LOGIT_CACHE_BYTES = 2**30
"""Teacher logits of every position are cached up to this size; beyond it (a large vocabulary)
the bank runs the frozen teacher per batch."""


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out


class NextTokenLogits(nn.Module):
    """``lm`` on ``[B, L]`` token ids, returning the logits of positions ``0 .. L-2`` (those
    that predict a token of the sequence) flattened to ``[B * (L - 1), V]``."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = _logits(self.lm, ids)[:, :-1]
        return logits.reshape(-1, logits.shape[-1])


@torch.no_grad()
def teacher_next_token_logits(teacher: nn.Module, ids: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The frozen teacher's float logits ``[N, L - 1, V]`` on ``ids`` ``[N, L]``."""
    teacher.eval()
    return torch.cat([_logits(teacher, ids[s:s + batch_size])[:, :-1].float() for s in range(0, len(ids), batch_size)])


@dataclass
class TokenBank:
    """Sequences ``ids`` ``[N, L]``; ``labelled[i]`` says whether sequence ``i``'s next tokens
    are labels (a few-shot document) or only the teacher's soft targets count (unlabelled text).
    ``teacher_logits`` ``[N, L - 1, V]`` is cached, or ``None`` with ``teacher`` set: then each
    batch runs the frozen teacher."""

    ids: torch.Tensor
    labelled: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    teacher: nn.Module | None = None

    @classmethod
    def build(cls, teacher: nn.Module, ids: torch.Tensor, labelled: torch.Tensor,
              cache_bytes: int = LOGIT_CACHE_BYTES) -> "TokenBank":
        vocab = int(_logits(teacher.eval(), ids[:1, :2]).shape[-1])
        if ids.shape[0] * (ids.shape[1] - 1) * vocab * 4 > cache_bytes:
            return cls(ids, labelled, None, teacher)
        return cls(ids, labelled, teacher_next_token_logits(teacher, ids))

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self, index: torch.Tensor) -> torch.Tensor:
        """``[b * (L - 1)]`` next tokens, ``UNLABELLED`` on the unlabelled sequences' positions."""
        targets = self.ids[index, 1:].clone()
        targets[~self.labelled[index]] = UNLABELLED
        return targets.reshape(-1)

    def batch(self, index: torch.Tensor):
        ids = self.ids[index]
        teacher = (teacher_next_token_logits(self.teacher, ids) if self.teacher_logits is None
                   else self.teacher_logits[index])
        return ids, self.labels(index), teacher.reshape(-1, teacher.shape[-1]), []
