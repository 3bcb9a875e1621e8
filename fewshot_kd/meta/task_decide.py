"""A meta-learned policy applied to a transformer teacher of another task type (extractive QA,
causal LM): which blocks the student keeps, and the distillation's temperature, alpha, learning
rate and steps, decided on the K shots as meta-training's episodes of that task decide them.

The policy chooses which blocks when the target gives only their number (``layers: 3``) or none
(then as many as adapt()'s default for the task keeps); a list such as ``[0, 2, 4]`` or
``"last 3"`` is kept as given. Without a MACs target the budget the policy sees is the kept
blocks' share (3 of 6: 0.5), as in a meta-training run at ``--macs-range 0.5 0.5``. Not applied:
per-layer prune ratios and bit widths (these paths prune every kept block alike to ``target.macs``
and store every weight at ``target.bits``) and per-layer learning-rate scales.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from fewshot_kd.adapt.target import Target
from fewshot_kd.distill.loop import stopped_steps
from fewshot_kd.meta.descriptors import describe_model, task_features
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.model_io import model_device, to_device
from fewshot_kd.models.text import layer_count, layer_indices


@dataclass(frozen=True)
class TaskSubject:
    """What the policy reads: ``model``, the student's starting point viewed as meta-training's
    episodes view it (its rows, its blocks as ``encoder``); ``inputs``, the shots' model inputs
    (``example`` is one of them); ``described``, how many of them the sensitivities run on;
    ``ways``, the task vector's class count (rows' width: window length or vocabulary);
    ``blocks``, the teacher's block count; ``default_layers``, what adapt() keeps without a target;
    ``lr``, the learning rate the inner loop scales (the meta-training family's)."""

    model: nn.Module
    inputs: object
    example: object
    described: int
    ways: int
    blocks: int
    default_layers: object
    lr: float


def layers_to_choose(target: Target, total: int, default_layers) -> int | None:
    """How many blocks the policy picks: ``target.layers`` when it is a bare count, adapt()'s
    default count when it is unset, None when the target names the layers itself."""
    if target.layers is None:
        return len(layer_indices(default_layers, total))
    return layer_count(target.layers)


@torch.no_grad()
def decide_task(meta: MetaPolicy, subject: TaskSubject, shots: int, target: Target, base) -> tuple[object, Target, dict]:
    """``(policy, target, info)``: ``base`` (a task policy with ``temperature``, ``alpha``, ``lr``
    and ``steps``) with the learned temperature, alpha, learning rate (``subject.lr`` x the
    learned scale, as the inner loop steps) and steps (the learned stop fraction of
    ``base.steps``), and ``target`` with the chosen blocks."""
    total = subject.blocks
    choose = layers_to_choose(target, total, subject.default_layers) if meta.learned_blocks else None
    device = model_device(subject.model)
    with torch.enable_grad():
        desc = describe_model(subject.model, to_device(subject.example, device), to_device(subject.inputs, device),
                              [], max_examples=subject.described)
    kept = choose or len(layer_indices(target.layers or subject.default_layers, total))  # as many as adapt() keeps
    budget = target.macs if target.macs is not None else kept / total
    here = model_device(meta.net)
    task = task_features(shots, subject.ways, budget, target.bits, text=True)
    decisions = meta.net(desc.to(here), task.to(here), budget, target.bits, keep_blocks=choose)
    layers = list(decisions.kept_blocks) if decisions.kept_blocks is not None else target.layers
    steps = stopped_steps(float(decisions.stop_fraction), base.steps) if meta.learned_stop else base.steps
    policy = replace(base, temperature=round(float(decisions.temperature), 4), alpha=round(float(decisions.alpha), 4),
                     lr=float(subject.lr * decisions.inner_lr_scale), steps=steps)
    info = {"kept_layers": layers, "budget_macs": budget, "temperature": policy.temperature, "alpha": policy.alpha,
            "lr": policy.lr, "steps": steps, "inner_lr_scale": float(decisions.inner_lr_scale),
            "block_scores": None if decisions.block_scores is None else
            [round(float(s), 4) for s in decisions.block_scores], "trained_on": meta.trained_on}
    return policy, replace(target, layers=layers), info
