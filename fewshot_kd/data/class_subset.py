"""A dataset cut down to some of its classes, relabelled ``0 .. len(classes) - 1`` in the
order given: the data a specialist teacher of those classes is trained on."""

from __future__ import annotations

from typing import Sequence

import torch

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import BadInputError


def class_subset(data: LabelledDataset, classes: Sequence[int], name: str | None = None) -> LabelledDataset:
    """The examples of ``classes`` (label ids of ``data``); the ``i``-th listed class becomes label ``i``."""
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < data.num_classes for c in classes):
        raise BadInputError(f"classes must be distinct label ids in 0..{data.num_classes - 1}, got {classes}")
    relabel = torch.full((data.num_classes,), -1, dtype=torch.long)
    relabel[classes] = torch.arange(len(classes))
    keep = torch.nonzero(relabel[data.labels] >= 0).flatten()
    part = data.subset(keep, name or f"{data.name}[{','.join(map(str, classes))}]")
    return LabelledDataset(part.inputs, relabel[part.labels], tuple(data.class_names[c] for c in classes), part.name)
