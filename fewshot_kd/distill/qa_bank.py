"""Question windows as rows of the one distillation objective: every window gives two rows,
its start logits and its end logits over its tokens, labelled by the gold start / end token
(or ``UNLABELLED``: an unlabelled question, soft targets only).

:class:`SpanLogits` makes a QA model return ``[2B, L]`` (the ``B`` windows' start rows, then
their end rows; padding tokens masked as in :mod:`~fewshot_kd.distill.qa_objective`) and
:class:`SpanBank` hands out batches in the view bank's layout ``(inputs, labels, teacher
logits, features)``, so :func:`~fewshot_kd.distill.loop.run_distillation` trains a QA student
with :func:`~fewshot_kd.distill.objective.distillation_objective`. Every window adds one
start and one end row, so that objective equals
:func:`~fewshot_kd.distill.qa_objective.span_distillation_objective` (the mean of the start and
end terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.distill.hooks import FeatureCapture
from fewshot_kd.distill.qa_objective import MASKED
from fewshot_kd.models.qa_features import QAFeatures


def _rows(start: torch.Tensor, end: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    rows = torch.cat([start, end])
    if attention_mask is None:
        return rows
    return rows.masked_fill(torch.cat([attention_mask, attention_mask]) == 0, MASKED)


class SpanLogits(nn.Module):
    """``qa`` on a dict of window inputs ``[B, L]``, returning ``[2B, L]``: start rows, then end rows."""

    def __init__(self, qa: nn.Module) -> None:
        super().__init__()
        self.qa = qa

    def forward(self, inputs: dict) -> torch.Tensor:
        out = self.qa(**inputs)
        return _rows(out.start_logits, out.end_logits, inputs.get("attention_mask"))


@torch.no_grad()
def teacher_span_rows(teacher: nn.Module, inputs: dict, batch_size: int = 32) -> torch.Tensor:
    """The frozen teacher's float logits ``[N, 2, L]`` (start, end; padding masked) on ``inputs``."""
    teacher.eval()
    out = []
    for begin in range(0, len(inputs["input_ids"]), batch_size):
        batch = {name: tensor[begin:begin + batch_size] for name, tensor in inputs.items()}
        rows = SpanLogits(teacher)(batch).float()
        out.append(torch.stack(rows.chunk(2), dim=1))
    return torch.cat(out)


@torch.no_grad()
def teacher_hidden_states(teacher: nn.Module, layers: list[str], inputs: dict) -> list[torch.Tensor]:
    """The frozen teacher's hidden states ``[B, L, H]`` at its encoder ``layers`` on ``inputs``."""
    teacher.eval()
    with FeatureCapture(teacher, list(layers), detach=True) as capture:
        teacher(**inputs)
        return [capture.outputs[name].float() for name in layers]


@dataclass
class SpanBank:
    """Windows ``inputs`` (``[N, L]`` tensors by name), gold ``starts`` / ``ends`` ``[N]``
    (``UNLABELLED`` for unlabelled questions) and the teacher's cached rows ``[N, 2, L]``.
    With ``teacher`` and ``layers`` set, :meth:`batch` also hands out the teacher's hidden
    states at ``layers`` (run per batch, not cached: ``[N, L, H]`` per layer is too large)."""

    inputs: dict
    starts: torch.Tensor
    ends: torch.Tensor
    teacher_logits: torch.Tensor
    teacher: nn.Module | None = None
    layers: tuple[str, ...] = ()

    @classmethod
    def build(cls, teacher: nn.Module, features: QAFeatures, device: torch.device | None = None,
              layers: list[str] | tuple[str, ...] = ()) -> "SpanBank":
        """The bank of ``features``' windows; ``layers``: teacher layers whose hidden states
        every batch carries (none: logits only)."""
        inputs = {name: tensor.to(device) for name, tensor in features.inputs.items()}
        return cls(inputs, features.start_positions.to(device), features.end_positions.to(device),
                   teacher_span_rows(teacher, inputs), teacher if layers else None, tuple(layers))

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, index: torch.Tensor):
        inputs = {name: tensor[index] for name, tensor in self.inputs.items()}
        teacher = self.teacher_logits[index]
        hidden = teacher_hidden_states(self.teacher, list(self.layers), inputs) if self.teacher is not None else []
        return (inputs, torch.cat([self.starts[index], self.ends[index]]),
                torch.cat([teacher[:, 0], teacher[:, 1]]), hidden)
