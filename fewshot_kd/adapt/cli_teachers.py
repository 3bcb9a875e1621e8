"""The command line's teachers and student: one ``--teacher`` as always, or several, each
with its ``--teacher-classes``, distilled into a ``--student``."""

from __future__ import annotations

import argparse
import inspect

import torch.nn as nn

from fewshot_kd.data.dataset import DatasetSplits
from fewshot_kd.errors import BadInputError


def parse_classes(text: str) -> list:
    """``"0,1,2"`` as label ids ``[0, 1, 2]``; anything else (``"cat,dog"``) as class names."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise BadInputError(f"--teacher-classes {text!r} lists no class; give label ids (0,1,2) or names (cat,dog)")
    return [int(item) if item.isdigit() else item for item in items]


def _paired(values: list | None, count: int, flag: str) -> list:
    """``values`` given once per teacher, or never (``None`` for each)."""
    if not values:
        return [None] * count
    if len(values) != count:
        raise BadInputError(f"{len(values)} {flag} for {count} --teacher; give {flag} once per --teacher, in "
                            f"the same order, or not at all")
    return values


def load_teachers(args: argparse.Namespace, data: DatasetSplits) -> tuple[nn.Module | None, list | None]:
    """``(teacher, None)`` for one ``--teacher`` without classes (as before several were
    allowed), else ``(None, [(teacher, classes), ...])`` for adapt()'s ``teachers=``."""
    from fewshot_kd.teachers.by_path import load_teacher

    specs = args.teacher
    weights = _paired(args.weights, len(specs), "--weights")
    classes = [None if text is None else parse_classes(text)
               for text in _paired(args.teacher_classes, len(specs), "--teacher-classes")]
    if len(specs) > 1 and None in classes:
        raise BadInputError("several --teacher need --teacher-classes after each: the data's classes that teacher's "
                            "outputs stand for, in its output order (--teacher A --teacher-classes 0,1,2,3,4 "
                            "--teacher B --teacher-classes 5,6,7,8,9)")
    if len(specs) > 1 and args.student is None:
        raise BadInputError(f"several --teacher need --student: a fewshot_kd model name (e.g. small_cnn, built with "
                            f"{data.num_classes} outputs) or a model file; a student derived from one teacher would "
                            f"know its classes only")
    models = [load_teacher(spec, weights=w, num_classes=data.num_classes if c is None else len(c),
                           data_root=args.data_root, progress=not args.no_progress)
              for spec, w, c in zip(specs, weights, classes)]
    if classes == [None]:
        return models[0], None
    return None, list(zip(models, classes))


def build_student(spec: str | None, data: DatasetSplits, data_root=None) -> nn.Module | None:
    """``--student``: ``None`` (derive from the teacher), a model file or folder (trained from
    its weights), or a fewshot_kd model name built for the data (its classes, and the image
    channels and size where the builder takes them)."""
    if spec is None:
        return None
    from fewshot_kd.models.catalog import MODELS, create_model
    from fewshot_kd.teachers.by_path import load_teacher

    if spec not in MODELS:
        return load_teacher(spec, data_root=data_root, progress=False).train()
    example = data.train.input_batch(slice(0, 1))
    wanted = {"num_classes": data.num_classes}
    if not data.train.is_text and example.dim() == 4:
        wanted.update(in_channels=example.shape[1], input_size=example.shape[-1])
    accepted = inspect.signature(MODELS.get(spec)).parameters
    return create_model(spec, **{k: v for k, v in wanted.items() if k in accepted})
