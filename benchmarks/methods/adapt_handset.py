"""fewshot_kd.adapt with the hand-set policy, on a student derived from the teacher
(pruned to the task's MACs target, int8 weights) and on the task's own student; each also
with an unlabelled pool drawn from the task's train split beside the shots (labels dropped).
Method options: any :class:`Policy` field, ``unlabelled`` (pool size) and ``target`` (merged
over the task's target, e.g. ``{size_ratio: 8}``)."""

from fewshot_kd.adapt import adapt
from fewshot_kd.adapt.policy import Policy, hand_set_for

from benchmarks.methods.base import MethodInput, MethodOutput, register_method

DEFAULT_UNLABELLED = 2000


def _policy(inp: MethodInput) -> Policy:
    overrides = {k: v for k, v in inp.options.items() if k in Policy.__dataclass_fields__}
    base = hand_set_for(inp.modality == "text").to_dict()
    return Policy.from_dict({**base, "flip": inp.augment == "crop_flip", **overrides})


def _run(inp: MethodInput, student, unlabelled: bool = False) -> MethodOutput:
    return _run_with(inp, student, _policy(inp), unlabelled)


def _run_with(inp: MethodInput, student, policy, unlabelled: bool = False) -> MethodOutput:
    pool = None
    if unlabelled:
        if inp.unlabelled is None:
            raise ValueError("this method needs an unlabelled pool; run it through the benchmark harness")
        pool = inp.unlabelled(int(inp.options.get("unlabelled", DEFAULT_UNLABELLED)))
    target = {**inp.target, **inp.options.get("target", {})}
    result = adapt(inp.teacher, student, shots=inp.k, data=inp.shots, target=target, policy=policy,
                   seed=inp.seed, export_dir=inp.workdir, progress=inp.progress, unlabelled=pool)
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


@register_method("adapt_unlabelled", "fewshot_kd.adapt, hand-set policy, derived student, plus an unlabelled pool "
                 "(option 'unlabelled', default 2,000) from the train split beside the shots")
def run_unlabelled(inp: MethodInput) -> MethodOutput:
    return _run(inp, None, unlabelled=True)


@register_method("adapt_student_unlabelled", "fewshot_kd.adapt, hand-set policy, the task's own student, plus an "
                 "unlabelled pool (option 'unlabelled') from the train split")
def run_student_unlabelled(inp: MethodInput) -> MethodOutput:
    return _run(inp, inp.make_student(), unlabelled=True)
