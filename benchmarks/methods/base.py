"""One call signature for every compression method the benchmark compares.

A method is a function ``run(inp: MethodInput) -> MethodOutput``, registered by name in
:data:`METHODS`. It sees the teacher, the K-shot support set and a factory for the task's
student; it never sees evaluation data. The harness measures what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.registry import Registry


@dataclass
class MethodInput:
    teacher: nn.Module
    shots: LabelledDataset
    k: int
    seed: int
    make_student: Callable[[], nn.Module]
    example_inputs: Any
    workdir: Path
    modality: str = "image"
    augment: str = "crop_flip"
    target: dict = field(default_factory=lambda: {"macs": 0.5, "bits": 8})
    device: torch.device = torch.device("cpu")
    progress: bool = True
    options: dict = field(default_factory=dict)
    unlabelled: Callable[[int], Any] | None = None
    """``unlabelled(n)``: inputs of ``n`` train examples beside the shots, labels dropped."""

    @property
    def num_classes(self) -> int:
        return self.shots.num_classes


@dataclass
class MethodOutput:
    """``model`` is what gets evaluated (an ``nn.Module`` or a callable on model inputs);
    ``artifact`` is the saved file whose size is reported; ``float_module`` is the float
    module whose params and MACs are counted (defaults to ``model``)."""

    model: Any
    artifact: Path | None = None
    float_module: nn.Module | None = None
    integer_arithmetic: bool = False
    simulated_quantization: bool = False
    notes: dict = field(default_factory=dict)

    @property
    def counted_module(self) -> nn.Module:
        return self.float_module if self.float_module is not None else self.model


MethodFn = Callable[[MethodInput], MethodOutput]
METHODS: Registry[MethodFn] = Registry("method")
_LOADED = False


def register_method(name: str, help: str = ""):
    return METHODS.register(name, help)


def _ensure_registered() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from benchmarks.methods import (  # noqa: F401  (each module registers its methods)
            adapt_handset, adapt_meta, adapt_random_search, hinton_kd, maml_student, prune_finetune, ptq_int8, scratch, teacher, torch_pruning_finetune)


def base_method(name: str) -> str:
    """The registered method a suite name runs: ``"adapt@cutmix"`` is method ``adapt`` under a
    variant tag, so one suite can run a method twice with different ``method_options``."""
    return name.partition("@")[0]


def get_method(name: str) -> MethodFn:
    """The registered method ``name`` (a variant tag after ``@`` is ignored: :func:`base_method`)."""
    _ensure_registered()
    return METHODS.get(base_method(name))


def list_methods() -> list[str]:
    _ensure_registered()
    return METHODS.names()
