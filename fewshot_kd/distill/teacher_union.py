"""Several specialist teachers as one teacher over the union of their classes.

Each teacher's logits are placed at its classes' columns of the union (every other column far
below its own logits, so it puts no probability there), and
:func:`~fewshot_kd.distill.multi_teacher.multi_teacher_soft_targets` mixes the teachers'
temperature-softened probabilities. The module returns ``T * log(mixture)``: whatever
softens it at the same ``T`` (the view bank's KD term) gets the mixture back exactly, so
KD + cross-entropy on these logits is :func:`~fewshot_kd.distill.multi_teacher.multi_teacher_kd_loss`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from fewshot_kd.distill.multi_teacher import multi_teacher_soft_targets

ABSENT_GAP = 1e4
"""How far below a teacher's lowest logit the union's columns it does not cover are placed."""
AVERAGE = "probs"
"""How the teachers' outputs are mixed: ``sum_k w_k softmax(t_k / T)`` (equal weights)."""


class TeacherUnion(nn.Module):
    """``teachers[k]`` outputs one logit per class in ``classes[k]`` (class ids of the union,
    ``0 .. num_classes - 1``); the forward returns ``[batch, num_classes]`` logits whose
    softmax at ``temperature`` is the teachers' probability mixture (argmax: the mixture's)."""

    def __init__(self, teachers: Sequence[nn.Module], classes: Sequence[Sequence[int]], num_classes: int,
                 temperature: float = 4.0) -> None:
        super().__init__()
        if len(teachers) != len(classes):
            raise ValueError(f"{len(teachers)} teachers but {len(classes)} class lists; give one list per teacher")
        self.teachers = nn.ModuleList(teachers)
        self.classes = [tuple(int(c) for c in cs) for cs in classes]
        self.num_classes = int(num_classes)
        self.temperature = float(temperature)

    def at_temperature(self, temperature: float) -> "TeacherUnion":
        """The same teachers (shared, not copied), mixed at ``temperature``."""
        return TeacherUnion(list(self.teachers), self.classes, self.num_classes, temperature)

    def placed_logits(self, inputs) -> list[torch.Tensor]:
        """Every teacher's logits at its classes' columns of the union."""
        placed = []
        for teacher, columns in zip(self.teachers, self.classes):
            logits = teacher(inputs).float()
            floor = logits.detach().min(dim=-1, keepdim=True).values - ABSENT_GAP
            row = floor.expand(len(logits), self.num_classes).clone()
            row[:, list(columns)] = logits
            placed.append(row)
        return placed

    def forward(self, inputs) -> torch.Tensor:
        mixture = multi_teacher_soft_targets(self.placed_logits(inputs), temperature=self.temperature, average=AVERAGE)
        return self.temperature * mixture.clamp_min(torch.finfo(mixture.dtype).tiny).log()


def is_teacher_union(model) -> bool:
    return isinstance(model, TeacherUnion)
