"""Progressive grafting: the student's blocks replace the teacher's a stage at a time.

NetGraft (Shen et al., "Progressive Network Grafting for Few-Shot Knowledge Distillation",
AAAI 2021) keeps the teacher's network around each new block: the block is trained inside the
teacher, so it learns to produce what the rest of the teacher expects, from the teacher's own
outputs. Here a *hybrid* is the frozen teacher with some of its blocks swapped for the student's
(the same module objects: training the hybrid trains the student). A stage grafts the next group
of blocks in forward order; after the last one the hybrid is the student's body inside the
teacher's stem and head, and the student is finished end to end.

A graft unit is a student block that stands in for one or more teacher blocks of the same
container (``nn.Sequential`` / ``nn.ModuleList``): a derived CNN's residual blocks (the same
name and input / output shapes as the teacher's) or a transformer's layers (a layer-truncated
student's layer ``j`` stands in for the teacher's layers after the previous kept one, up to the
one it was copied from).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError

_CONTAINERS = (nn.Sequential, nn.ModuleList)


@dataclass(frozen=True)
class GraftUnit:
    """The student's block ``student_index`` of ``container`` stands in for the teacher's blocks
    ``teacher_span`` (positions in the teacher's container of the same name)."""

    container: str
    student_index: int
    teacher_span: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.container}.{self.student_index}" if self.container else str(self.student_index)


def _first_tensor(value) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _block_shapes(model: nn.Module, containers: Sequence[str], example: Any) -> dict[str, tuple]:
    """``(input shape, output shape)`` of every child of ``containers`` on one forward pass."""
    shapes: dict[str, tuple] = {}
    handles = []

    def hook(name):
        def record(module, inputs, output):
            x, y = _first_tensor(inputs), _first_tensor(output)
            if x is not None and y is not None:
                shapes[name] = (tuple(x.shape), tuple(y.shape))
        return record

    for path in containers:
        for child_name, child in model.get_submodule(path).named_children():
            handles.append(child.register_forward_hook(hook(f"{path}.{child_name}" if path else child_name)))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def _has_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def graft_units(teacher: nn.Module, student: nn.Module, example: Any,
                kept_layers: Sequence[int] | None = None) -> list[GraftUnit]:
    """The student's blocks that can replace the teacher's, in forward order.

    ``kept_layers``: for a transformer student cut to fewer layers, the teacher layer each of its
    layers was copied from (``None``: the student has the teacher's layer count). Image blocks
    must have the teacher's input and output shapes on ``example``."""
    from fewshot_kd.models.text import is_text_model

    if is_text_model(teacher) and is_text_model(student):
        return _layer_units(teacher, student, kept_layers)
    teacher_modules = dict(teacher.named_modules())
    paths = [name for name, m in student.named_modules() if isinstance(m, _CONTAINERS)
             and isinstance(teacher_modules.get(name), type(m)) and len(teacher_modules[name]) == len(m)]
    student_shapes = _block_shapes(student, paths, example)
    teacher_shapes = _block_shapes(teacher, paths, example)
    units = []
    for path in paths:
        if any(path.startswith(f"{u.name}.") for u in units):
            continue  # inside a block already taken whole
        for index, (child, twin) in enumerate(zip(student.get_submodule(path).children(),
                                                   teacher.get_submodule(path).children())):
            name = f"{path}.{index}" if path else str(index)
            shapes = student_shapes.get(name)
            if _has_weights(twin) and shapes is not None and shapes == teacher_shapes.get(name):
                units.append(GraftUnit(path, index, (index,)))
    order = list(student_shapes)  # hooks fire in forward order
    units.sort(key=lambda u: order.index(u.name) if u.name in order else len(order))
    return units


def _layer_units(teacher: nn.Module, student: nn.Module, kept_layers: Sequence[int] | None) -> list[GraftUnit]:
    from fewshot_kd.models._text_layers import encoder_layers

    teacher_layers, student_layers = encoder_layers(teacher.encoder), encoder_layers(student.encoder)
    path = next(n for n, m in student.named_modules() if m is student_layers)
    n_teacher, n_student = len(teacher_layers), len(student_layers)
    kept = list(range(n_teacher)) if kept_layers is None and n_student == n_teacher else kept_layers
    if kept is None or len(kept) != n_student:
        raise UnsupportedLayerError(f"grafting a {n_student}-layer student into a {n_teacher}-layer teacher needs the "
                                    f"teacher layer each student layer was copied from (adapt() records kept_layers)")
    units, start = [], 0
    for j, k in enumerate(kept):
        end = n_teacher - 1 if j == n_student - 1 else k  # layers after the last kept one go with it
        units.append(GraftUnit(path, j, tuple(range(start, end + 1))))
        start = k + 1
    return units


def stage_groups(units: Sequence[GraftUnit], stages: int) -> list[list[GraftUnit]]:
    """``units`` in ``stages`` contiguous groups of near-equal size (fewer when there are fewer units)."""
    stages = max(1, min(stages, len(units)))
    bounds = [round(i * len(units) / stages) for i in range(stages + 1)]
    return [list(units[a:b]) for a, b in zip(bounds, bounds[1:])]


class Hybrid(nn.Module):
    """The frozen teacher with ``units`` replaced by the student's blocks (shared, trainable).
    ``train()`` reaches only the grafted blocks: the teacher's parts stay in eval mode."""

    def __init__(self, teacher: nn.Module, student: nn.Module, units: Sequence[GraftUnit]) -> None:
        super().__init__()
        net = copy.deepcopy(teacher)
        for p in net.parameters():
            p.requires_grad_(False)
        self.grafted: list[nn.Module] = []
        for path in dict.fromkeys(u.container for u in units):
            mine = [u for u in units if u.container == path]
            self.grafted += _swap_container(net, student, path, mine)
        self.net = net.eval()

    def train(self, mode: bool = True) -> "Hybrid":
        self.training = mode
        self.net.eval()
        for block in self.grafted:
            block.train(mode)
        return self

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if "net" not in self._modules:
                raise
            return getattr(self._modules["net"], name)  # tokenize, config, ...: the teacher's


def _swap_container(net: nn.Module, student: nn.Module, path: str, units: Sequence[GraftUnit]) -> list[nn.Module]:
    """Replace ``net``'s container ``path`` by one in which each unit's teacher span is the
    student's block; returns the student blocks placed."""
    old = net.get_submodule(path)
    theirs = list(student.get_submodule(path).children())
    replaced = {i: u for u in units for i in u.teacher_span}
    blocks, placed = [], []
    for i, child in enumerate(old.children()):
        unit = replaced.get(i)
        if unit is None:
            blocks.append(child)
        elif i == unit.teacher_span[-1]:
            blocks.append(theirs[unit.student_index])
            placed.append(theirs[unit.student_index])
    new = nn.Sequential(*blocks) if isinstance(old, nn.Sequential) else nn.ModuleList(blocks)
    parent_name, _, child_name = path.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child_name, new)
    config = getattr(getattr(net, "encoder", None), "config", None)
    if isinstance(old, nn.ModuleList) and config is not None and hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = len(blocks)
    return placed
