"""The student of an extractive QA model, derived from the teacher: the encoder layers
``target.layers`` names (default the last 3, with the embeddings and span head), then, while the
MACs (or params) still exceed the target, the same fraction of every kept layer's heads and
FFN neurons pruned away (lowest L1 first)."""

from __future__ import annotations

import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.width_search import prune_to_goal
from fewshot_kd.measure import count_macs, count_params
from fewshot_kd.models.qa_model import truncate_qa_layers
from fewshot_kd.prune.transformer import find_transformer_layers

DEFAULT_LAYERS = "last 3"


def derive_qa_student(teacher: nn.Module, target: Target, example_inputs: dict) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: a copy of ``teacher`` keeping ``target.layers`` (default
    ``"last 3"``, or all layers when the teacher has no more), pruned further to ``target.macs``
    / ``target.params`` (fractions of the teacher's; MACs on ``example_inputs``, one window)."""
    total = teacher.config.num_hidden_layers
    layers = target.layers or (DEFAULT_LAYERS if total > 3 else f"first {total}")
    student = truncate_qa_layers(teacher, layers)
    teacher_macs, teacher_params = count_macs(teacher, example_inputs), count_params(teacher)

    def fraction(model: nn.Module) -> float:
        if target.params is not None:
            return count_params(model) / teacher_params
        return count_macs(model, example_inputs) / teacher_macs

    student, ratio = prune_to_goal(student, fraction, target.params if target.params is not None else target.macs)
    kept = find_transformer_layers(student)
    decisions = {
        "derived_from_teacher": True,
        "kept_layers": layers,
        "prune_ratio": round(ratio, 4),
        "heads": [layer.num_heads for layer in kept],
        "ffn": [layer.ffn_width for layer in kept],
        "macs_fraction": count_macs(student, example_inputs) / teacher_macs,
        "params_fraction": count_params(student) / teacher_params,
    }
    return student, decisions
