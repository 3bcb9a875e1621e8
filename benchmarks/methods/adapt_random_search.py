"""Random search over the knobs the meta-learner sets, at the hand-set policy's step budget.

``trials`` configurations (the first is the hand-set policy itself) each get
``steps / trials`` distillation steps, so the search spends what one hand-set adapt() call
spends on distillation. Drawn per trial: temperature, alpha, feature weight, learning rate
and per-layer prune ratios (random preferences around uniform, rescaled to the budget). The
winner is the trial whose student is closest to the teacher (KL) on fresh augmented views
of the shots: no labels beyond the shots are used. A drawn configuration the target cannot be
met with is recorded as failed and skipped (the hand-set first trial always stands). Options: ``trials``, ``target`` (merged over
the task's target) and any Policy field (set over the hand-set policy the search starts from).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from fewshot_kd.adapt import adapt
from fewshot_kd.distill.views import make_views
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta.descriptors import find_groups
from fewshot_kd.model_io import trainable_copy

from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.policy_options import PolicyOptions


@dataclass(frozen=True)
class RandomSearchOptions(PolicyOptions):
    """Policy fields (the hand-set start and the step budget), ``trials``: configurations tried,
    and ``target``: merged over the task's target."""

    trials: int = 4
    target: dict = field(default_factory=dict)


def _draw(base, rng: random.Random, groups: list[str], steps: int):
    prune = {g: math.exp(rng.gauss(0.0, 0.5)) * 0.3 for g in groups}
    return replace(base, name="random-search", temperature=rng.uniform(1.0, 8.0), alpha=rng.uniform(0.5, 1.0),
                   feature_weight=math.exp(rng.uniform(math.log(0.3), math.log(10.0))),
                   lr=math.exp(rng.uniform(math.log(3e-4), math.log(3e-3))), per_layer_prune=prune, steps=steps)


@torch.no_grad()
def _log_probs(model, inputs) -> torch.Tensor:
    return F.log_softmax(model.eval()(inputs), -1)


def _held_out_kl(student, teacher_log_probs: torch.Tensor, inputs) -> float:
    return F.kl_div(_log_probs(student, inputs), teacher_log_probs, log_target=True, reduction="batchmean").item()


@register_method("adapt_random_search", "fewshot_kd.adapt, random search over the policy knobs at the same step budget",
                 RandomSearchOptions)
def run(inp: MethodInput, options: RandomSearchOptions) -> MethodOutput:
    base = options.hand_set_policy(inp.modality, inp.augment)
    trials = options.trials
    steps = max(1, base.steps // trials)
    rng = random.Random(f"fewshot_kd.random_search:{inp.seed}:{inp.k}")
    groups = [g.root for g in find_groups(trainable_copy(inp.teacher), inp.example_inputs)]
    fresh, _ = make_views(inp.shots, 4, base.crop_padding, base.flip, base.text_word_dropout, seed=inp.seed + 7919)
    teacher_log_probs = _log_probs(inp.teacher, fresh)
    best = None
    scores = []
    for trial in range(trials):
        policy = replace(base, steps=steps) if trial == 0 else _draw(base, rng, groups, steps)
        try:
            result = adapt(inp.teacher, None, shots=inp.k, data=inp.shots, target={**inp.target, **options.target},
                           policy=policy, seed=inp.seed, export_dir=inp.workdir / f"trial{trial}", progress=inp.progress)
        except FewShotKDError as error:  # a drawn per-layer profile the target cannot be met with: not a candidate
            scores.append({"trial": trial, "failed": str(error), "policy": policy.to_flat_dict()})
            continue
        score = _held_out_kl(result.student, teacher_log_probs, fresh)
        scores.append({"trial": trial, "held_out_kl": score, "policy": result.report["policy"]})
        if best is None or score < best[0]:
            best = (score, trial, result)
    if best is None:
        raise FewShotKDError(f"random search: none of the {trials} trials met the target: {scores[-1]['failed']}")
    _, chosen, result = best
    notes = {"trials": scores, "chosen": chosen, "steps_per_trial": steps,
             "compression": result.report["compression"], "stages": result.report["stages"],
             "history": [{"loss": h["loss"]} for h in result.history]}
    return MethodOutput(model=result.student, artifact=result.artifact, notes=notes,
                        weight_bits=result.report["target"]["bits"])
