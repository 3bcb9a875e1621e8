"""Derive a student from the teacher: physically pruned (and, for text, layer-truncated)
copies that keep the teacher's weights wherever the target allows."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.target import Target
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.measure import count_macs, count_params
from fewshot_kd.model_io import trainable_copy
from fewshot_kd.models.text import is_text_model


def _shot_batches(shots: LabelledDataset, batch_size: int = 64) -> list:
    return [(shots.input_batch(slice(s, s + batch_size)), shots.labels[s : s + batch_size])
            for s in range(0, len(shots), batch_size)]


def derive_student(teacher: nn.Module, shots: LabelledDataset, target: Target, policy: Policy,
                   tolerance: float = 0.02, below_ok: bool = True) -> tuple[nn.Module, dict]:
    """A pruned copy of ``teacher`` meeting ``target.macs`` / ``target.params`` (fractions of
    the teacher's, met within ``tolerance``; with ``below_ok``, a target that falls between two
    channel counts takes the closest count below it). Returns ``(student, decisions)`` where
    decisions records what was cut."""
    from fewshot_kd.prune import prune_
    from fewshot_kd.prune.importance import needs_gradients

    example = shots.input_batch(slice(0, 1))
    student = trainable_copy(teacher).eval()
    decisions: dict = {"derived_from_teacher": True}
    if is_text_model(teacher) and target.layers:
        from fewshot_kd.models.text import layer_count, layer_indices, truncate_layers

        kept = layer_indices(target.layers, student.num_layers, policy.text_layers)
        student = truncate_layers(student, keep=kept)
        # "last 3" stays as given; a count or an index list is recorded as the indices kept
        decisions["kept_layers"] = target.layers if isinstance(target.layers, str) and layer_count(target.layers) is None \
            else kept
    teacher_macs, teacher_params = count_macs(teacher, example), count_params(teacher)
    budget = {}
    if target.macs is not None:
        budget["target_macs"] = target.macs * teacher_macs
        remaining = budget["target_macs"] / count_macs(student, example)
    elif target.params is not None:
        budget["target_params"] = target.params * teacher_params
        remaining = budget["target_params"] / count_params(student)
    else:
        remaining = 1.0
    if remaining < 0.999 and policy.structure == "blocks" and isinstance(example, torch.Tensor):
        from fewshot_kd.prune.blocks import drop_blocks_

        budget_macs = budget.get("target_macs")
        if budget_macs is not None:
            dropped = drop_blocks_(student, shots.all_inputs(), budget_macs)
            decisions["dropped_blocks"] = {"blocks": list(dropped.dropped), "scores": dropped.scores}
            remaining = budget_macs / count_macs(student, example)
    if remaining < 0.999:
        data = _shot_batches(shots) if needs_gradients(policy.prune_importance) else None
        shape = {"round_to": policy.prune_round_to, "streams": policy.structure == "width"}
        if policy.per_layer_prune and budget:
            per_layer = scaled_per_layer(student, example, policy.per_layer_prune, budget, policy.prune_importance, data,
                                         **shape)
            report = prune_(student, example, ratio=0.0, importance=policy.prune_importance, per_layer=per_layer, data=data,
                            **shape)
            decisions["per_layer_prune"] = per_layer
        else:
            report = prune_(student, example, importance=policy.prune_importance,
                            per_layer=policy.per_layer_prune or None, data=data, tolerance=tolerance,
                            below_ok=below_ok, **budget, **shape)
        decisions["prune"] = {
            "ratio": report.ratio,
            "importance": report.importance,
            "channels": {name: list(pair) for name, pair in report.channels.items()},
            "heads": {name: list(pair) for name, pair in report.heads.items()},
            "frozen": list(report.frozen),
            "seconds": report.seconds,
        }
    decisions["macs_fraction"] = count_macs(student, example) / teacher_macs
    decisions["params_fraction"] = count_params(student) / teacher_params
    return student, decisions


def kept_layers(teacher: nn.Module, decisions: dict) -> list[int] | None:
    """The teacher's encoder layers a derived text student kept, as indices (``decisions["kept_layers"]``
    may hold ``"last 3"``); ``None`` when derivation truncated no layers."""
    kept = decisions.get("kept_layers")
    if kept is None:
        return None
    from fewshot_kd.models._text_layers import encoder_layers, layer_indices

    return layer_indices(kept, len(encoder_layers(teacher.encoder)))


def scaled_per_layer(model: nn.Module, example, ratios: dict, budget: dict, importance: str, data,
                     max_ratio: float = 0.9, round_to: int | None = None, streams: bool = False) -> dict:
    """The per-layer prune ratios ``ratios``, scaled together (bisection on real pruned
    copies) until the model meets the MACs / params ``budget`` (``round_to``, ``streams`` as
    :func:`~fewshot_kd.prune.prune_`'s)."""
    from fewshot_kd.prune import prune_
    from fewshot_kd.prune.targets import resolve_budget, search_ratio

    mean = sum(ratios.values()) / len(ratios) or 1.0
    by_macs = "target_macs" in budget
    before = count_macs(model, example) if by_macs else count_params(model)

    def scaled(t: float) -> dict:
        return {name: min(max_ratio, r * t / mean) for name, r in ratios.items()}

    def measure(t: float) -> int:
        trial = copy.deepcopy(model)
        prune_(trial, example, ratio=0.0, importance=importance, per_layer=scaled(t), data=data, round_to=round_to,
               streams=streams)
        return count_macs(trial, example) if by_macs else count_params(trial)

    target = resolve_budget(budget["target_macs" if by_macs else "target_params"], before, "target")
    # uneven per-layer ratios move channel counts in coarse steps: the closest fit below the budget is taken
    t, _ = search_ratio(measure, target, max_ratio=max_ratio, what="MACs" if by_macs else "parameters", below_ok=True)
    return scaled(t)


def distilled_layers(teacher: nn.Module, student: nn.Module, policy: Policy, example) -> list[tuple[str, str]]:
    """Teacher/student layer pairs for block-wise feature distillation (none for text, whose
    token features change length with each batch's padding, nor for several teachers: each
    one's features speak for its classes only)."""
    from fewshot_kd.distill import map_layers
    from fewshot_kd.distill.teacher_union import is_teacher_union

    text = not isinstance(example, torch.Tensor) or is_text_model(teacher) or is_text_model(student)
    if policy.feature_weight <= 0 or text or is_teacher_union(teacher):
        return []
    with torch.no_grad():
        return map_layers(teacher, student, policy.feature_layers, example_inputs=example)
