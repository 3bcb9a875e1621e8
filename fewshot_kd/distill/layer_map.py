"""Which layers to distil: resolve a layer spec on one model, and pair teacher and student layers.

Specs:

* a list of module names (``["layer1", "layer2"]``), checked against ``model.named_modules()``;
* ``"last k"`` / ``"last:k"``: the last ``k`` transformer blocks, or the last ``k`` CNN stages;
* ``"auto"``: every transformer block (``encoder.layer.N`` in BERT-family models), or for
  CNNs the last module of each resolution stage, found by running ``example_inputs`` and
  watching where the spatial size of the output changes.

``example_inputs`` is passed to the model as ``model(x)``; a tuple is unpacked as positional
arguments and a dict as keyword arguments. Left out, a zero batch of ``model.input_shape``
(set by the model zoo's vision models) is used. The model runs once in eval mode under
``torch.no_grad()`` and its train/eval flags are restored afterwards.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
import torch.nn as nn

from fewshot_kd.errors import UnknownNameError, UnsupportedLayerError

LayerSpec = Union[str, Sequence[str]]
PairSpec = Union[str, Sequence[tuple[str, str]]]

_BLOCK_LIST_NAMES = {"layer", "layers", "h", "block", "blocks"}
_STAGE_NAME = re.compile(r"^(layer|stage)\d+$")
_LAST_K = re.compile(r"^last(?:[\s:_-]*(\d+))?$")
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


@dataclass(frozen=True)
class Stage:
    """The last module of one resolution stage, its output's spatial size and channels."""

    name: str
    spatial_size: tuple[int, int]
    channels: int


