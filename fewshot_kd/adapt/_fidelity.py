"""After distillation: the student's agreement with the teacher on held-out views of the
shots, and a warning when it has collapsed (a diverged run that never hit NaN)."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from fewshot_kd.distill.views import augmented_copies
from fewshot_kd.data.dataset import LabelledDataset

HELDOUT_SEED = 104_729  # added to the seed: augmentations distillation never drew
HELDOUT_VIEWS = 4  # augmented copies per shot


def _predict(model: nn.Module, inputs) -> torch.Tensor:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        batches = [inputs[s:s + 256] for s in range(0, len(inputs), 256)]
        return torch.cat([model.eval()(b.to(device) if isinstance(b, torch.Tensor) else b).argmax(-1).cpu()
                          for b in batches])


def heldout_agreement(teacher: nn.Module, student: nn.Module, support: LabelledDataset, policy,
                      seed: int) -> tuple[dict, list[str]]:
    """``({views, teacher_agreement, collapse_below}, warnings)``. Collapsed: agreement less
    than a quarter of the way from always answering the teacher's most frequent class to 1
    (not judged when the teacher itself answers one class on 90 % of the views)."""
    inputs = augmented_copies(support.all_inputs(), HELDOUT_VIEWS + 1, policy.crop_padding, policy.flip,
                              policy.text_word_dropout, seed + HELDOUT_SEED)[len(support):]
    teacher_says, student_says = _predict(teacher, inputs), _predict(student, inputs)
    agree = (student_says == teacher_says).float().mean().item()
    majority = torch.bincount(teacher_says).max().item() / len(teacher_says)
    floor = majority + 0.25 * (1.0 - majority)
    info = {"views": len(teacher_says), "teacher_agreement": agree, "collapse_below": floor}
    if agree >= floor or majority >= 0.9:  # a teacher that answers one class on these views tells nothing
        return info, []
    note = (f"the student agrees with the teacher on only {agree:.0%} of held-out views (always answering the "
            f"teacher's most frequent class gives {majority:.0%}): distillation collapsed or barely ran; lower "
            f"the policy's learning rate (lr, or new_arch_lr for a given student) if it diverged, else give "
            f"more steps, or check the data")
    warnings.warn(note, stacklevel=3)
    return info, [note]
