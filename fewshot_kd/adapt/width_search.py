"""Prune a transformer student's heads and FFN neurons by one shared ratio, the smallest that
brings a measured fraction of the teacher (MACs or params) under a goal (bisection)."""

from __future__ import annotations

import copy
from typing import Callable

import torch.nn as nn

from fewshot_kd.prune.transformer import prune_transformer_

SEARCH_STEPS = 12
MAX_PRUNE_RATIO = 0.95


def pruned_copy(student: nn.Module, ratio: float) -> nn.Module:
    """A copy of ``student`` with ``ratio`` of every layer's heads and FFN neurons removed (lowest L1 first)."""
    trial = copy.deepcopy(student)
    if ratio > 0:
        prune_transformer_(trial, head_ratio=ratio, ffn_ratio=ratio)
    return trial


def prune_to_goal(student: nn.Module, fraction: Callable[[nn.Module], float],
                  goal: float | None) -> tuple[nn.Module, float]:
    """``(student, ratio)``: ``student`` itself (ratio 0) when ``fraction(student) <= goal`` or
    there is no goal, else a copy pruned by the smallest ratio (to 1/2^12) whose fraction fits."""
    if goal is None or fraction(student) <= goal:
        return student, 0.0
    low, high = 0.0, MAX_PRUNE_RATIO
    for _ in range(SEARCH_STEPS):
        middle = (low + high) / 2
        low, high = (low, middle) if fraction(pruned_copy(student, middle)) <= goal else (middle, high)
    return pruned_copy(student, high), high
