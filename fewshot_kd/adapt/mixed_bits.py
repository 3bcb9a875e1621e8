"""Per-layer weight widths under a file budget (``Policy(mixed_bits=...)``): the least sensitive
layers per byte saved are lowered first, so the size fit prunes only as much as is still needed."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import torch.nn as nn

from fewshot_kd.adapt.bit_sensitivity import MEASURE, layer_sensitivity, quantizable_layers
from fewshot_kd.adapt.export import exported_bytes
from fewshot_kd.adapt.policy import Policy
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.quant._packing import container_bits

SENSITIVITY_INPUTS = 128
"""At most this many shots (the first) measure each layer's sensitivity."""

PROTECT_FACTOR = 10.0
PROTECT_FLOOR = 0.01
"""A layer whose sensitivity at a width exceeds both :data:`PROTECT_FACTOR` times the median layer's
at that width and this KL (nats; below it top-1 answers barely move) is never lowered to it: the fit
prunes for its bytes instead (quantization that breaks one layer costs more than a little more
pruning spread over all of them)."""


def check_mixed_bits(policy: Policy, bits: int | None) -> None:
    """A clear error when ``policy.mixed_bits`` cannot apply to a target of ``bits``."""
    if policy.mixed_bits is None:
        return
    if bits is None:
        raise FewShotKDError(f"policy mixed_bits={list(policy.mixed_bits)} chooses quantized widths, but the target is "
                             f"float (bits=None); set target.bits or mixed_bits=None")
    if max(policy.mixed_bits) > bits:
        raise FewShotKDError(f"policy mixed_bits={list(policy.mixed_bits)} has widths above target.bits={bits}; "
                             f"the target's bits are the widest a layer may take")


def start_bits(student: nn.Module, policy: Policy) -> dict[str, int]:
    """Every quantizable layer at the widest of ``policy.mixed_bits``, the policy's ``per_layer_bits`` kept."""
    top = max(policy.mixed_bits)
    return {**{name: top for name in quantizable_layers(student)}, **policy.per_layer_bits}


def byte_moves(sizes: dict[str, int], sensitivity: dict[str, dict[int, float]],
               start: dict[str, int]) -> list[tuple[str, int, int]]:
    """``(layer, bits, bytes saved)`` in the order they are taken: at each step the layer whose next
    narrower width among its ``sensitivity`` keys (one that takes fewer bits in the file) adds the
    least sensitivity per byte saved; the start width counts as sensitivity 0."""
    current = dict(start)
    moves = []
    while True:
        best = None
        for name in sensitivity:
            lower = [b for b in sensitivity[name] if container_bits(b) < container_bits(current[name])]
            if not lower:
                continue
            bits = max(lower)
            saved = math.ceil(sizes[name] * container_bits(current[name]) / 8) - math.ceil(sizes[name] * container_bits(bits) / 8)
            cost = sensitivity[name][bits] - sensitivity[name].get(current[name], 0.0)
            if saved > 0 and (best is None or cost / saved < best[0]):
                best = (cost / saved, name, bits, saved)
        if best is None:
            return moves
        _, name, bits, saved = best
        current[name] = bits
        moves.append((name, bits, saved))


def fit_bits(student: nn.Module, shots: LabelledDataset, bits: int, policy: Policy, budget: int,
             start_size: int) -> tuple[dict, dict]:
    """Lower layers of ``student`` (see :func:`byte_moves`) from :func:`start_bits`, whose file takes
    ``start_size`` bytes, until the file fits ``budget`` bytes as :func:`exported_bytes` measures it
    (a predicted fit is measured and extended while it is over), or every layer is at the narrowest
    width; then spare bytes buy back widths (:func:`_restore_spare`). Returns ``(per-layer bits,
    record)``: the widths, each layer's sensitivity, the protected ones, the layers lowered in order
    and the bytes before and after."""
    start = start_bits(student, policy)
    per_layer = dict(start)
    layers = quantizable_layers(student)
    free = [name for name in layers if name not in policy.per_layer_bits]
    inputs = shots.input_batch(slice(0, SENSITIVITY_INPUTS))
    lower = tuple(b for b in policy.mixed_bits if container_bits(b) < container_bits(max(policy.mixed_bits)))
    sensitivity = layer_sensitivity(student, inputs, lower, free) if lower else {}
    allowed = _unprotected(sensitivity)
    moves = byte_moves({n: layers[n].weight.numel() for n in free}, allowed, per_layer)
    taken, saved, size = 0, 0, start_size
    while size > budget and taken < len(moves):
        error = size - (start_size - saved)  # measured minus predicted, carried into the next prediction
        while taken < len(moves) and start_size - saved + error > budget:
            name, width, bytes_saved = moves[taken]
            per_layer[name], saved, taken = width, saved + bytes_saved, taken + 1
        size = exported_bytes(student, bits, per_layer)
    lowered = moves[:taken]
    if size <= budget:
        per_layer, size, lowered = _restore_spare(student, bits, start, per_layer, lowered, size, budget)
    record = {"widths": list(policy.mixed_bits), "measure": MEASURE, "inputs": min(len(shots), SENSITIVITY_INPUTS),
              "sensitivity": {n: {str(b): s for b, s in v.items()} for n, v in sensitivity.items()},
              "protected": {n: [b for b in v if b not in allowed[n]] for n, v in sensitivity.items() if len(allowed[n]) < len(v)},
              "lowered": [[n, b] for n, b, _ in lowered], "bytes_before": start_size, "bytes_after": size}
    return per_layer, record


def _restore_spare(student, bits, start, per_layer, taken, size, budget):
    """Give back, last taken first, the widths the spare bytes under ``budget`` pay for (a small layer
    lowered early at no sensitivity, when a large one lowered later sufficed), kept only if the
    measured file still fits. Returns ``(per-layer bits, bytes, moves kept)``."""
    restored, spare, kept, fixed = dict(per_layer), budget - size, [], set()
    for index in range(len(taken) - 1, -1, -1):
        name, _, saved = taken[index]
        if name in fixed or saved > spare:  # a layer's earlier move stays when its later one stays
            fixed.add(name)
            kept.append(taken[index])
            continue
        restored[name] = next((b for n, b, _ in reversed(taken[:index]) if n == name), start[name])
        spare -= saved
    if len(kept) == len(taken):
        return per_layer, size, taken
    measured = exported_bytes(student, bits, restored)
    return (restored, measured, kept[::-1]) if measured <= budget else (per_layer, size, taken)


def _unprotected(sensitivity: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """``sensitivity`` without the widths a layer is protected from (see :data:`PROTECT_FLOOR`)."""
    widths = {b for v in sensitivity.values() for b in v}
    cap = {b: max(PROTECT_FLOOR, PROTECT_FACTOR * statistics.median(v[b] for v in sensitivity.values())) for b in widths}
    return {n: {b: s for b, s in v.items() if s <= cap[b]} for n, v in sensitivity.items()}


def with_chosen_bits(policy: Policy, decisions: dict) -> Policy:
    """``policy`` with the per-layer widths a mixed-bits size fit chose (``mixed_bits`` then ``None``),
    so QAT and the export use them; ``policy`` itself when no fit chose any."""
    chosen = decisions.get("size_fit", {}).get("mixed_bits", {}).get("per_layer_bits")
    return policy if chosen is None else replace(policy, per_layer_bits=chosen, mixed_bits=None)
