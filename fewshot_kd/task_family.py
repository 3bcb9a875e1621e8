"""Task families: declarative files (YAML or JSON) naming a dataset, a teacher, a student and shots.

A file is parsed with ``yaml.safe_load`` only (no code runs) and fills :class:`TaskFamily`::

    name: cifar10-resnet56
    dataset: cifar10                 # a registered dataset name, or a path (relative: to this file)
    teacher: {model: cifar_resnet56, pretrained: true}   # or {recipe: digits-cnn}
    student: {model: cifar_resnet20, kwargs: {}}         # or {derive: {macs: 0.5, bits: 8}}
    shots: [5, 10, 20]
    ways: null                        # null = every class; an int = N-way episodes
    classes: null                     # null = every class; N = the first N; [ids] = those (relabelled 0..)
    eval_splits: [test_exact, test]
    augment: crop_flip                # crop_flip, crop (no mirror: digits) or none
    target: {macs: 0.5, bits: 8}      # what a derived student must fit
    episodes: {split: test, exclude: [test_exact, "test:2000"]}   # pretrained teachers only

Meta-training episodes never draw from what the teacher trained on: a recipe teacher's
``holdout`` sets them aside; a pretrained teacher's family names them in ``episodes``
(see :mod:`fewshot_kd.meta.pools`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch.nn as nn
import yaml

from fewshot_kd.config_keys import check_known_keys
from fewshot_kd.errors import CorruptFileError, FewShotKDError, UnknownNameError
from fewshot_kd.registry import Registry

SCHEMA_VERSION = 1
TASK_FAMILIES: Registry[Path] = Registry("task family", modules=("fewshot_kd.task_files",), plural="task families")
"""The shipped task-family files (``tasks/<name>.yaml``) by name."""


@dataclass(frozen=True)
class TaskFamily:
    name: str
    dataset: str
    teacher: dict
    student: dict
    shots: tuple[int, ...] = (5, 10, 20)
    ways: int | None = None
    classes: tuple[int, ...] | None = None
    eval_splits: tuple[str, ...] = ("test",)
    modality: str = "image"
    augment: str = "crop_flip"
    target: dict = field(default_factory=lambda: {"macs": 0.5, "bits": 8})
    description: str = ""
    dataset_kwargs: dict = field(default_factory=dict)
    episodes: dict = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if ("recipe" in self.teacher) == ("model" in self.teacher):
            raise FewShotKDError(f"task {self.name}: teacher needs exactly one of 'recipe' or 'model', got {self.teacher}")
        if ("model" in self.student) == ("derive" in self.student):
            raise FewShotKDError(f"task {self.name}: student needs exactly one of 'model' or 'derive', got {self.student}")
        if not self.shots or any(int(k) < 1 for k in self.shots):
            raise FewShotKDError(f"task {self.name}: shots must be positive integers, got {self.shots}")
        if self.modality not in ("image", "text", "lm", "qa"):
            raise FewShotKDError(f"task {self.name}: modality must be 'image', 'text', 'lm' (running text, a causal "
                                 f"LM teacher) or 'qa' (questions, an extractive QA teacher), got {self.modality!r}")
        from fewshot_kd.augment import AUGMENTATIONS

        if self.augment not in AUGMENTATIONS:
            raise FewShotKDError(f"task {self.name}: augment must be one of {sorted(AUGMENTATIONS)}, got {self.augment!r}")
        unknown = sorted(set(self.episodes) - {"split", "exclude"})
        if unknown:
            raise FewShotKDError(f"task {self.name}: episodes takes 'split' and 'exclude', got unknown keys {unknown}")
        object.__setattr__(self, "shots", tuple(int(k) for k in self.shots))
        object.__setattr__(self, "classes", _class_ids(self.name, self.classes))
        object.__setattr__(self, "eval_splits", tuple(self.eval_splits))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TaskFamily":
        check_known_keys(cls, data, "task file")
        return cls(**data)


def _class_ids(task: str, classes) -> tuple[int, ...] | None:
    """A task file's ``classes``: null, a count N (the first N class ids) or a list of ids."""
    if classes is None:
        return None
    ids = tuple(range(classes)) if isinstance(classes, int) and not isinstance(classes, bool) else classes
    if (not isinstance(ids, (list, tuple)) or len(ids) < 2 or not all(isinstance(c, int) and c >= 0 for c in ids)
            or len(set(ids)) != len(ids)):
        raise FewShotKDError(f"task {task}: classes must be a count of at least 2 or a list of at least 2 distinct "
                             f"class ids (non-negative integers), got {classes!r}")
    return tuple(int(c) for c in ids)


