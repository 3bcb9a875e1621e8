"""The student of an extractive QA model, derived from the teacher: the encoder layers
``target.layers`` names (default every other layer, DistilBERT's choice, with the embeddings and
span head), then, while the
MACs (or params) still exceed the target, the same fraction of every kept layer's heads and
FFN neurons pruned away (lowest L1 first)."""

from __future__ import annotations

import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_derive import prune_to_target
from fewshot_kd.models.qa_model import truncate_qa_layers
from fewshot_kd.prune.transformer import find_transformer_layers


def default_layers(total: int) -> list[int] | str:
    """Every other encoder layer (0, 2, 4 of 6; DistilBERT's choice), or all of them when the teacher has 3
    or fewer. On SQuAD the last 3 of MiniLM-L6's layers make a far weaker student than layers 0, 2, 4 (the README's
    ``qa`` block: the ``adapt`` and ``adapt@spread`` rows)."""
    return list(range(0, total, 2)) if total > 3 else f"first {total}"


def derive_qa_student(teacher: nn.Module, target: Target, example_inputs: dict) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: a copy of ``teacher`` keeping ``target.layers`` (default
    :func:`default_layers`), pruned further to ``target.macs``
    / ``target.params`` (fractions of the teacher's; MACs on ``example_inputs``, one window)."""
    total = teacher.config.num_hidden_layers
    layers = target.layers or default_layers(total)
    student, decisions = prune_to_target(teacher, truncate_qa_layers(teacher, layers), target, example_inputs,
                                         find_transformer_layers)
    return student, {"derived_from_teacher": True, "kept_layers": layers, **decisions}
