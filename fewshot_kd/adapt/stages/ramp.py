"""Stage 4b (``Policy(prune_rounds=R)``): pruning that ramps to its ratio over the steps.

One-shot derivation cuts the teacher to the target before any distillation. Here the student
starts as the teacher and is cut in ``R`` rounds, each cut made on the weights the previous
rounds distilled (the gradual pruning of Zhu & Gupta, "To prune, or not to prune", 2017, at the
few-shot scale), with ``steps / R`` distillation steps after each:

- an image student's MACs fall linearly to where one-shot derivation put them (channels);
- a text student loses the encoder layers one-shot derivation dropped a few per round (the
  lowest first, so ``"last 3"`` of 6 keeps layers 1-5, then 2-5, then 3-5) while the width
  its kept layers lose (attention heads, FFN neurons) falls linearly to the one-shot share.

The last round fits the same MACs bound, layers and file budget as the one-shot student, so
the two compare at equal compression.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch.nn as nn

from fewshot_kd.adapt.derive import kept_layers
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.stages.job import Job
from fewshot_kd.adapt.stages.views import Views
from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.measure import count_macs, count_params, saved_size_bytes

WIDTH_KEPT = 0.999  # a round asking for at least this share of its layers' MACs prunes no width


def round_steps(steps: int, rounds: int) -> list[int]:
    """``steps`` split over ``rounds`` as evenly as whole steps allow (the last rounds get the rest)."""
    return [steps // rounds + (1 if r >= rounds - steps % rounds else 0) for r in range(rounds)]


def layer_rounds(num_layers: int, kept: list[int], rounds: int) -> list[list[int]]:
    """The teacher layers each round keeps: the ones ``kept`` drops go a few per round, lowest
    first, ``ceil`` of a linear share by each round, all of them by the last."""
    dropped = [i for i in range(num_layers) if i not in kept]
    plan = []
    for index in range(rounds):
        gone = set(dropped[: math.ceil(len(dropped) * (index + 1) / rounds)])
        plan.append([i for i in range(num_layers) if i not in gone])
    return plan


def ramp_stage_(job: Job, derived: nn.Module, views: Views, policy: Policy, decisions: dict,
                options: dict) -> tuple[nn.Module, list[dict], dict]:
    """Cut a copy of the teacher to ``derived``'s MACs (and, for text, its layers) in
    ``policy.prune_rounds`` rounds with distillation between; returns ``(student, loss history,
    record of the rounds)``."""
    from fewshot_kd.adapt._distill_loop import distill_
    from fewshot_kd.adapt.size_fit import derive_to_size
    from fewshot_kd.adapt.target import Target

    if job.target.latency is not None:
        raise UnsupportedLayerError("prune_rounds > 1 ramps pruning to a MACs, layers or size target; a latency "
                                    "target is derived in one shot (use prune_rounds=1)")
    teacher = job.teacher if job.device.type == "cpu" else copy.deepcopy(job.teacher).cpu()
    example = job.support.input_batch(slice(0, 1))
    teacher_macs = count_macs(teacher, example)
    final = float(decisions.get("macs_fraction", count_macs(derived.cpu(), example) / teacher_macs))
    budget = job.target.size_budget(saved_size_bytes(teacher))
    kept = kept_layers(teacher, decisions)
    plan = None if kept is None else layer_rounds(teacher.num_layers, kept, policy.prune_rounds)
    # the share of its layers' MACs the one-shot student kept: what width pruning took
    width = final if kept is None else final * teacher_macs / _layers_macs(teacher, kept, example)
    alive = None if plan is None else list(range(teacher.num_layers))  # the teacher layers the student still has
    rounds, history, current, record = policy.prune_rounds, [], teacher, []
    for index, steps in enumerate(round_steps(policy.steps, rounds)):
        current = current.cpu()
        goal = (1.0 - (1.0 - width) * (index + 1) / rounds) * teacher_macs  # MACs this round keeps
        layers = None
        if plan is not None:
            layers = [alive.index(i) for i in plan[index]]
            alive = plan[index]
            goal *= _layers_macs(teacher, alive, example) / teacher_macs
        now = count_macs(current, example)
        left = now if layers is None else _layers_macs(current, layers, example)
        macs = None if goal >= WIDTH_KEPT * left else goal / now  # None: no width to prune this round
        target = Target(macs=macs, bits=job.target.bits, layers=layers)
        if index == rounds - 1:  # the one-shot student's bounds: its MACs and the file budget
            target = replace(target, size_bytes=budget)
        current, _ = derive_to_size(current, job.support, target, policy)
        current = current.to(job.device)
        done = len(history)
        history += [{**entry, "step": entry["step"] + done, "stage": f"round {index + 1}"}
                    for entry in distill_(current, views.bank, [s for _, s in views.pairs], steps=steps,
                                          lr=policy.lr, description=f"pruning round {index + 1}/{rounds}", **options)]
        record.append({"macs_fraction": count_macs(current.cpu(), example) / teacher_macs,
                       "params_fraction": count_params(current) / count_params(teacher), "steps": steps,
                       **({} if alive is None else {"layers": list(alive)})})
    return current.to(job.device), history, {"goal_macs_fraction": final, "rounds": record,
                              "channels": cut_channels(teacher, current, alive)}


def _layers_macs(model: nn.Module, layers: list[int], example) -> int:
    """MACs of ``model`` cut to its encoder ``layers`` (a copy; ``model`` is untouched)."""
    from fewshot_kd.models.text import truncate_layers

    return count_macs(truncate_layers(model, layers), example)


def cut_channels(teacher: nn.Module, student: nn.Module, kept: list[int] | None = None) -> dict[str, list[int]]:
    """``{layer: [teacher's outputs, student's]}`` for every conv / linear layer the student
    narrowed, named as in the teacher (``kept``: the teacher's encoder layers a text student's
    blocks stand for, in order)."""
    theirs = dict(teacher.named_modules())
    rename = _block_renames(teacher, student, kept) if kept is not None else {}
    out = {}
    for name, module in student.named_modules():
        name = _renamed(name, rename)
        twin = theirs.get(name)
        if isinstance(module, nn.Conv2d) and isinstance(twin, nn.Conv2d) and module.out_channels != twin.out_channels:
            out[name] = [twin.out_channels, module.out_channels]
        elif isinstance(module, nn.Linear) and isinstance(twin, nn.Linear) and module.out_features != twin.out_features:
            out[name] = [twin.out_features, module.out_features]
    return out


def _block_renames(teacher: nn.Module, student: nn.Module, kept: list[int]) -> dict[str, str]:
    """Each student block's module name -> the name of the teacher block it was cut from."""
    from fewshot_kd.models._text_layers import block_names

    theirs = block_names(teacher)
    return {mine: theirs[i] for mine, i in zip(block_names(student), kept)}


def _renamed(name: str, rename: dict[str, str]) -> str:
    for mine, theirs in rename.items():
        if name == mine or name.startswith(mine + "."):
            return theirs + name[len(mine):]
    return name
