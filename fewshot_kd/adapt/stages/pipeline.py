"""adapt()'s stages in order: derive, views, repair, distill, quantize/export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from fewshot_kd.adapt.adapt_report import Stages
from fewshot_kd.adapt.mixed_bits import with_chosen_bits
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.derive import derive
from fewshot_kd.adapt.stages.distill import Distilled, distill_stage_
from fewshot_kd.adapt.stages.export import Exported, export_stage_
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.repair import repair_
from fewshot_kd.adapt.stages.views import Views, cache_views


@dataclass(frozen=True)
class Finished:
    """The trained student (eval mode), what derive cut, the loss history (distillation then
    QAT), the exported artifact and its bytes, and the report's ``stages`` entry."""

    student: nn.Module
    decisions: dict
    history: list[dict]
    artifact: Path
    artifact_bytes: int
    stages: Stages


def run_stages(job: Job, student: nn.Module | None, policy: Policy) -> Finished:
    """Run every stage on ``job`` with ``policy``; ``student`` is the given one (``None`` to derive)."""
    derived = derive(job, student, policy)
    student = derived.student
    policy = with_chosen_bits(policy, derived.decisions)  # a mixed-bits size fit's widths, for QAT and export
    views = cache_views(job, student, policy)
    repaired = repair_(job, student, views, policy)
    distilled = distill_stage_(job, student, views, policy, derived.decisions)
    student = distilled.student
    exported = export_stage_(job, student, views, policy)
    stages = _stages(derived.seconds, views, repaired, distilled, exported)
    decisions = _decisions(derived.decisions, distilled)
    return Finished(student.eval(), decisions, distilled.history + exported.history, exported.artifact,
                    exported.bytes, stages)


def _decisions(derived: dict, distilled: Distilled) -> dict:
    """What derive cut, and what grafting or the pruning rounds did; after pruning rounds the student's
    MACs, params and channels are those of the last round (``prune``'s other entries: the one-shot
    derivation that set the rounds' MACs goal)."""
    decisions = {**derived, **({"graft": distilled.graft} if distilled.graft else {})}
    if distilled.ramp:
        last = distilled.ramp["rounds"][-1]
        decisions.update(macs_fraction=last["macs_fraction"], params_fraction=last["params_fraction"],
                         prune={**derived.get("prune", {}), "channels": distilled.ramp["channels"]}, ramp=distilled.ramp)
    return decisions


def _stages(derive_seconds: float, views: Views, repaired, distilled: Distilled, exported: Exported) -> Stages:
    made = views.synthetic
    synthetic = {} if made is None else dict(
        synthetic_inputs=len(made.inputs), synthetic_seconds=made.seconds,
        synthetic_teacher_agreement=made.teacher_agreement, synthetic_bn_loss=list(made.bn_loss))
    return Stages(
        derive_seconds=derive_seconds, unlabelled_inputs=views.unlabelled_inputs,
        image_only_views_skipped=views.image_only_views_skipped, mixed_views=views.mixed_views, **synthetic,
        teacher_cache_seconds=views.seconds, views=len(views.bank), distilled_layers=[list(p) for p in views.pairs],
        reconstruction=None if repaired is None else repaired.to_dict(), distill_seconds=distilled.seconds,
        batchnorms_recalibrated=distilled.batchnorms_recalibrated,
        teacher_agreement_on_views=distilled.teacher_agreement_on_views, quantize_seconds=exported.quantize_seconds,
        qat_steps=exported.qat_steps)
