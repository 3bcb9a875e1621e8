"""Physical structured pruning: channels are removed and a smaller ordinary module is left.

:func:`prune_` builds Torch-Pruning's dependency graph (DepGraph) so that coupled layers
(a conv, its BatchNorm and the next conv's input; residual additions; depthwise convs of
inverted residuals) lose the same channels, scores each channel group with an importance
criterion and removes the weakest channels in place. BERT-family encoders are pruned by
attention heads and FFN neurons instead (:mod:`fewshot_kd.prune.transformer`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from typing import Any, Callable

import torch.nn as nn

from fewshot_kd.model_io import model_device, to_device
from fewshot_kd.prune import _graph
from fewshot_kd.prune._util import LossFn, call_model, count_params, resolve_modules, torch_pruning
from fewshot_kd.prune.importance import accumulate_gradients_, make_importance, needs_gradients
from fewshot_kd.prune.report import PruneReport, output_widths, pair_widths
from fewshot_kd.prune.targets import (
    PerLayer,
    check_ratio,
    count_macs,
    layer_ratios,
    resolve_budget,
    search_ratio,
)
from fewshot_kd.prune.transformer import find_transformer_layers, head_counts, prune_transformer_


def _names(model: nn.Module, modules: list[nn.Module]) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] for m in modules]


def _by_name(model: nn.Module, names: Iterable[str]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    return [modules[n] for n in names]


def _named_per_layer(model: nn.Module, per_layer: PerLayer) -> PerLayer:
    """``per_layer`` with module keys replaced by names (so it applies to copies too)."""
    if per_layer is None or not isinstance(per_layer, Mapping):
        return per_layer
    keys = _names(model, resolve_modules(model, per_layer.keys(), "per_layer"))
    return dict(zip(keys, per_layer.values()))


def build_pruner(
    model: nn.Module,
    example_inputs: Any,
    ratio: float,
    *,
    per_layer: PerLayer = None,
    importance: str | Any = "l1",
    ignored_layers: Iterable[str | nn.Module] | None = None,
    global_pruning: bool = False,
    max_ratio: float = 0.9,
    data: Any = None,
    loss_fn: LossFn | None = None,
    round_to: int | None = None,
    streams: bool = False,
) -> tuple[Any, list[nn.Module]]:
    """The Torch-Pruning ``BasePruner`` that :func:`prune_channels_` steps (gradients
    accumulated first for gradient-based importances), and the barrier modules."""
    tp = torch_pruning()
    found = _graph.inspect_model(model, example_inputs)
    if ignored_layers is None:
        ignored = _by_name(model, [found.last_layer] if found.last_layer is not None else [])
    else:
        ignored = resolve_modules(model, ignored_layers, "ignored_layers")
    barriers = _graph.frozen_layers(model, found, ignored, streams)
    placed = _graph.placers(found, streams)
    ratios = layer_ratios(model, per_layer, _graph.PRODUCERS)
    if needs_gradients(importance):
        accumulate_gradients_(model, data, loss_fn)
    with _graph.traced(model, barriers, placed) as customized:
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs,
            importance=make_importance(importance),
            pruning_ratio=ratio,
            pruning_ratio_dict=ratios or None,
            ignored_layers=ignored + barriers,
            global_pruning=global_pruning,
            max_pruning_ratio=max_ratio,
            round_to=round_to,
            customized_pruners=customized,
            forward_fn=lambda m, x: call_model(m, x),
        )
    return pruner, barriers


@contextmanager
def _all_trainable(model: nn.Module):
    """Every parameter requires grad inside (DepGraph traces the autograd graph: a frozen model,
    such as a teacher with ``requires_grad_(False)``, would show no dependencies and nothing would
    be pruned); each keeps its own flag, by name, afterwards."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, True))


def prune_channels_(model: nn.Module, example_inputs: Any, ratio: float, **options: Any) -> tuple[str, ...]:
    """One DepGraph pruning pass (see :func:`prune_`; ``options`` as :func:`build_pruner`'s).
    Returns the barrier module names."""
    with _all_trainable(model):
        pruner, barriers = build_pruner(model, example_inputs, ratio, **options)
        pruner.step()
    model.zero_grad(set_to_none=True)
    return tuple(_names(model, barriers))


