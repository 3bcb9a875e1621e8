"""Torch-Pruning's own progressive pruning loop as a peer of ``prune_finetune``.

A deepcopy of the teacher is pruned by ``torch_pruning.pruner.BasePruner`` (L1 group
magnitude, per-layer ranking unless ``global_pruning``, ``iterative_steps`` small steps of a
linear schedule) until ``tp.utils.count_ops_and_params`` says its MACs are within
``tolerance`` of the target fraction of the teacher's, as in Torch-Pruning's progressive
pruning (``benchmarks/main.py``); then it is fine-tuned with cross-entropy on the shots as
``prune_finetune`` is. No bisection, no ``fewshot_kd.prune.prune_``.

Option-A shortcuts (parameter-free modules that zero-pad channels) look element-wise to
Torch-Pruning. Each such module gets a frozen pruner (``customized_pruners``, input and
output channels coupled) and is listed in ``ignored_layers``, so every channel group that
passes through it keeps its width; the classifier is ignored too. Both are found by the probe
of :func:`fewshot_kd.prune._graph.inspect_model`, which also names layers with parameters
Torch-Pruning cannot resize (:class:`UnsupportedLayerError`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.errors import FewShotKDError, UnsupportedLayerError
from fewshot_kd.model_io import to_device, trainable_copy
from fewshot_kd.prune._graph import inspect_model
from fewshot_kd.prune._util import torch_pruning
from fewshot_kd.prune.serialize import save_pruned
from fewshot_kd.prune.targets import PruneTargetError
from fewshot_kd.training import fit

from benchmarks.methods._few_shot_training import few_shot_config
from benchmarks.methods.base import MethodInput, MethodOutput, register_method
from benchmarks.methods.prune_finetune import FineTuneOptions

IMPORTANCES = {"l1": 1, "l2": 2}  # Torch-Pruning's MagnitudeImportance(p=...)


@dataclass
class TorchPruningResult:
    """MACs (Torch-Pruning's count) before and after, pruner steps taken, frozen modules."""

    macs_before: int
    macs_after: int
    steps: int
    frozen: tuple[str, ...]

    @property
    def fraction(self) -> float:
        return self.macs_after / self.macs_before


def _frozen_pruner():
    tp = torch_pruning()

    class FrozenPruner(tp.pruner.BasePruningFunc):
        """Couples input and output channels and refuses to prune: groups through it are found
        (and skipped, the module being ignored) instead of being mis-indexed."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer: nn.Module, idxs):
            raise UnsupportedLayerError(f"{type(layer).__name__} cannot be pruned")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module):
            return None

        get_in_channels = get_out_channels

    return FrozenPruner()


def _check_tensor_inputs(example_inputs: Any) -> None:
    if not isinstance(example_inputs, torch.Tensor):
        raise FewShotKDError(
            f"tp_prune_finetune traces and counts with tensor inputs, got {type(example_inputs).__name__}; "
            "use prune_finetune for text models"
        )


def _check_runs(model: nn.Module, example_inputs: torch.Tensor, num_outputs: int | None) -> None:
    """Run the pruned model once; a failure names the last layer entered."""
    names = {m: n for n, m in model.named_modules()}
    entered = ["<model input>"]
    hooks = [m.register_forward_pre_hook(lambda mod, args: entered.append(names[mod]))
             for m in model.modules() if next(iter(m.children()), None) is None]
    try:
        with torch.no_grad():
            out = model.eval()(example_inputs)
    except RuntimeError as error:
        raise UnsupportedLayerError(
            f"Torch-Pruning left the model broken at layer {entered[-1]!r}: {error}. A custom module before "
            "it probably changes channel counts in a way Torch-Pruning cannot trace; use prune_finetune"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    if num_outputs is not None and out.shape[-1] != num_outputs:
        raise UnsupportedLayerError(f"Torch-Pruning changed the classifier: {out.shape[-1]} outputs, not {num_outputs}")


def torch_pruning_to_macs_(
    model: nn.Module,
    example_inputs: torch.Tensor,
    target: float,
    *,
    iterative_steps: int = 400,
    tolerance: float = 0.02,
    max_ratio: float = 0.9,
    importance: str = "l1",
    global_pruning: bool = False,
) -> TorchPruningResult:
    """Prune ``model`` in place with Torch-Pruning's pruner, one scheduled step at a time,
    until its MACs are at most ``(1 + tolerance) * target`` of the start (MACs counted by
    ``tp.utils.count_ops_and_params``). :class:`PruneTargetError` if the schedule ends first."""
    tp = torch_pruning()
    _check_tensor_inputs(example_inputs)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise PruneTargetError(f"target MACs must be a fraction of the teacher's in (0, 1], got {target!r}")
    if importance not in IMPORTANCES:
        raise FewShotKDError(f"unknown importance {importance!r}; choose from {sorted(IMPORTANCES)}")
    found = inspect_model(model, example_inputs)
    if found.unsupported:
        name, module = next(iter(found.unsupported.items()))
        raise UnsupportedLayerError(
            f"layer {name!r} ({type(module).__name__}) has parameters Torch-Pruning cannot resize; "
            "use prune_finetune with ignored_layers, or build the model from standard layers"
        )
    barriers = list(found.barriers.values())
    classifier = [dict(model.named_modules())[found.last_layer]] if found.last_layer else []
    macs_before = tp.utils.count_ops_and_params(model, example_inputs)[0]
    budget = target * macs_before * (1 + tolerance)
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            model, example_inputs,
            importance=tp.importance.MagnitudeImportance(p=IMPORTANCES[importance]),
            pruning_ratio=1.0, max_pruning_ratio=max_ratio, iterative_steps=iterative_steps,
            global_pruning=global_pruning, ignored_layers=classifier + barriers,
            customized_pruners={type(m): _frozen_pruner() for m in barriers},
        )
        macs = macs_before
        while macs > budget and pruner.current_step < iterative_steps:
            pruner.step()
            try:
                macs = tp.utils.count_ops_and_params(model, example_inputs)[0]
            except RuntimeError:
                _check_runs(model, example_inputs, None)  # names the broken layer
                raise
    _check_runs(model, example_inputs, classifier[0].weight.shape[0] if classifier else None)
    if macs > budget:
        raise PruneTargetError(
            f"Torch-Pruning's schedule ended at {macs:,} MACs ({macs / macs_before:.1%} of {macs_before:,}), "
            f"above the target {target:.1%}: at most {max_ratio:.0%} of any layer is removed, and the classifier and "
            f"the channels of {len(barriers)} frozen shortcut modules are kept. Ask for a larger MACs target"
        )
    return TorchPruningResult(macs_before, macs, pruner.current_step, tuple(found.barriers))


@dataclass(frozen=True)
class TorchPruningOptions(FineTuneOptions):
    """Fine-tuning as ``prune_finetune``'s; the other fields are the keywords of
    :func:`torch_pruning_to_macs_`, with its defaults."""

    iterative_steps: int = 400
    tolerance: float = 0.02
    max_ratio: float = 0.9
    importance: str = "l1"
    global_pruning: bool = False

    def pruning(self) -> dict:
        """The keywords for :func:`torch_pruning_to_macs_`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in FineTuneOptions.__dataclass_fields__}


@register_method("tp_prune_finetune",
                 "teacher pruned by Torch-Pruning's own progressive pruner to the MACs target, fine-tuned with CE",
                 TorchPruningOptions)
def run(inp: MethodInput, options: TorchPruningOptions) -> MethodOutput:
    torch.manual_seed(inp.seed)
    student = trainable_copy(inp.teacher).to(inp.device)
    result = torch_pruning_to_macs_(student, to_device(inp.example_inputs, inp.device), inp.target.get("macs", 0.5),
                                    **options.pruning())
    config = few_shot_config(len(inp.shots), inp.augment, steps=options.steps, lr=options.lr, seed=inp.seed)
    history = fit(student, inp.shots, config, progress=inp.progress, description="tp-prune+finetune")
    artifact = save_pruned(student, inp.workdir / "pruned.safetensors", arch=getattr(inp.teacher, "arch", None))
    notes = {"tp_macs_fraction": result.fraction, "pruning_steps": result.steps, "frozen": list(result.frozen),
             "history": history}
    return MethodOutput(model=student.eval(), artifact=artifact, notes=notes)
