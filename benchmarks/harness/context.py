"""Everything about one task family that every cell shares: data, teacher, eval sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.models.catalog import create_model
from fewshot_kd.task_family import TaskFamily, build_teacher, load_task_splits
from fewshot_kd.teachers.store import stratified_cap


@dataclass
class TaskContext:
    task: TaskFamily
    splits: DatasetSplits
    teacher: nn.Module
    eval_sets: dict[str, LabelledDataset]
    make_student: Callable[[], nn.Module]

    def make_inputs(self, batch_size: int) -> Any:
        """A batch for latency: real evaluation inputs, cycled to ``batch_size``."""
        data = next(iter(self.eval_sets.values()))
        index = torch.arange(batch_size) % len(data)
        return data.input_batch(index)

    def example_inputs(self) -> Any:
        return self.make_inputs(1)


def prepare_task(task: TaskFamily, data_root=None, eval_limit: int | None = None, progress: bool = True) -> TaskContext:
    splits = load_task_splits(task, data_root)
    missing = [s for s in task.eval_splits if s not in splits]
    if missing:
        raise FewShotKDError(f"task {task.name}: eval splits {missing} not in {task.dataset} (it has {list(splits)})")
    eval_sets = {s: stratified_cap(splits[s], eval_limit, seed=0) for s in task.eval_splits}
    teacher = build_teacher(task, data_root=data_root, progress=progress)
    spec = dict(task.student)

    def make_student() -> nn.Module:
        if "model" not in spec:
            raise FewShotKDError(f"task {task.name}: this method needs a student model, but the task only derives one")
        return create_model(spec["model"], num_classes=splits.num_classes, **spec.get("kwargs", {}))

    return TaskContext(task, splits, teacher, eval_sets, make_student)