def prune_(
    model: nn.Module,
    example_inputs: Any,
    ratio: float = 0.5,
    *,
    per_layer: PerLayer = None,
    importance: str | Any = "l1",
    target_macs: float | None = None,
    target_params: float | None = None,
    tolerance: float = 0.02,
    ignored_layers: Iterable[str | nn.Module] | None = None,
    global_pruning: bool = False,
    max_ratio: float = 0.9,
    data: Any = None,
    loss_fn: LossFn | None = None,
    round_to: int | None = None,
    below_ok: bool = False,
    streams: bool = False,
) -> PruneReport:
    """Remove ``ratio`` of the channels of every prunable channel group of ``model`` in place.

    * ``per_layer``: ratios that override ``ratio``, as ``{module name or module: ratio}``
      (a container applies to every layer in it) or ``(name, module) -> ratio | None``.
    * ``importance``: ``"l1"``, ``"l2"``, ``"bn_scale"``, ``"taylor"`` (needs ``data``: a few
      ``(x, y)`` batches of the labelled shots; ``loss_fn(output, y)``, default cross-entropy)
      or a Torch-Pruning importance object.
    * ``target_macs`` / ``target_params``: a budget (a count, or a fraction in ``(0, 1]`` of
      the unpruned model) met within ``tolerance`` by searching the global ratio (bisection;
      ``ratio`` is then ignored, ``per_layer`` entries stay fixed); :class:`PruneTargetError`
      if it cannot be met. ``below_ok``: a budget that falls between two channel counts takes
      the closest count below it (a bound met with room to spare) instead of the error.
    * ``ignored_layers``: names or modules left untouched; default: the last Conv/Linear
      layer run (the classifier). Unsupported layers must be listed here, otherwise
      :class:`~fewshot_kd.errors.UnsupportedLayerError` names them.
    * ``global_pruning``: rank channels across layers instead of per layer; ``max_ratio``
      caps any one layer (and bounds the budget search); ``round_to``: keep multiples of it.

    Custom modules that change the channel count without parameters (option-A shortcuts)
    freeze the channel groups they touch; their names are in ``report.frozen``. ``streams``:
    those that can lose channels themselves (``prune_in_channels_`` / ``prune_out_channels_``)
    are pruned with the groups instead, so the residual streams narrow as well (every
    convolution then loses input and output channels: fewer MACs per channel cut, and a
    student whose latency falls closer to its MACs). Models with
    BERT-style encoder layers are pruned by attention heads and FFN neurons (both ``ratio``).
    """
    start = time.perf_counter()
    device = model_device(model)  # the example and the data follow the model (a CUDA model, CPU shots)
    example_inputs = to_device(example_inputs, device)
    data = None if data is None else to_device(list(data), device)
    ratio = check_ratio(ratio)
    max_ratio = check_ratio(max_ratio, "max_ratio")
    if target_macs is not None and target_params is not None:
        raise ValueError("give target_macs or target_params, not both")
    if needs_gradients(importance) and data is None:
        raise ValueError(f"importance={importance!r} needs data=[(x, y), ...]: a few batches of the labelled shots")
    per_layer = _named_per_layer(model, per_layer)
    ignored = None if ignored_layers is None else _names(model, resolve_modules(model, ignored_layers, "ignored_layers"))
    transformer = bool(find_transformer_layers(model))
    if transformer and (ignored is not None or global_pruning):
        raise ValueError(
            "ignored_layers and global_pruning apply to channel pruning; for BERT-style models give "
            "per_layer={'<encoder layer>': 0.0, ...} to keep a layer whole"
        )

    def apply(m: nn.Module, r: float) -> tuple[str, ...]:
        if transformer:
            prune_transformer_(
                m, example_inputs, head_ratio=r, ffn_ratio=r, per_layer=per_layer,
                importance=importance, data=data, loss_fn=loss_fn, round_to=round_to,
            )
            return ()
        return prune_channels_(
            m, example_inputs, r, per_layer=per_layer, importance=importance, ignored_layers=ignored,
            global_pruning=global_pruning, max_ratio=max_ratio, data=data, loss_fn=loss_fn, round_to=round_to,
            streams=streams,
        )

    macs_before, params_before = count_macs(model, example_inputs), count_params(model)
    widths_before, heads_before = output_widths(model), head_counts(model)
    if target_macs is not None or target_params is not None:
        ratio = _search(model, example_inputs, apply, target_macs, target_params, macs_before, params_before,
                        tolerance, max_ratio, below_ok)
    frozen = apply(model, ratio)
    return PruneReport(
        params_before=params_before,
        params_after=count_params(model),
        macs_before=macs_before,
        macs_after=count_macs(model, example_inputs),
        channels=pair_widths(widths_before, output_widths(model)),
        heads=pair_widths(heads_before, head_counts(model)),
        frozen=frozen,
        ratio=ratio,
        importance=importance if isinstance(importance, str) else type(importance).__name__,
        seconds=time.perf_counter() - start,
    )


def _search(
    model: nn.Module,
    example_inputs: Any,
    apply: Callable[[nn.Module, float], Any],
    target_macs: float | None,
    target_params: float | None,
    macs_before: int,
    params_before: int,
    tolerance: float,
    max_ratio: float,
    below_ok: bool = False,
) -> float:
    """The global ratio meeting the MACs or parameter budget (pruning copies of ``model``)."""
    by_macs = target_macs is not None
    what = "MACs" if by_macs else "parameters"
    budget = resolve_budget(target_macs if by_macs else target_params, macs_before if by_macs else params_before, what)

    def measure(r: float) -> int:
        trial = copy.deepcopy(model)
        apply(trial, r)
        return count_macs(trial, example_inputs) if by_macs else count_params(trial)

    ratio, _ = search_ratio(measure, budget, tolerance=tolerance, max_ratio=max_ratio, what=what, below_ok=below_ok)
    return ratio
