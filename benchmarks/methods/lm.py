"""The methods of the causal-LM suite, one signature: ``run(inp: LMMethodInput) -> LMAdaptResult``.

Every student is the teacher's every-other-block copy with int8 weights (the task's target);
they differ in what trains it. ``truncated_shots``: next-token cross-entropy on the K
sequences alone (``alpha=0``); ``hinton_kd``: KL to the teacher at a temperature plus that
cross-entropy, on the K sequences; ``adapt``: the same objective on the K sequences plus
unlabelled train sequences (soft targets only); ``truncated``: the copy untrained (0 steps).
``teacher`` is measured as the reference. Options are fields of
:class:`~fewshot_kd.adapt.lm.policy.LMPolicy` plus ``unlabelled`` (a count of sequences) and
``target`` (overrides of the task's target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from fewshot_kd.adapt import adapt
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.registry import Registry

from benchmarks.methods.task_options import TaskMethodOptions, split_task_options


@dataclass
class LMMethodInput:
    teacher: nn.Module
    corpus: object
    k: int
    seed: int
    target: dict
    workdir: Path
    options: dict


LMMethodFn = Callable[[LMMethodInput], object]
LM_METHODS: Registry[LMMethodFn] = Registry("language-model method")
_DEFAULTS: dict[str, dict] = {}


def lm_options(method: str, options: dict) -> TaskMethodOptions:
    """A method's options: its defaults, then the suite's, split into policy fields, unlabelled and target."""
    base = method.partition("@")[0]
    LM_METHODS.get(base)
    return split_task_options("LM", method, _DEFAULTS[base], options, LMPolicy)


def _register(name: str, help: str, **defaults) -> None:
    _DEFAULTS[name] = defaults

    def run(inp: LMMethodInput):
        options = lm_options(name, inp.options)
        return adapt(inp.teacher, shots=inp.k, data=inp.corpus, target=options.target_for(inp.target),
                     policy=options.policy, seed=inp.seed, export_dir=inp.workdir, unlabelled=options.unlabelled,
                     progress=False)

    LM_METHODS.register(name, help)(run)


_register("truncated", "the teacher's every-other-block copy, int8, untrained", steps=0, generations=3)
_register("truncated_shots", "the truncated student trained on the K sequences alone (cross-entropy)", alpha=0.0)
_register("hinton_kd", "Hinton KD on the K sequences: T^2 KL at T=2 plus cross-entropy (alpha 0.5)")
_register("adapt", "adapt(): KD on the K sequences plus unlabelled train sequences (soft targets only)",
          unlabelled=200)


def get_lm_method(name: str) -> LMMethodFn:
    return LM_METHODS.get(name.partition("@")[0])
