"""The methods of the extractive-QA suite, one signature: ``run(inp: QAMethodInput) -> QAAdaptResult``.

Every student is the teacher's last-3-layer copy with int8 weights (the task's target); they
differ in what trains it. ``truncated_shots``: cross-entropy on the gold start / end tokens of
the K questions alone (``alpha=0``); ``hinton_kd``: KL to the teacher's start / end
distributions at a temperature plus that cross-entropy (alpha 0.5), on the K questions;
``adapt``: the same objective on the K questions plus unlabelled questions of the teacher's
articles (soft targets only); ``truncated``: the copy untrained (0 steps). ``teacher`` is
measured as the reference. Options are fields of :class:`~fewshot_kd.adapt.qa.policy.QAPolicy`
plus ``unlabelled`` (a count of questions) and ``target`` (overrides of the task's target, for
example ``{"layers": [0, 2, 4]}`` for every other layer instead of the last 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from fewshot_kd.adapt import adapt
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.registry import Registry

from benchmarks.methods.task_options import TaskMethodOptions, split_task_options


@dataclass
class QAMethodInput:
    teacher: nn.Module
    questions: object
    k: int
    seed: int
    target: dict
    workdir: Path
    options: dict


QAMethodFn = Callable[[QAMethodInput], object]
QA_METHODS: Registry[QAMethodFn] = Registry("question-answering method")
_DEFAULTS: dict[str, dict] = {}


def qa_options(method: str, options: dict) -> TaskMethodOptions:
    """A method's options: its defaults, then the suite's, split into policy fields, unlabelled and target."""
    base = method.partition("@")[0]
    QA_METHODS.get(base)
    return split_task_options("QA", method, _DEFAULTS[base], options, QAPolicy)


def _register(name: str, help: str, **defaults) -> None:
    _DEFAULTS[name] = defaults

    def run(inp: QAMethodInput):
        options = qa_options(name, inp.options)
        return adapt(inp.teacher, shots=inp.k, data=inp.questions, target=options.target_for(inp.target),
                     policy=options.policy, seed=inp.seed, export_dir=inp.workdir, unlabelled=options.unlabelled,
                     progress=False)

    QA_METHODS.register(name, help)(run)


_register("truncated", "the teacher's last-3-layer copy, int8, untrained", steps=0)
_register("truncated_shots", "the truncated student trained on the K questions alone (start / end cross-entropy)",
          alpha=0.0)
_register("hinton_kd", "Hinton KD on the K questions: T^2 KL at T=2 on start / end plus cross-entropy (alpha 0.5)")
_register("adapt", "adapt(): KD on the K questions plus unlabelled questions of the teacher's articles "
                   "(soft targets only)", unlabelled=512)


def get_qa_method(name: str) -> QAMethodFn:
    return QA_METHODS.get(name.partition("@")[0])
