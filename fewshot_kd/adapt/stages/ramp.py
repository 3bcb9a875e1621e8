"""Stage 4b (``Policy(prune_rounds=R)``): pruning that ramps to its ratio over the steps.

One-shot derivation cuts the teacher to the target before any distillation. Here the student
starts as the teacher and is cut in ``R`` rounds, its MACs falling linearly to where one-shot
derivation put them, each cut made on the weights the previous rounds distilled (the gradual
pruning of Zhu & Gupta, "To prune, or not to prune", 2017, at the few-shot scale), with
``steps / R`` distillation steps after each. The last round fits the same MACs bound and file
budget as the one-shot student, so the two compare at equal compression.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn as nn

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views
from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes


def round_steps(steps: int, rounds: int) -> list[int]:
    """``steps`` split over ``rounds`` as evenly as whole steps allow (the last rounds get the rest)."""
    return [steps // rounds + (1 if r >= rounds - steps % rounds else 0) for r in range(rounds)]


def ramp_stage_(job: Job, derived: nn.Module, views: Views, policy: Policy, decisions: dict,
                options: dict) -> tuple[nn.Module, list[dict], dict]:
    """Cut a copy of the teacher to ``derived``'s MACs in ``policy.prune_rounds`` rounds with
    distillation between; returns ``(student, loss history, record of the rounds)``."""
    from fewshot_kd.adapt._distill_loop import distill_
    from fewshot_kd.adapt.size_fit import derive_to_size
    from fewshot_kd.adapt.target import Target

    if not isinstance(views.bank.inputs, torch.Tensor) or job.target.latency is not None or job.target.layers:
        raise UnsupportedLayerError("prune_rounds > 1 ramps the channel pruning of an image student to a MACs or "
                                    "size target; text students and latency targets are derived in one shot "
                                    "(use prune_rounds=1, or schedule='graft' for progressive distillation)")
    teacher = job.teacher if job.device.type == "cpu" else copy.deepcopy(job.teacher).cpu()
    example = job.support.input_batch(slice(0, 1))
    teacher_macs = count_macs(teacher, example)
    final = float(decisions.get("macs_fraction", count_macs(derived.cpu(), example) / teacher_macs))
    budget = job.target.size_budget(saved_size_bytes(teacher))
    rounds, history, current = policy.prune_rounds, [], teacher
    record = []
    for index, steps in enumerate(round_steps(policy.steps, rounds)):
        fraction = 1.0 - (1.0 - final) * (index + 1) / rounds
        relative = min(1.0, fraction * teacher_macs / count_macs(current, example))
        target = Target(macs=relative, bits=job.target.bits)
        if index == rounds - 1:  # the one-shot student's bounds: its MACs and the file budget
            target = replace(target, size_bytes=budget)
        current, _ = derive_to_size(current.cpu(), job.support, target, policy)
        current = current.to(job.device)
        done = len(history)
        history += [{**entry, "step": entry["step"] + done, "stage": f"round {index + 1}"}
                    for entry in distill_(current, views.bank, [s for _, s in views.pairs], steps=steps,
                                          lr=policy.lr, description=f"pruning round {index + 1}/{rounds}", **options)]
        record.append({"macs_fraction": count_macs(current.cpu(), example) / teacher_macs,
                       "params_fraction": count_params(current) / count_params(teacher), "steps": steps})
        current = current.to(job.device)
    return current, history, {"goal_macs_fraction": final, "rounds": record, "channels": cut_channels(teacher, current)}


def cut_channels(teacher: nn.Module, student: nn.Module) -> dict[str, list[int]]:
    """``{layer: [teacher's outputs, student's]}`` for every conv / linear layer the student narrowed."""
    theirs = dict(teacher.named_modules())
    out = {}
    for name, module in student.named_modules():
        twin = theirs.get(name)
        if isinstance(module, nn.Conv2d) and isinstance(twin, nn.Conv2d) and module.out_channels != twin.out_channels:
            out[name] = [twin.out_channels, module.out_channels]
        elif isinstance(module, nn.Linear) and isinstance(twin, nn.Linear) and module.out_features != twin.out_features:
            out[name] = [twin.out_features, module.out_features]
    return out
