"""adapt()'s ``teachers=[(model, classes), ...]``: specialist teachers checked against the data
and joined into one :class:`~fewshot_kd.distill.teacher_union.TeacherUnion` over its classes.

``classes`` lists, in the teacher's output order, the data's classes its logits stand for: label
ids (``0 .. C-1``) or class names. Every class of the data must come from exactly one teacher.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fewshot_kd.adapt._preflight import _fits
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.distill.teacher_union import AVERAGE, TeacherUnion
from fewshot_kd.errors import BadInputError, ClassCountMismatchError
from fewshot_kd.measure import count_params

SHAPE_HINT = "pass teachers=[(teacher_a, classes_a), (teacher_b, classes_b), ...] with classes as label ids or names"


def _pairs(teachers) -> list[tuple[nn.Module, list]]:
    if not isinstance(teachers, (list, tuple)) or not teachers:
        raise BadInputError(f"teachers must be a non-empty list, got {type(teachers).__name__}; {SHAPE_HINT}")
    pairs = []
    for k, entry in enumerate(teachers):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], nn.Module)
                and isinstance(entry[1], (list, tuple, range)) and len(entry[1]) > 0):
            raise BadInputError(f"teachers[{k}] must be (nn.Module, non-empty list of classes), got "
                                f"{type(entry).__name__}; {SHAPE_HINT}")
        pairs.append((entry[0], list(entry[1])))
    return pairs


def _class_id(k: int, value, pool: LabelledDataset) -> int:
    names = list(pool.class_names)
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < pool.num_classes:
        return value
    raise ClassCountMismatchError(f"teacher {k}'s class {value!r} is not a class of the data (label ids "
                                  f"0..{pool.num_classes - 1}, names {', '.join(names[:10])}"
                                  f"{', ...' if len(names) > 10 else ''})")


def _output_count(model: nn.Module, example) -> int:
    with torch.no_grad():
        return model.eval()(example).shape[-1]


def _check_teacher(k: int, model: nn.Module, ids: list[int], pool: LabelledDataset) -> None:
    if len(set(ids)) != len(ids):
        raise BadInputError(f"teacher {k} lists a class twice ({ids}); give each of its outputs one class")
    example = pool.input_batch(slice(0, 2))
    try:
        _fits(f"teacher {k}", model, example, len(ids))
    except ClassCountMismatchError:
        param = next(model.parameters(), None)
        count = _output_count(model, example.to(param.device) if param is not None and isinstance(example, torch.Tensor)
                              else example)
        raise ClassCountMismatchError(
            f"teacher {k} outputs {count} classes but is given {len(ids)} ({', '.join(pool.class_names[i] for i in ids)}); "
            f"list the classes its outputs stand for, in its output order") from None


def _check_cover(ids: list[list[int]], pool: LabelledDataset) -> None:
    owner: dict[int, int] = {}
    for k, classes in enumerate(ids):
        for c in classes:
            if c in owner:
                raise ClassCountMismatchError(
                    f"class {pool.class_names[c]!r} (id {c}) is given to teachers {owner[c]} and {k}; each class of "
                    f"the data must come from exactly one teacher (the teachers' classes must not overlap)")
            owner[c] = k
    missing = [pool.class_names[c] for c in range(pool.num_classes) if c not in owner]
    if missing:
        raise ClassCountMismatchError(
            f"the data's classes {', '.join(map(repr, missing))} come from no teacher; give every class of the data "
            f"to one teacher, or leave those classes out of the data")


def union_of_teachers(teachers, pool: LabelledDataset, temperature: float = 4.0) -> TeacherUnion:
    """The checked :class:`TeacherUnion` of ``teachers`` over ``pool``'s classes."""
    pairs = _pairs(teachers)
    ids = [[_class_id(k, c, pool) for c in classes] for k, (_, classes) in enumerate(pairs)]
    for k, ((model, _), classes) in enumerate(zip(pairs, ids)):
        _check_teacher(k, model, classes, pool)
    _check_cover(ids, pool)
    return TeacherUnion([model for model, _ in pairs], ids, pool.num_classes, temperature)


def union_report(union: TeacherUnion, class_names) -> dict:
    """report.json's ``multi_teacher`` entry: each teacher's size and classes, and the loss."""
    return {
        "loss": "multi_teacher_kd_loss",
        "soft_targets": "multi_teacher_soft_targets",
        "average": AVERAGE,
        "weights": "equal",
        "temperature": union.temperature,
        "teachers": [{"params": count_params(t), "classes": [class_names[c] for c in cs], "class_ids": list(cs)}
                     for t, cs in zip(union.teachers, union.classes)],
    }


def resolve_teachers(teacher, teachers, student, pool: LabelledDataset):
    """adapt()'s one teacher: ``teacher``, or the union of ``teachers`` (which needs a given student)."""
    if teachers is None:
        if teacher is None:
            raise BadInputError("teacher must be a trained torch.nn.Module, got None; adapt() needs teacher=model, "
                                "or several specialists as teachers=[(model, classes), ...]")
        return teacher
    if teacher is not None:
        raise BadInputError("pass teacher= or teachers=, not both; with several teachers put every one in teachers=")
    if not isinstance(student, nn.Module):
        raise BadInputError(
            f"several teachers need a student module with one output per class of the data ({pool.num_classes}), "
            f"e.g. fewshot_kd.create_model('small_cnn', num_classes={pool.num_classes}); a student derived from one "
            f"teacher is not supported with several (its head covers that teacher's classes only)")
    return union_of_teachers(teachers, pool)
