"""What deriving a task-type student (causal LM, extractive QA) shares: after the kept layers are
chosen, the same fraction of every layer's heads and FFN neurons pruned until the MACs (or params)
meet the target, and the decisions that say what was kept."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.width_search import prune_to_goal
from fewshot_kd.measure import count_macs, count_params


def prune_to_target(teacher: nn.Module, student: nn.Module, target: Target, inputs: dict,
                    find_layers: Callable[[nn.Module], list]) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: ``student`` pruned to ``target.macs`` / ``target.params`` (fractions
    of ``teacher``'s, MACs on ``inputs``); the decisions give the ratio, each layer's heads and FFN
    width and the fractions reached."""
    teacher_macs, teacher_params = count_macs(teacher, inputs), count_params(teacher)

    def fraction(model: nn.Module) -> float:
        if target.params is not None:
            return count_params(model) / teacher_params
        return count_macs(model, inputs) / teacher_macs

    student, ratio = prune_to_goal(student, fraction, target.params if target.params is not None else target.macs)
    layers = find_layers(student)
    return student, {
        "prune_ratio": round(ratio, 4),
        "heads": [layer.num_heads for layer in layers],
        "ffn": [layer.ffn_width for layer in layers],
        "macs_fraction": count_macs(student, inputs) / teacher_macs,
        "params_fraction": count_params(student) / teacher_params,
    }
