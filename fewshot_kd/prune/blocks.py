"""Block dropping: remove whole residual blocks (replace them by identity), the structured
pruning that recovers best from a few shots (Wang et al., "Practical Network Acceleration
with Tiny Sets", CVPR 2023). Which blocks go is decided by how much the model's output
changes on the shots when each one is removed alone (lowest first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.measure import count_macs


@dataclass(frozen=True)
class DropReport:
    dropped: tuple[str, ...]
    scores: dict[str, float]
    macs_before: int
    macs_after: int


def droppable_blocks(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the children of ``nn.Sequential`` containers whose output has the input's
    shape and that hold weights (residual blocks without downsampling)."""
    shapes: dict[str, tuple] = {}
    handles = []
    candidates = {}
    for parent_name, parent in model.named_modules():
        if isinstance(parent, nn.Sequential):
            for child_name, child in parent.named_children():
                if any(True for _ in child.parameters()):
                    candidates[f"{parent_name}.{child_name}" if parent_name else child_name] = child

    def hook(name):
        def record(module, inputs, output):
            if isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (tuple(inputs[0].shape), tuple(output.shape))
        return record

    for name, module in candidates.items():
        handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model.eval()(example_inputs)
    finally:
        for h in handles:
            h.remove()
    return [n for n, (i, o) in shapes.items() if i == o]


def _swap(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, module)
    return old


@torch.no_grad()
def drop_scores(model: nn.Module, inputs: torch.Tensor, blocks: list[str]) -> dict[str, float]:
    """KL divergence between the model's predictions with and without each block, on ``inputs``."""
    model.eval()
    reference = F.log_softmax(model(inputs), -1)
    scores = {}
    for name in blocks:
        old = _swap(model, name, nn.Identity())
        try:
            changed = F.log_softmax(model(inputs), -1)
            scores[name] = F.kl_div(changed, reference, log_target=True, reduction="batchmean").item()
        finally:
            _swap(model, name, old)
    return scores


def drop_blocks_(model: nn.Module, inputs: torch.Tensor, target_macs: float,
                 score: Callable[..., dict[str, float]] = drop_scores) -> DropReport:
    """Replace the least harmful residual blocks by ``nn.Identity`` (in place) until the
    model's MACs per example are at most ``target_macs`` or no droppable block is left."""
    example = inputs[:1]
    before = count_macs(model, example)
    blocks = droppable_blocks(model, example)
    scores = score(model, inputs, blocks)
    dropped = []
    macs = before
    for name in sorted(blocks, key=scores.get):
        if macs <= target_macs:
            break
        _swap(model, name, nn.Identity())
        dropped.append(name)
        macs = count_macs(model, example)
    return DropReport(tuple(dropped), scores, before, macs)
