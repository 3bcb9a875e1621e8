"""Stage 4a (``Policy(schedule="graft")``): progressive grafting before end-to-end distillation."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt.derive import kept_layers
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views
from fewshot_kd.errors import UnsupportedLayerError


def graft_stage_(job: Job, student: nn.Module, views: Views, policy: Policy, decisions: dict,
                 options: dict) -> tuple[list[dict], dict]:
    """Graft ``student``'s blocks into the teacher in ``policy.graft_stages`` stages, in place,
    each trained for its share of ``policy.graft_share`` of the steps on the teacher's logits
    (no feature hints: the teacher around a block is the hint). Returns the loss history and
    what was grafted (``units``, ``stages``, ``steps_per_stage``, ``end_to_end_steps``)."""
    from fewshot_kd.adapt._distill_loop import distill_
    from fewshot_kd.distill.graft import Hybrid, graft_units, stage_groups

    example = views.bank.batch(torch.arange(1))[0]
    units = graft_units(job.teacher, student, example, kept_layers(job.teacher, decisions))
    if len(units) < 2:
        raise UnsupportedLayerError(
            f"schedule='graft' needs a student whose blocks stand in for the teacher's (a derived residual network or "
            f"transformer); found {len(units)} such block(s) in {type(student).__name__}. Use schedule='one_shot'")
    groups = stage_groups(units, policy.graft_stages)
    per_stage = max(1, round(policy.graft_share * policy.steps / len(groups)))
    history: list[dict] = []
    for index, group in enumerate(groups):
        grafted = {id(p) for u in group for p in _block(student, u).parameters()}
        earlier = [p for p in student.parameters() if p.requires_grad and id(p) not in grafted]
        for p in earlier:  # only this stage's blocks learn; the rest of the hybrid is the teacher or done
            p.requires_grad_(False)
        try:
            hybrid = Hybrid(job.teacher, student, [u for g in groups[: index + 1] for u in g])
            stage = distill_(hybrid, views.bank, [], steps=per_stage, lr=policy.lr,
                             description=f"grafting {index + 1}/{len(groups)}",
                             **{**options, "feature_weight": 0.0, "layer_weights": None, "layer_lr_scale": {}})
        finally:
            for p in earlier:
                p.requires_grad_(True)
        history += [{**entry, "step": entry["step"] + len(history), "stage": f"graft {index + 1}"} for entry in stage]
    return history, {"units": [u.name for u in units], "stages": [[u.name for u in g] for g in groups],
                     "steps_per_stage": per_stage, "end_to_end_steps": max(0, policy.steps - per_stage * len(groups))}


def _block(student: nn.Module, unit) -> nn.Module:
    return list(student.get_submodule(unit.container).children())[unit.student_index]
