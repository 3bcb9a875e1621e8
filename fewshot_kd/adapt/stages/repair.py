"""Stage 3: least-squares repair of the derived student's pruned layers against the teacher."""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views


def repair_(job: Job, student: nn.Module, views: Views, policy: Policy):
    """Re-solve, in place, every layer that lost input channels on ``policy.reconstruct_inputs``
    random real views; the :class:`~fewshot_kd.adapt.reconstruct.Reconstruction`, or ``None``
    when off (a given student, no inputs asked for, or text)."""
    if not (job.derive and policy.reconstruct_inputs and isinstance(views.bank.inputs, torch.Tensor)):
        return None
    from fewshot_kd.adapt.reconstruct import reconstruct_

    inputs = views.real_inputs
    generator = torch.Generator().manual_seed(job.seed + 3)
    chosen = torch.randperm(len(inputs), generator=generator)[: policy.reconstruct_inputs].to(inputs.device)
    return reconstruct_(student, job.teacher, inputs[chosen], ridge=policy.reconstruct_ridge, seed=job.seed)
