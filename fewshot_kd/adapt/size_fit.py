"""Derive a student whose exported file fits ``target.size_bytes``: prune further (and, with
``Policy(mixed_bits=...)``, lower the bits of insensitive layers first) until it does."""

from __future__ import annotations

from dataclasses import replace

import torch.nn as nn

from fewshot_kd.adapt.derive import derive_student
from fewshot_kd.adapt.bit_sensitivity import quantizable_layers
from fewshot_kd.adapt.export import exported_bytes
from fewshot_kd.adapt.mixed_bits import check_mixed_bits, fit_bits, start_bits
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.target import Target
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure import saved_size_bytes
from fewshot_kd.prune.targets import PruneTargetError


def derive_to_size(teacher: nn.Module, shots: LabelledDataset, target: Target, policy: Policy,
                   max_attempts: int = 8, margin: float = 0.002, tolerance: float = 0.02) -> tuple[nn.Module, dict]:
    """:func:`derive_student`, then, if the target sets a size budget and the exported file
    would exceed it, re-derive at a smaller params fraction (secant steps on measured export
    sizes) until it fits. The MACs target stays a bound, met within ``tolerance`` as
    :func:`derive_student` meets it. With ``policy.mixed_bits`` the least sensitive layers are
    first lowered to narrower widths (:func:`~fewshot_kd.adapt.mixed_bits.fit_bits`), and only
    what still does not fit is pruned; ``decisions["size_fit"]["mixed_bits"]`` records the choice
    (its ``per_layer_bits`` go on to QAT and the export)."""
    check_mixed_bits(policy, target.bits)
    student, decisions = derive_student(teacher, shots, target, policy, tolerance=tolerance)
    macs_bound = None if target.macs is None else target.macs * (1 + tolerance) + 1e-9
    budget = target.size_budget(saved_size_bytes(teacher))
    if budget is None:
        return student, decisions
    mixed = policy.mixed_bits is not None
    per_layer = start_bits(student, policy) if mixed else policy.per_layer_bits
    size = exported_bytes(student, target.bits, per_layer)
    attempts = [{"params_fraction": decisions["params_fraction"], "bytes": size}]
    chosen = None
    if mixed:
        if size > budget:
            per_layer, chosen = fit_bits(student, shots, target.bits, policy, budget, size)
            size = chosen["bytes_after"]
            attempts.append({"params_fraction": decisions["params_fraction"], "bytes": size,
                             "lowered_layers": len(chosen["lowered"])})
        else:
            chosen = {"widths": list(policy.mixed_bits), "lowered": [], "bytes_before": size, "bytes_after": size}
    points = attempts[-1:]  # the secant steps on sizes at the final bit widths
    tries, fraction_cap, last_error = 0, 1.0, ""
    while size > budget:
        tries += 1
        if tries > max_attempts:
            raise FewShotKDError(
                f"could not fit the derived student into {budget:,} bytes: the smallest tried takes {size:,} bytes "
                f"at {attempts[-1]['params_fraction']:.3f} of the teacher's params{last_error}; raise target.size_bytes "
                f"(or lower size_ratio) or lower target.bits"
                f"{' (or add narrower widths to the policy mixed_bits)' if mixed else _mixed_hint(target.bits)}")
        fraction = min(_next_fraction(points, budget * (1 - margin)), fraction_cap)
        if not 0.0 < fraction < attempts[-1]["params_fraction"]:
            fraction = attempts[-1]["params_fraction"] * 0.9
        fraction_cap = 1.0
        trial = _derive_near(teacher, shots, replace(target, macs=None, params=fraction), policy)
        if isinstance(trial, PruneTargetError):  # e.g. between two channel counts: ask for a little less
            last_error, fraction_cap = f" ({trial})", fraction * 0.97
            continue
        trial, trial_decisions = trial
        if trial_decisions["params_fraction"] >= attempts[-1]["params_fraction"]:  # no smaller: ask for less
            fraction_cap = fraction * 0.97
            continue
        if macs_bound is not None and trial_decisions["macs_fraction"] > macs_bound:
            # a params target spreads the pruning differently: it may keep a little more MACs; ask for less
            last_error, fraction_cap = f" (at {fraction:.3f} of the params it kept {trial_decisions['macs_fraction']:.3f} of the MACs)", fraction * 0.97
            continue
        student, decisions = trial, trial_decisions
        size = exported_bytes(student, target.bits, per_layer)
        attempts.append({"params_fraction": decisions["params_fraction"], "bytes": size})
        points.append(attempts[-1])
    if macs_bound is not None and decisions["macs_fraction"] > macs_bound:
        raise FewShotKDError(f"the size-fitted student keeps {decisions['macs_fraction']:.3f} of the teacher's MACs, "
                             f"over target.macs={target.macs}; this should not happen, please report it")
    decisions["size_fit"] = {"size_bytes": budget, "attempts": attempts}
    if chosen is not None:
        decisions["size_fit"]["mixed_bits"] = {
            **chosen, "per_layer_bits": {n: per_layer[n] for n in quantizable_layers(student) if n in per_layer},
            "params_fraction": decisions["params_fraction"],
            f"params_fraction_all_{max(policy.mixed_bits)}_bits_estimate": _uniform_fraction(attempts[0], budget)}
    return student, decisions


def _uniform_fraction(first: dict, budget: int) -> float:
    """The params fraction the widest width alone would fit at (bytes taken as proportional to
    params from the first attempt; the fit does not derive it)."""
    return min(first["params_fraction"], first["params_fraction"] * budget / first["bytes"])


def _derive_near(teacher, shots, target: Target, policy: Policy):
    """``derive_student`` at a tight tolerance, loosened when channel counts are too coarse (not
    the closest count below: the loop loosens first); the last :class:`PruneTargetError` when
    none works."""
    for tolerance in (0.005, 0.02, 0.08):
        try:
            return derive_student(teacher, shots, target, policy, tolerance=tolerance, below_ok=False)
        except PruneTargetError as error:
            failure = error
    return failure


def _next_fraction(attempts: list[dict], goal: float) -> float:
    """A secant step on (params fraction, bytes); from one point, bytes are taken as proportional."""
    f1, s1 = attempts[-1]["params_fraction"], attempts[-1]["bytes"]
    if len(attempts) == 1:
        return f1 * goal / s1
    f0, s0 = attempts[-2]["params_fraction"], attempts[-2]["bytes"]
    if s1 == s0:
        return f1 * goal / s1
    return f1 + (goal - s1) * (f1 - f0) / (s1 - s0)


def _mixed_hint(bits: int | None) -> str:
    """What a uniform-width student that does not fit may try: narrower widths for the least
    sensitive layers (a text student's unpruned embedding table, for one)."""
    if bits is None or bits <= 4:
        return ""
    return f", or let the least sensitive layers take 4 bits: Policy(mixed_bits=(4, {bits}))"