def load_task_family(path: str | os.PathLike) -> TaskFamily:
    """Read a task-family file (YAML or JSON) into a :class:`TaskFamily`."""
    path = Path(path)
    if not path.is_file():
        raise FewShotKDError(f"task file {path} does not exist; see tasks/ for examples")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:  # a syntax error, or a tag safe_load refuses to construct
        raise CorruptFileError(f"task file {path} is not plain YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FewShotKDError(f"task file {path} must hold a mapping of keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    if isinstance(data.get("dataset"), str):
        data["dataset"] = _dataset_beside(data["dataset"], path.parent)
    return TaskFamily.from_dict(data)


def _dataset_beside(dataset: str, folder: Path) -> str:
    """A task file's ``dataset``: a registered name as is, a relative path resolved against
    the file's folder (so a task file and its data move together)."""
    from fewshot_kd.data.by_path import looks_like_path
    from fewshot_kd.data.catalog import DATASETS

    if dataset in DATASETS or Path(dataset).expanduser().is_absolute():
        return dataset
    beside = folder / dataset
    return str(beside) if looks_like_path(dataset) or beside.exists() else dataset


def tasks_dir() -> Path:
    """The ``tasks/`` folder of the source checkout."""
    return Path(__file__).resolve().parents[1] / "tasks"


def find_task_family(name_or_path: str | os.PathLike) -> TaskFamily:
    """A task family by file path, or by name from ``tasks/<name>.yaml``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return load_task_family(path)
    try:
        path = TASK_FAMILIES.get(str(name_or_path))
    except UnknownNameError as error:
        raise UnknownNameError(f"{error}. Or pass a file path.") from None
    return load_task_family(path)


def load_task_splits(task: TaskFamily, data_root=None):
    """The task's dataset splits; with ``classes``, every split cut to them (relabelled ``0..N-1``)."""
    from fewshot_kd.data.catalog import load_dataset
    from fewshot_kd.data.class_subset import class_subset
    from fewshot_kd.data.dataset import DatasetSplits

    splits = load_dataset(task.dataset, data_root=data_root, **task.dataset_kwargs)
    if task.classes is None:
        return splits
    _check_class_ids(task, splits.num_classes)
    return DatasetSplits(f"{splits.name}[{len(task.classes)} classes]",
                         {name: class_subset(split, task.classes) for name, split in splits.items()})


def _check_class_ids(task: TaskFamily, num_classes: int) -> None:
    if max(task.classes) >= num_classes:
        raise FewShotKDError(f"task {task.name}: classes name id {max(task.classes)}, but {task.dataset} has "
                             f"{num_classes} classes (ids 0..{num_classes - 1})")


def build_teacher(task: TaskFamily, data_root=None, progress: bool = True) -> nn.Module:
    """The task's teacher: a pretrained zoo model, or one trained (once, then cached) by recipe;
    with ``classes``, its classifier cut to them."""
    from fewshot_kd.models.catalog import create_model
    from fewshot_kd.models.class_head import keep_classes_, output_layer
    from fewshot_kd.teachers.store import load_or_train_teacher

    spec = dict(task.teacher)
    if "recipe" in spec:
        model, _ = load_or_train_teacher(spec["recipe"], data_root=data_root, progress=progress)
    else:
        name = spec.pop("model")
        if spec.get("pretrained"):
            spec.setdefault("data_root", data_root)
        model = create_model(name, **spec).eval()
    if task.classes is not None:
        _check_class_ids(task, output_layer(model)[1].out_features)
        keep_classes_(model, task.classes)
    return model


def teacher_source(task: TaskFamily) -> dict:
    """Where the task's teacher comes from, for a results file: a recipe's full description and
    fingerprint (the cache key of the weights it trains), else the family's teacher entry."""
    from fewshot_kd.teachers.recipe import get_recipe

    if "recipe" in task.teacher:
        recipe = get_recipe(task.teacher["recipe"])
        return {"recipe": recipe.to_dict(), "fingerprint": recipe.fingerprint()}
    return dict(task.teacher)
