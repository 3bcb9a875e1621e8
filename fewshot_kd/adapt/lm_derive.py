"""The student of a causal LM, derived from the teacher: its blocks 0, 2, 4, ... (DistilGPT-2
style) or the blocks ``target.layers`` names, then, while the MACs (or params) still exceed the
target, the same fraction of every kept block's heads and FFN neurons pruned away (lowest L1 first)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.measure import count_macs, count_params
from fewshot_kd.models._text_layers import layer_indices
from fewshot_kd.models.causal_lm import gpt2_blocks, keep_blocks
from fewshot_kd.prune.gpt2 import find_gpt2_layers
from fewshot_kd.prune.transformer import prune_transformer_

SEARCH_STEPS = 12
MAX_PRUNE_RATIO = 0.95


def kept_block_indices(teacher: nn.Module, layers: str | None) -> list[int]:
    """``target.layers`` (``"first 3"`` / ``"last 2"``) as block indices, default every other block."""
    total = len(gpt2_blocks(teacher))
    return layer_indices(layers, total) if layers else list(range(0, total, 2))


def _pruned(student: nn.Module, ratio: float) -> nn.Module:
    trial = copy.deepcopy(student)
    if ratio > 0:
        prune_transformer_(trial, head_ratio=ratio, ffn_ratio=ratio)
    return trial


def derive_lm_student(teacher: nn.Module, target: Target, example_ids: torch.Tensor) -> tuple[nn.Module, dict]:
    """``(student, decisions)``: the kept blocks of a copy of ``teacher``, pruned further to
    ``target.macs`` / ``target.params`` (fractions of the teacher's, MACs on ``example_ids``)."""
    inputs = {"input_ids": example_ids}
    indices = kept_block_indices(teacher, target.layers)
    student = keep_blocks(teacher, indices)
    teacher_macs, teacher_params = count_macs(teacher, inputs), count_params(teacher)

    def fraction(model: nn.Module) -> float:
        if target.params is not None:
            return count_params(model) / teacher_params
        return count_macs(model, inputs) / teacher_macs

    goal = target.params if target.params is not None else target.macs
    ratio = 0.0
    if goal is not None and fraction(student) > goal:
        low, high = 0.0, MAX_PRUNE_RATIO
        for _ in range(SEARCH_STEPS):
            middle = (low + high) / 2
            low, high = (low, middle) if fraction(_pruned(student, middle)) <= goal else (middle, high)
        ratio = high
        student = _pruned(student, ratio)
    layers = find_gpt2_layers(student)
    decisions = {
        "derived_from_teacher": True,
        "kept_blocks": indices,
        "prune_ratio": round(ratio, 4),
        "heads": [layer.num_heads for layer in layers],
        "ffn": [layer.ffn_width for layer in layers],
        "macs_fraction": count_macs(student, inputs) / teacher_macs,
        "params_fraction": count_params(student) / teacher_params,
    }
    return student, decisions
