"""fewshot_kd.adapt with the hand-set policy, on a student derived from the teacher
(pruned to the task's MACs target, int8 weights) and on the task's own student."""

from fewshot_kd.adapt import HAND_SET, adapt
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.methods.base import MethodInput, MethodOutput, register_method


def _policy(inp: MethodInput) -> Policy:
    overrides = {k: v for k, v in inp.options.items() if k in Policy.__dataclass_fields__}
    return Policy.from_dict({**HAND_SET.to_dict(), "flip": inp.augment == "crop_flip", **overrides})


def _run(inp: MethodInput, student) -> MethodOutput:
    return _run_with(inp, student, _policy(inp))


def _run_with(inp: MethodInput, student, policy) -> MethodOutput:
    result = adapt(inp.teacher, student, shots=inp.k, data=inp.shots, target=inp.target, policy=policy,
                   seed=inp.seed, export_dir=inp.workdir, progress=inp.progress)
    notes = {k: result.report[k] for k in ("stages", "compression", "student_kind")}
    notes["policy"] = result.report["policy"]
    notes["history"] = [{"loss": h["loss"]} for h in result.history]
    return MethodOutput(model=result.student, artifact=result.artifact, notes=notes)


@register_method("adapt", "fewshot_kd.adapt, hand-set policy, student derived from the teacher (task target)")
def run(inp: MethodInput) -> MethodOutput:
    return _run(inp, None)


@register_method("adapt_student", "fewshot_kd.adapt, hand-set policy, the task's own student architecture")
def run_student(inp: MethodInput) -> MethodOutput:
    return _run(inp, inp.make_student())
