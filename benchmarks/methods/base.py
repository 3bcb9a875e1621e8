"""One call signature for every compression method the benchmark compares.

A method is a function ``run(inp: MethodInput) -> MethodOutput``, registered by name in
:data:`METHODS` (the modules in :data:`MODULES` register theirs, imported on first lookup).
It sees the teacher, the K-shot support set and a factory for the task's student; it never
sees evaluation data. ``inp.options`` reaches it typed, as its own frozen dataclass
(:func:`register_method`). The harness measures what comes back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.registry import Registry

from benchmarks.methods.options import MethodOptions


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
    """The suite's ``method_options`` entry; the method receives it parsed (:func:`register_method`)."""
    unlabelled: Callable[[int], Any] | None = None
    """``unlabelled(n)``: inputs of ``n`` train examples beside the shots, labels dropped."""

    @property
    def num_classes(self) -> int:
        return self.shots.num_classes


@dataclass
class MethodOutput:
    """``model`` is what gets evaluated (an ``nn.Module`` or a callable on model inputs);
    ``artifact`` is the saved file whose size is reported; ``float_module`` is the float
    module whose params and MACs are counted (defaults to ``model``); ``weight_bits`` the width its
    weights are deployed in (``None``: as the module stores them), for the energy estimate."""

    model: Any
    artifact: Path | None = None
    float_module: nn.Module | None = None
    integer_arithmetic: bool = False
    simulated_quantization: bool = False
    notes: dict = field(default_factory=dict)
    weight_bits: int | None = None

    @property
    def counted_module(self) -> nn.Module:
        return self.float_module if self.float_module is not None else self.model


MethodFn = Callable[[MethodInput], MethodOutput]
MODULES = ("adapt_handset", "adapt_meta", "adapt_random_search", "adapt_teachers", "hinton_kd", "maml_student", "prune_finetune",
           "ptq_int8", "scratch", "teacher", "torch_pruning_finetune")
METHODS: Registry[MethodFn] = Registry("method", modules=tuple(f"benchmarks.methods.{m}" for m in MODULES))
_OPTIONS: dict[str, type[MethodOptions]] = {}


def register_method(name: str, help: str = "", options: type[MethodOptions] = MethodOptions):
    """Register ``fn(inp, options)`` as method ``name``: the registered method takes ``inp``
    alone and hands ``fn`` its ``inp.options`` parsed as ``options`` (a frozen dataclass)."""

    def add(fn: Callable[[MethodInput, Any], MethodOutput]) -> MethodFn:
        @functools.wraps(fn)
        def run(inp: MethodInput) -> MethodOutput:
            return fn(inp, options.parse(inp.options, name))

        _OPTIONS[name] = options
        return METHODS.register(name, help)(run)

    return add


def base_method(name: str) -> str:
    """The registered method a suite name runs: ``"adapt@cutmix"`` is method ``adapt`` under a
    variant tag, so one suite can run a method twice with different ``method_options``."""
    return name.partition("@")[0]


def get_method(name: str) -> MethodFn:
    """The registered method ``name`` (a variant tag after ``@`` is ignored: :func:`base_method`)."""
    return METHODS.get(base_method(name))


def method_options(name: str, data: dict) -> MethodOptions:
    """``data`` parsed as the options of method ``name`` (a suite entry, maybe with a variant
    tag): checks a suite's options before any cell runs."""
    get_method(name)
    return _OPTIONS[base_method(name)].parse(data, name)


def list_methods() -> list[str]:
    return METHODS.names()
