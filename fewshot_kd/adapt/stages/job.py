"""What every stage of adapt() reads: the teacher, the shots and the call's settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.data.dataset import LabelledDataset


@dataclass(frozen=True)
class Job:
    """One adapt() call's inputs, resolved: ``derive`` says whether the student is cut from the
    teacher; ``work`` is the folder the exported files go to."""

    teacher: nn.Module
    support: LabelledDataset
    unlabelled: object
    target: Target
    seed: int
    device: torch.device
    work: Path
    derive: bool
    progress: bool = True