def uniform_layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """Teacher layer index (0-based) for each student layer, spread evenly and ending at the
    teacher's last layer: 3 student layers from 6 give ``[1, 3, 5]`` (layers 2, 4, 6)."""
    _check_layer_counts(num_student_layers, num_teacher_layers)
    m, n = num_student_layers, num_teacher_layers
    return [-(-(j + 1) * n // m) - 1 for j in range(m)]


def last_layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """Student layer ``j`` learns from teacher layer ``n - m + j`` (the teacher's last ``m``)."""
    _check_layer_counts(num_student_layers, num_teacher_layers)
    if num_student_layers > num_teacher_layers:
        raise ValueError(
            f"'last' mapping needs a student no deeper than the teacher ({num_student_layers} > {num_teacher_layers}); "
            "use the uniform mapping"
        )
    offset = num_teacher_layers - num_student_layers
    return [offset + j for j in range(num_student_layers)]


def _check_layer_counts(num_student_layers: int, num_teacher_layers: int) -> None:
    if int(num_student_layers) < 1 or int(num_teacher_layers) < 1:
        raise ValueError(
            f"layer counts must be positive, got student={num_student_layers}, teacher={num_teacher_layers}"
        )


def transformer_blocks(model: nn.Module) -> list[str] | None:
    """Names of the repeated transformer blocks (the largest ``nn.ModuleList`` named
    ``layer``/``layers``/``h``/``blocks`` whose items share one class and hold no Conv2d),
    or ``None`` when the model has none."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if name.rsplit(".", 1)[-1] not in _BLOCK_LIST_NAMES:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        if any(isinstance(m, nn.Conv2d) for m in module.modules()):
            continue
        if best is None or len(module) > len(best[1]):
            best = (name, module)
    if best is None:
        return None
    prefix = f"{best[0]}." if best[0] else ""
    return [f"{prefix}{i}" for i in range(len(best[1]))]


def find_stages(model: nn.Module, example_inputs: Any = None) -> list[Stage]:
    """The last module of each resolution stage of a CNN, in forward order.

    Modules run by the example forward are grouped into the coarsest units that stay at one
    output resolution (``layer2`` of a ResNet is one unit; ``features`` of MobileNetV2 is
    opened up); consecutive units with the same output ``H x W`` form a stage. Global
    pooling to 1x1, non-image outputs and parameter-free input preprocessing (e.g.
    normalisation before the first layer with weights) are left out.
    """
    records = _trace(model, _need_inputs(example_inputs, model))
    units = _units(model, "", records)
    first_weighted = next((i for i, (_, m) in enumerate(units) if any(True for _ in m.parameters())), 0)
    stages: list[Stage] = []
    for name, module in units[first_weighted:]:
        record = records[module]
        size = record["out_hw"]
        if size is None or (isinstance(module, _GLOBAL_POOLS) and size == (1, 1)):
            continue
        stage = Stage(name, size, record["out_channels"])
        if stages and stages[-1].spatial_size == size:
            stages[-1] = stage
        else:
            stages.append(stage)
    if not stages:
        raise UnsupportedLayerError(
            f"{type(model).__name__} produced no [N, C, H, W] outputs for the example input; "
            "resolution stages need a CNN (for transformers the blocks are found by name)"
        )
    return stages


def resolve_layers(model: nn.Module, spec: LayerSpec, example_inputs: Any = None) -> list[str]:
    """Module names selected by ``spec`` (see the module docstring)."""
    if not isinstance(spec, str):
        names = list(spec)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"a layer spec list must hold module names (str), got {spec!r}")
        check_layer_names(model, names)
        return names
    text = spec.strip().lower()
    last = _LAST_K.match(text)
    if text == "auto" or last:
        candidates = _candidates(model, example_inputs)
        if text == "auto":
            return candidates
        k = int(last.group(1)) if last.group(1) else len(candidates)
        if not 1 <= k <= len(candidates):
            raise ValueError(
                f"{spec!r} asks for {k} layers but {type(model).__name__} has {len(candidates)}: {candidates}"
            )
        return candidates[-k:]
    raise ValueError(f"unknown layer spec {spec!r}; use a list of module names, 'auto' or 'last k' (e.g. 'last:3')")


def map_layers(
    teacher: nn.Module,
    student: nn.Module,
    spec: PairSpec = "auto",
    example_inputs: Any = None,
    student_example_inputs: Any = None,
) -> list[tuple[str, str]]:
    """Pairs ``(teacher_name, student_name)`` to distil between.

    ``spec``: ``"auto"`` (CNNs: stages with the same spatial size; transformers: uniform),
    ``"resolution"``, ``"uniform"`` (each student layer from an evenly spaced teacher
    layer), ``"last"`` / ``"last k"`` (last k layers of each, paired in order), or an
    explicit list of pairs. ``student_example_inputs`` defaults to ``example_inputs``.
    """
    if not isinstance(spec, str):
        pairs = [tuple(p) for p in spec]
        if not pairs or not all(len(p) == 2 and all(isinstance(n, str) for n in p) for p in pairs):
            raise TypeError(f"explicit layer pairs must be (teacher_name, student_name) tuples, got {spec!r}")
        check_layer_names(teacher, [t for t, _ in pairs], "teacher")
        check_layer_names(student, [s for _, s in pairs], "student")
        return [(t, s) for t, s in pairs]
    student_inputs = example_inputs if student_example_inputs is None else student_example_inputs
    text = spec.strip().lower()
    last = _LAST_K.match(text)
    if text not in ("auto", "resolution", "uniform") and not last:
        raise ValueError(
            f"unknown mapping spec {spec!r}; use 'auto', 'resolution', 'uniform', 'last', 'last k' or a list of pairs"
        )
    t_blocks, s_blocks = transformer_blocks(teacher), transformer_blocks(student)
    if (t_blocks is None) != (s_blocks is None):
        raise UnsupportedLayerError(
            "one model is a transformer and the other is not; give explicit (teacher_name, student_name) pairs"
        )
    is_transformer = t_blocks is not None
    if text == "auto":
        text = "uniform" if is_transformer else "resolution"
    if text == "resolution":
        if is_transformer:
            raise UnsupportedLayerError("resolution matching is for CNNs; use 'uniform' or 'last k' for transformers")
        return _match_by_resolution(find_stages(teacher, example_inputs), find_stages(student, student_inputs))
    t_names = t_blocks if is_transformer else [s.name for s in find_stages(teacher, example_inputs)]
    s_names = s_blocks if is_transformer else [s.name for s in find_stages(student, student_inputs)]
    if text == "uniform":
        return [(t_names[i], s_name) for s_name, i in zip(s_names, uniform_layer_map(len(s_names), len(t_names)))]
    k = int(last.group(1)) if last.group(1) else min(len(t_names), len(s_names))
    if not 1 <= k <= min(len(t_names), len(s_names)):
        raise ValueError(
            f"{spec!r} asks for {k} pairs but the teacher has {len(t_names)} and the student {len(s_names)} layers"
        )
    return list(zip(t_names[-k:], s_names[-k:]))


def check_layer_names(model: nn.Module, names: Sequence[str], role: str = "model") -> None:
    """Raise ``UnknownNameError`` (with close matches) for names that are not submodules."""
    known = dict(model.named_modules())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, [k for k in known if k], n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"{role} {type(model).__name__} has no submodule {name!r}.{hint} "
                "See model.named_modules() for the names."
            )


def _candidates(model: nn.Module, example_inputs: Any) -> list[str]:
    blocks = transformer_blocks(model)
    if blocks is not None:
        return blocks
    if example_inputs is not None or hasattr(model, "input_shape"):
        return [stage.name for stage in find_stages(model, example_inputs)]
    named = [name for name, _ in model.named_modules() if _STAGE_NAME.match(name.rsplit(".", 1)[-1])]
    if named:
        depth = min(n.count(".") for n in named)
        return [n for n in named if n.count(".") == depth]
    raise UnsupportedLayerError(
        f"cannot find the stages of {type(model).__name__} by name; pass example_inputs so they can be "
        "found by resolution, or list the module names"
    )


def _need_inputs(example_inputs: Any, model: nn.Module) -> Any:
    if example_inputs is not None:
        return example_inputs
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{type(model).__name__} is a CNN without an input_shape attribute: pass example_inputs "
            "(e.g. torch.zeros(1, 3, 32, 32)) so its resolution stages can be found"
        )
    param = next(iter(model.parameters()), None)
    return torch.zeros((1, *shape), device=param.device if param is not None else None)


def _match_by_resolution(teacher_stages: list[Stage], student_stages: list[Stage]) -> list[tuple[str, str]]:
    student_by_size = {stage.spatial_size: stage.name for stage in student_stages}
    pairs = [(t.name, student_by_size[t.spatial_size]) for t in teacher_stages if t.spatial_size in student_by_size]
    if not pairs:
        raise ValueError(
            f"no teacher stage has the spatial size of a student stage (teacher {[t.spatial_size for t in teacher_stages]}, "
            f"student {[s.spatial_size for s in student_stages]}); use 'uniform' or 'last k' to pair by order"
        )
    return pairs


def _spatial(output: Any) -> tuple[tuple[int, int] | None, int | None]:
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if isinstance(output, torch.Tensor) and output.dim() == 4:
        return (int(output.shape[-2]), int(output.shape[-1])), int(output.shape[1])
    return None, None


def _trace(model: nn.Module, example_inputs: Any) -> dict[nn.Module, dict]:
    """Run one forward with hooks on every module; record call order and output sizes."""
    records: dict[nn.Module, dict] = {}
    counter = iter(range(1 << 62))

    def before(module: nn.Module, args: Any) -> None:
        if module not in records:
            in_hw, _ = _spatial(args[0] if args else None)
            records[module] = {"start": next(counter), "in_hw": in_hw, "out_hw": None, "out_channels": None}

    def after(module: nn.Module, args: Any, output: Any) -> None:
        hw, channels = _spatial(output)
        records[module]["out_hw"], records[module]["out_channels"] = hw, channels

    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        model.eval()
        with torch.no_grad():
            _call(model, example_inputs)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return records


def _call(model: nn.Module, example_inputs: Any) -> Any:
    if isinstance(example_inputs, tuple):
        return model(*example_inputs)
    if isinstance(example_inputs, dict):
        return model(**example_inputs)
    return model(example_inputs)


def _units(module: nn.Module, prefix: str, records: dict[nn.Module, dict]) -> list[tuple[str, nn.Module]]:
    """The coarsest called submodules that each cross at most one stage boundary (every
    output inside them has the unit's input or output resolution), in call order."""
    children = [(name, child) for name, child in module.named_children() if child in records]
    children.sort(key=lambda item: records[item[1]]["start"])
    units: list[tuple[str, nn.Module]] = []
    for name, child in children:
        full = f"{prefix}.{name}" if prefix else name
        inner = _units(child, full, records)
        record = records[child]
        allowed = {record["in_hw"], record["out_hw"], (1, 1)}  # (1, 1): squeeze-excitation pooling
        crosses_stages = any(records[m]["out_hw"] not in allowed for _, m in inner if records[m]["out_hw"])
        units.extend(inner if crosses_stages else [(full, child)])
    return units
