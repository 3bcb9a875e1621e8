"""The student of an extractive QA model, derived from the teacher: the encoder layers
``target.layers`` names (default the last 3, with the embeddings and span head), then, while the
MACs (or params) still exceed the target, the same fraction of every kept layer's heads and
FFN neurons pruned away (lowest L1 first)."""

from __future__ import annotations

import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_derive import prune_to_target
from fewshot_kd.models.qa_model import truncate_qa_layers
from fewshot_kd.prune.transformer import find_transformer_layers

DEFAULT_LAYERS = "last 3"


def derive_qa_student(teacher: nn.Module, target: Target, example_inputs: dict) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: a copy of ``teacher`` keeping ``target.layers`` (default
    ``"last 3"``, or all layers when the teacher has no more), pruned further to ``target.macs``
    / ``target.params`` (fractions of the teacher's; MACs on ``example_inputs``, one window)."""
    total = teacher.config.num_hidden_layers
    layers = target.layers or (DEFAULT_LAYERS if total > 3 else f"first {total}")
    student, decisions = prune_to_target(teacher, truncate_qa_layers(teacher, layers), target, example_inputs,
                                         find_transformer_layers)
    return student, {"derived_from_teacher": True, "kept_layers": layers, **decisions}
