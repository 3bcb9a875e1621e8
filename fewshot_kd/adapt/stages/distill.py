"""Stage 4: distil the teacher into the student on the cached views, then recalibrate BatchNorm."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.adapt._distill_loop import agreement, distill_
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views
from fewshot_kd.distill.loop import recalibrate_batchnorm_
from fewshot_kd.errors import FewShotKDError


@dataclass(frozen=True)
class Distilled:
    """The loss history, how long it took, how many BatchNorms were recalibrated (``None``: not
    asked for, or text) and the student's top-1 agreement with the teacher on the views."""

    history: list[dict]
    seconds: float
    batchnorms_recalibrated: int | None
    teacher_agreement_on_views: float
    graft: dict | None = None
    ramp: dict | None = None
    student: nn.Module | None = None


def loop_options(job: Job, policy: Policy) -> dict:
    """The keyword arguments of :func:`distill_` that distillation and QAT share."""
    return dict(weight_decay=policy.weight_decay, batch_size=policy.batch_size, temperature=policy.temperature,
                alpha=policy.alpha, feature_weight=policy.feature_weight, layer_weights=policy.layer_weights,
                layer_lr_scale=policy.layer_lr_scale, seed=job.seed, progress=job.progress,
                channels_last=policy.channels_last)


def distill_stage_(job: Job, student: nn.Module, views: Views, policy: Policy,
                   decisions: dict | None = None) -> Distilled:
    """Train ``student`` in place: ``policy.steps`` at ``policy.lr`` when derived, else
    ``new_arch_steps`` at ``new_arch_lr``. A derived student with ``schedule="graft"`` is first
    grafted into the teacher stage by stage (``decisions``: what derive cut), then distilled
    end to end for the steps left; with ``prune_rounds > 1`` the student is re-derived round by
    round instead (``Distilled.student`` is the one trained)."""
    tick = time.perf_counter()
    steps = policy.steps if job.derive else policy.new_arch_steps
    history, graft, ramp = [], None, None
    if job.derive and policy.prune_rounds > 1:
        if policy.schedule == "graft":
            raise FewShotKDError("schedule='graft' and prune_rounds > 1 are two progressive schedules; choose one")
        from fewshot_kd.adapt.stages.ramp import ramp_stage_

        student, history, ramp = ramp_stage_(job, student, views, policy, decisions or {}, loop_options(job, policy))
        steps = 0
    elif job.derive and policy.schedule == "graft":
        from fewshot_kd.adapt.stages.graft import graft_stage_

        history, graft = graft_stage_(job, student, views, policy, decisions or {}, loop_options(job, policy))
        steps = graft["end_to_end_steps"]
    if steps > 0:
        done = len(history)  # steps count on from the grafting stages'
        history += [{**entry, "step": entry["step"] + done, **({"stage": "end to end"} if graft else {})}
                    for entry in distill_(student, views.bank, [s for _, s in views.pairs], steps=steps,
                                          lr=policy.lr if job.derive else policy.new_arch_lr,
                                          description="distilling", **loop_options(job, policy))]
    seconds = time.perf_counter() - tick
    recalibrated = None
    if policy.bn_recalibrate and isinstance(views.bank.inputs, torch.Tensor):
        recalibrated = recalibrate_batchnorm_(student, views.real_inputs)
    return Distilled(history, seconds, recalibrated, agreement(student, views.bank), graft, ramp, student)
