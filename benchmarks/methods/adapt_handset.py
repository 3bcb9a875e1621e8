"""fewshot_kd.adapt with the hand-set policy, on a student derived from the teacher
(pruned to the task's MACs target, int8 weights) and on the task's own student; each also
with an unlabelled pool drawn from the task's train split beside the shots (labels dropped).
Method options (:class:`AdaptOptions`): any :class:`Policy` field, ``target`` (merged over the
task's target, e.g. ``{size_ratio: 8}``) and, with a pool, ``unlabelled`` (its size)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fewshot_kd.adapt import adapt

from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.policy_options import PolicyOptions

DEFAULT_UNLABELLED = 2000


@dataclass(frozen=True)
class AdaptOptions(PolicyOptions):
    """Policy fields, and ``target``: merged over the task's target."""

    target: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptUnlabelledOptions(AdaptOptions):
    """As :class:`AdaptOptions`, and ``unlabelled``: the pool's size."""

    unlabelled: int = DEFAULT_UNLABELLED


def _run(inp: MethodInput, student, options: AdaptOptions) -> MethodOutput:
    return _run_with(inp, student, options.hand_set_policy(inp.modality, inp.augment), options)


def _run_with(inp: MethodInput, student, policy, options: AdaptOptions) -> MethodOutput:
    """adapt() with ``policy``; an unlabelled pool of ``options.unlabelled`` inputs when the
    options have that field."""
    pool = None
    if isinstance(options, AdaptUnlabelledOptions):
        if inp.unlabelled is None:
            raise ValueError("this method needs an unlabelled pool; run it through the benchmark harness")
        pool = inp.unlabelled(options.unlabelled)
    target = {**inp.target, **options.target}
    result = adapt(inp.teacher, student, shots=inp.k, data=inp.shots, target=target, policy=policy,
                   seed=inp.seed, export_dir=inp.workdir, progress=inp.progress, unlabelled=pool)
    notes = {k: result.report[k] for k in ("stages", "compression", "student_kind")}
    notes["policy"] = result.report["policy"]
    notes["history"] = [{"loss": h["loss"]} for h in result.history]
    return MethodOutput(model=result.student, artifact=result.artifact, notes=notes,
                        weight_bits=result.report["target"]["bits"])


@register_method("adapt", "fewshot_kd.adapt, hand-set policy, student derived from the teacher (task target)",
                 AdaptOptions)
def run(inp: MethodInput, options: AdaptOptions) -> MethodOutput:
    return _run(inp, None, options)


@register_method("adapt_student", "fewshot_kd.adapt, hand-set policy, the task's own student architecture",
                 AdaptOptions)
def run_student(inp: MethodInput, options: AdaptOptions) -> MethodOutput:
    return _run(inp, inp.make_student(), options)


@register_method("adapt_unlabelled", "fewshot_kd.adapt, hand-set policy, derived student, plus an unlabelled pool "
                 "(option 'unlabelled', default 2,000) from the train split beside the shots", AdaptUnlabelledOptions)
def run_unlabelled(inp: MethodInput, options: AdaptUnlabelledOptions) -> MethodOutput:
    return _run(inp, None, options)


@register_method("adapt_student_unlabelled", "fewshot_kd.adapt, hand-set policy, the task's own student, plus an "
                 "unlabelled pool (option 'unlabelled') from the train split", AdaptUnlabelledOptions)
def run_student_unlabelled(inp: MethodInput, options: AdaptUnlabelledOptions) -> MethodOutput:
    return _run(inp, inp.make_student(), options)
