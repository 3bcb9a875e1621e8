"""Pruning targets: per-layer ratios, a MACs or parameter budget, and how to count them.

MACs are measured, not estimated, by :func:`fewshot_kd.measure.count_macs` (re-exported
here): one forward pass under ``torch.utils.flop_counter.FlopCounterMode``, FLOPs halved.
A budget is met by :func:`search_ratio`, a bisection on the global pruning ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import torch.nn as nn

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure.macs import count_macs  # the one MAC counter, re-exported for the pruner
from fewshot_kd.prune._util import count_params, resolve_modules

PerLayer = Mapping[Any, float] | Callable[[str, nn.Module], float | None] | None


class PruneTargetError(FewShotKDError, ValueError):
    """A MACs or parameter budget cannot be met; the message says what was reachable."""


def count_macs_params(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """``(MACs, parameters)`` of ``model`` on ``example_inputs``."""
    return count_macs(model, example_inputs), count_params(model)


def check_ratio(ratio: float, what: str = "ratio") -> float:
    """``ratio`` as a float in ``[0, 1)``, else a ValueError naming it."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"{what} must be a fraction of channels to remove in [0, 1), got {ratio!r}")
    return float(ratio)


def n_keep(total: int, ratio: float, round_to: int | None = None) -> int:
    """How many of ``total`` units survive pruning ``ratio`` of them: ``int(total * (1 - ratio))``
    (as Torch-Pruning computes it), rounded down to a multiple of ``round_to``, at least one
    (or ``round_to``)."""
    keep = int(total * (1.0 - check_ratio(ratio)))
    if round_to:
        keep -= keep % round_to
        keep = max(keep, min(round_to, total))
    return max(1, min(keep, total))


def layer_ratios(model: nn.Module, per_layer: PerLayer, prunable: tuple[type, ...]) -> dict[nn.Module, float]:
    """Per-layer ratios as ``{module: ratio}``. ``per_layer`` maps module names (or modules;
    a container applies to every layer inside it) to ratios, or is a callable
    ``(name, module) -> ratio | None`` asked for every ``prunable`` layer."""
    if per_layer is None:
        return {}
    if callable(per_layer) and not isinstance(per_layer, Mapping):
        ratios = {}
        for name, module in model.named_modules():
            if isinstance(module, prunable):
                ratio = per_layer(name, module)
                if ratio is not None:
                    ratios[module] = check_ratio(ratio, f"per_layer({name!r})")
        return ratios
    if not isinstance(per_layer, Mapping):
        raise TypeError(f"per_layer must be a mapping, a callable or None, got {type(per_layer).__name__}")
    modules = resolve_modules(model, per_layer.keys(), "per_layer")
    return {m: check_ratio(r, f"per_layer[{k!r}]") for m, (k, r) in zip(modules, per_layer.items())}


def resolve_budget(target: float | int, before: int, what: str) -> int:
    """An absolute budget from ``target``: a count (> 1) or a fraction in ``(0, 1]`` of ``before``."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or target <= 0 or math.isnan(target):
        raise ValueError(f"{what} must be a positive count or a fraction in (0, 1], got {target!r}")
    return int(round(target * before)) if target <= 1 else int(target)


def search_ratio(
    measure: Callable[[float], int],
    target: int,
    *,
    tolerance: float = 0.02,
    max_ratio: float = 0.9,
    steps: int = 25,
    what: str = "MACs",
    below_ok: bool = False,
) -> tuple[float, int]:
    """The global ratio whose pruned model measures within ``tolerance`` (relative) of
    ``target``, by bisection on ``measure(ratio)`` (non-increasing in the ratio).
    Returns ``(ratio, measured)``; :class:`PruneTargetError` when the target lies below
    what ``max_ratio`` reaches or falls between two channel counts (with ``below_ok``, the
    closest count below the target is taken instead: the budget is met, with room to spare)."""
    low_ok, high_ok = target * (1 - tolerance), target * (1 + tolerance)
    at_zero = measure(0.0)
    if at_zero <= high_ok:
        if at_zero >= low_ok:
            return 0.0, at_zero
        raise PruneTargetError(f"the unpruned model already has {at_zero:,} {what}, below the target {target:,}")
    at_max = measure(max_ratio)
    if at_max > high_ok:
        # a pruner skips a layer it would cut to nothing (narrow layers, round_to), so the count can rise
        # again near max_ratio: bracket with the deepest cut below it that meets the target
        for fraction in (0.95, 0.9, 0.8, 0.7, 0.6, 0.5):
            value = measure(max_ratio * fraction)
            if value <= high_ok:
                max_ratio, at_max = max_ratio * fraction, value
                break
    if at_max > high_ok:
        raise PruneTargetError(
            f"cannot reach {target:,} {what}: pruning {max_ratio:.0%} of every prunable group still "
            f"leaves {at_max:,} (ignored and frozen layers are not pruned). Raise max_ratio, "
            "ignore fewer layers, or ask for a larger budget."
        )
    lo, hi, best = 0.0, max_ratio, (max_ratio, at_max)
    for _ in range(steps):
        mid = (lo + hi) / 2
        value = measure(mid)
        if low_ok <= value <= high_ok:
            return mid, value
        if value > high_ok:
            lo = mid
        else:
            hi, best = mid, (mid, value)
    if below_ok:
        return best
    raise PruneTargetError(
        f"no ratio gives {target:,} {what} within {tolerance:.1%}: the closest below is "
        f"{best[1]:,} at ratio {best[0]:.4f} (channel counts are discrete; raise tolerance)"
    )
