"""fewshot_kd.adapt from several specialist teachers (``teachers=``) into the task's own student:
the teachers are trained by recipe, each on its classes (the recipe's ``classes``), and together
cover the task's classes. The task's teacher is not used (it stays the reference of the ratios).
Options (:class:`TeachersOptions`): ``teachers`` (recipe names, comma-separated), any
:class:`Policy` field, and ``target`` (merged over the task's)."""

from __future__ import annotations

from dataclasses import dataclass

from fewshot_kd.adapt import adapt
from fewshot_kd.teachers.recipe import get_recipe
from fewshot_kd.teachers.store import load_or_train_teacher

from benchmarks.methods.adapt_handset import AdaptOptions
from benchmarks.methods.base import MethodInput, MethodOutput, register_method

CIFAR10_HALVES = "cifar10-resnet20-classes0-4,cifar10-resnet20-classes5-9"


@dataclass(frozen=True)
class TeachersOptions(AdaptOptions):
    """As :class:`AdaptOptions`, and ``teachers``: specialist recipe names, comma-separated."""

    teachers: str = CIFAR10_HALVES


def specialists(names: str, progress: bool = True) -> list[tuple]:
    """``[(teacher, classes), ...]`` for adapt()'s ``teachers=``, each trained once by its recipe."""
    pairs = []
    for name in filter(None, (part.strip() for part in names.split(","))):
        recipe = get_recipe(name)
        if recipe.classes is None:
            raise ValueError(f"teacher recipe {name} covers every class of {recipe.dataset}; name specialist "
                             f"recipes (with classes), e.g. {CIFAR10_HALVES}")
        model, _ = load_or_train_teacher(recipe, progress=progress)
        pairs.append((model, list(recipe.classes)))
    return pairs


@register_method("adapt_teachers", "fewshot_kd.adapt, hand-set policy, several specialist teachers (option "
                 "'teachers': recipe names) into the task's own student", TeachersOptions)
def run(inp: MethodInput, options: TeachersOptions) -> MethodOutput:
    teachers = [(model.to(inp.device), classes) for model, classes in specialists(options.teachers, inp.progress)]
    result = adapt(student=inp.make_student(), teachers=teachers, shots=inp.k, data=inp.shots,
                   target={**inp.target, **options.target}, policy=options.hand_set_policy(inp.modality, inp.augment),
                   seed=inp.seed, export_dir=inp.workdir, progress=inp.progress)
    notes = {k: result.report[k] for k in ("stages", "compression", "student_kind", "multi_teacher", "policy")}
    notes["history"] = [{"loss": h["loss"]} for h in result.history]
    return MethodOutput(model=result.student, artifact=result.artifact, notes=notes,
                        weight_bits=result.report["target"]["bits"])
