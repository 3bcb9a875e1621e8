"""A meta-learned policy applied to an extractive-QA teacher: which encoder layers the student
keeps, and the distillation's temperature, alpha, learning rate and steps, decided on the K
labelled questions' windows as meta-training's QA episodes decide them
(:mod:`fewshot_kd.meta.span_episodes`).

The policy chooses which layers when the target gives only their number (``layers: 3``) or none
(then as many as adapt()'s QA default keeps, half of them); a list such as ``[0, 2, 4]`` or
``"last 3"`` is kept as given. Without a MACs target the budget the policy sees is the kept
layers' share (3 of 6: 0.5), as in a QA meta-training run at ``--macs-range 0.5 0.5``. Not
applied: per-layer prune ratios and bit widths (the QA path prunes every kept layer alike to
``target.macs`` and stores every weight at ``target.bits``) and per-layer learning-rate scales.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from fewshot_kd.adapt.policy import HAND_SET_TEXT
from fewshot_kd.adapt.qa.derive import default_layers
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.distill.loop import stopped_steps
from fewshot_kd.meta.descriptors import describe_model, task_features
from fewshot_kd.meta.meta_policy import MetaPolicy
from fewshot_kd.meta.span_episodes import DESCRIBED_WINDOWS, SpanRows
from fewshot_kd.model_io import model_device, to_device, trainable_copy
from fewshot_kd.models.text import layer_count, layer_indices


def layers_to_choose(target: Target, total: int) -> int | None:
    """How many encoder layers the policy picks: ``target.layers`` when it is a bare count, adapt()'s
    QA default count when it is unset, None when the target names the layers itself."""
    if target.layers is None:
        return len(layer_indices(default_layers(total), total))
    return layer_count(target.layers)


@torch.no_grad()
def decide_qa(meta: MetaPolicy, teacher: nn.Module, windows: dict, shots: int, target: Target,
              base: QAPolicy) -> tuple[QAPolicy, Target, dict]:
    """``(policy, target, info)`` for compressing the QA ``teacher`` from ``shots`` labelled
    questions whose windows (model inputs) are ``windows``: ``base`` with the learned temperature,
    alpha, learning rate (adapt()'s text rate x the learned scale, as the inner loop steps) and
    steps (the learned stop fraction of ``base.steps``), and ``target`` with the chosen layers."""
    total = teacher.config.num_hidden_layers
    choose = layers_to_choose(target, total) if meta.learned_blocks else None
    subject = SpanRows(trainable_copy(teacher))
    device = model_device(teacher)
    example = to_device({name: tensor[:1] for name, tensor in windows.items()}, device)
    with torch.enable_grad():
        desc = describe_model(subject, example, to_device(windows, device), [], max_examples=DESCRIBED_WINDOWS)
    kept = choose or len(layer_indices(target.layers or default_layers(total), total))  # as many as adapt() keeps
    budget = target.macs if target.macs is not None else kept / total
    here = model_device(meta.net)
    task = task_features(shots, base.max_length, budget, target.bits, text=True)
    decisions = meta.net(desc.to(here), task.to(here), budget, target.bits, keep_blocks=choose)
    layers = list(decisions.kept_blocks) if decisions.kept_blocks is not None else target.layers
    steps = stopped_steps(float(decisions.stop_fraction), base.steps) if meta.learned_stop else base.steps
    policy = replace(base, temperature=round(float(decisions.temperature), 4), alpha=round(float(decisions.alpha), 4),
                     lr=float(HAND_SET_TEXT.lr * decisions.inner_lr_scale), steps=steps)
    info = {"kept_layers": layers, "budget_macs": budget, "temperature": policy.temperature, "alpha": policy.alpha,
            "lr": policy.lr, "steps": steps, "inner_lr_scale": float(decisions.inner_lr_scale),
            "block_scores": None if decisions.block_scores is None else
            [round(float(s), 4) for s in decisions.block_scores], "trained_on": meta.trained_on}
    return policy, replace(target, layers=layers), info
