"""The student of a causal LM, derived from the teacher: its blocks 0, 2, 4, ... (DistilGPT-2
style) or the blocks ``target.layers`` names, then, while the MACs (or params) still exceed the
target, the same fraction of every kept block's heads and FFN neurons pruned away (lowest L1 first)."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_derive import prune_to_target
from fewshot_kd.models._text_layers import layer_indices
from fewshot_kd.models.causal_lm import gpt2_blocks, keep_blocks
from fewshot_kd.prune.gpt2 import find_gpt2_layers


def kept_block_indices(teacher: nn.Module, layers: str | None) -> list[int]:
    """``target.layers`` (``"first 3"`` / ``"last 2"``) as block indices, default every other block."""
    total = len(gpt2_blocks(teacher))
    return layer_indices(layers, total) if layers else list(range(0, total, 2))


def derive_lm_student(teacher: nn.Module, target: Target, example_ids: torch.Tensor) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: the kept blocks of a copy of ``teacher``, pruned further to
    ``target.macs`` / ``target.params`` (fractions of the teacher's, MACs on ``example_ids``)."""
    indices = kept_block_indices(teacher, target.layers)
    student, decisions = prune_to_target(teacher, keep_blocks(teacher, indices), target, {"input_ids": example_ids},
                                         find_gpt2_layers)
    return student, {"derived_from_teacher": True, "kept_blocks": indices, **decisions}
