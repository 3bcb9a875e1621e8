"""Continuous relaxations of the discrete compression choices, so meta-gradients reach them.

Pruning: every channel of a group gets a gate ``sigmoid((rank_c + d - r n) / sharpness)``
where ``rank_c`` is the channel's rank (0 = least important) among the group's ``n`` by the
deployed pruner's own scores (:func:`fewshot_kd.prune.channel_scores`), ``r`` the group's
prune ratio and ``d = min(1/2, 2 sqrt(sharpness))``: the channels ranked below ``r n`` are
(softly) off and ``d gate / d r`` is defined. The deployed pruner removes
``n - int(n (1 - r))`` channels, i.e. every channel ranked below ``r n`` (``ceil(r n)`` of
them); as the sharpness goes to 0, ``d`` goes to 0 while ``d / sharpness`` grows, so the gates
become exactly that 0/1 mask. Gates multiply the *outputs* of the modules the group emits,
written into their parameters (BatchNorm weight and bias, or the conv / linear weight and
bias), so the model runs through ``torch.func.functional_call`` unchanged. A transformer's
attention head is gated on its rows of the value projection (its context is then zero, as if
its columns of the output projection were removed), an FFN neuron on its row of
``intermediate.dense`` (GELU(0) = 0). Bits: a layer's
weight is the mixture ``p8 * Q8(w) + (1 - p8) * Q4(w)`` of the deployed per-channel minmax
quantizer with a straight-through gradient (:func:`fewshot_kd.quant.fake.quantize_weight_ste`).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from fewshot_kd.meta.precision import fp32, full_precision
from fewshot_kd.quant.fake import quantize_weight_ste as quantize_weight  # noqa: F401  (re-exported)

BIT_CHOICES = (4, 8)


def channel_ranks(scores: torch.Tensor) -> torch.Tensor:
    """Each channel's rank by ``scores`` (0 = lowest; ties by index) as a float tensor."""
    return scores.argsort(stable=True).argsort().to(torch.float32)


def channel_quantiles(params: dict[str, torch.Tensor], groups, scores: dict[str, torch.Tensor] | None = None
                      ) -> list[torch.Tensor]:
    """Per group, each channel's rank (0 = least important), in the root weight's dtype and
    device: by ``scores[g.root]`` (:func:`fewshot_kd.prune.channel_scores`, what the deployed
    pruner ranks by) or, without ``scores``, by the L1 norm of the root's weight alone."""
    out = []
    for g in groups:
        weight = params[f"{g.layer}.weight"]
        if scores is None:
            score = weight.detach().abs().reshape(g.channels, -1).sum(1)
        else:
            score = scores[g.root]
            if score.numel() != g.channels:
                raise ValueError(f"{g.root}: {score.numel()} scores for a group of {g.channels} channels")
        out.append(channel_ranks(score.detach()).to(device=weight.device, dtype=weight.dtype))
    return out


def gate_offset(sharpness: float) -> float:
    """The ``d`` in the gate ``sigmoid((rank + d - r n) / sharpness)``: 1/2 (expected
    channels off = ``r n``) for sharpness >= 1/16, below that ``2 sqrt(sharpness)``, so that
    in the hard limit the channels off are exactly those ranked below ``r n`` (a channel
    ranked exactly ``r n`` is kept), as the deployed pruner removes."""
    return min(0.5, 2.0 * math.sqrt(sharpness))


def _scale_along(t: torch.Tensor, gate: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * t.dim()
    shape[dim] = gate.numel()
    return t * gate.view(shape)


def gate_params(params: dict[str, torch.Tensor], groups, ratios: torch.Tensor, quantiles: list[torch.Tensor],
                sharpness: float = 0.2) -> dict[str, torch.Tensor]:
    """``params`` with every group's output channels gated at prune ratio ``ratios[g]``:
    ``gate_c = sigmoid((rank_c + d - ratio * channels) / sharpness)`` (sharpness in channels,
    ``d`` = :func:`gate_offset`), so the channels ranked below ``ratio * channels`` are off."""
    out = dict(params)
    offset = gate_offset(sharpness)
    for g, ratio, ranks in zip(groups, ratios, quantiles):
        gate = torch.sigmoid((ranks + offset - ratio * ranks.numel()) / sharpness)
        if g.block > 1:  # one gate per head covers its head_size outputs
            gate = gate.repeat_interleave(g.block)
        for module, _ in g.gated:
            for suffix, axis in (("weight", 1 if g.transposed else 0), ("bias", 0)):
                key = f"{module}.{suffix}"
                if key in out and out[key] is not None:
                    out[key] = _scale_along(out[key], _placed(gate, g.offset, out[key].shape[axis]), axis)
    return out


def _placed(gate: torch.Tensor, offset: int, size: int) -> torch.Tensor:
    """``gate`` at outputs ``offset ..`` of ``size``, ones around it (the outputs it does not gate)."""
    if offset == 0 and gate.numel() == size:
        return gate
    ones = gate.new_ones
    return torch.cat([ones(offset), gate, ones(size - offset - gate.numel())])


def quantize_layer_weight(weight: torch.Tensor, bits: int, transposed: bool = False) -> torch.Tensor:
    """:func:`quantize_weight` per output channel: axis 0, or axis 1 for a weight stored
    ``[in, out]`` (GPT-2's ``Conv1D``, as the deployed ``QuantConv1D`` steps per output column)."""
    return quantize_weight(weight.t(), bits).t() if transposed else quantize_weight(weight, bits)


def quantize_params(params: dict[str, torch.Tensor], layers: list[str], p8: torch.Tensor,
                    transposed: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """Every layer's weight as the ``p8``-weighted mixture of its 8- and 4-bit versions
    (``transposed``: the layers whose weight is stored ``[in, out]``)."""
    out = dict(params)
    for name, p in zip(layers, p8):
        key = f"{name}.weight"
        w, flip = out[key], name in transposed
        out[key] = p * quantize_layer_weight(w, 8, flip) + (1 - p) * quantize_layer_weight(w, 4, flip)
    return out


def expected_bits(p8: torch.Tensor, layer_params: torch.Tensor) -> torch.Tensor:
    share = layer_params / layer_params.sum()
    return (share * (BIT_CHOICES[0] + (BIT_CHOICES[1] - BIT_CHOICES[0]) * p8)).sum()


def project_ratios(preferences: torch.Tensor, macs_fraction: Callable[[torch.Tensor], torch.Tensor], target: float,
                   max_ratio: float = 0.9, iters: int = 50) -> torch.Tensor:
    """Per-group prune ratios ``max_ratio * sigmoid(z + b)`` with the shift ``b`` bisected so
    that ``macs_fraction(ratios) == target``. Gradients to the preferences ``z`` follow the
    implicit function (one Newton step from the bisected ``b``, slope held constant).
    Where the target cannot be met every ratio saturates at ``max_ratio``.

    Runs in fp32 with autocast off (the slope's step of 1e-3 is below bf16's resolution), and
    never reads a value back to the host: the bisection selects with ``torch.where``."""
    if preferences.numel() == 0:
        return preferences
    with full_precision(preferences.device):
        return _project(fp32(preferences), macs_fraction, target, max_ratio, iters)


def _project(preferences: torch.Tensor, macs_fraction, target: float, max_ratio: float, iters: int) -> torch.Tensor:
    z = preferences.detach()

    def frac(b: torch.Tensor, prefs: torch.Tensor = z) -> torch.Tensor:
        return macs_fraction(max_ratio * torch.sigmoid(prefs + b))

    lo = torch.tensor(-30.0, device=z.device)
    hi = torch.tensor(30.0, device=z.device)
    with torch.no_grad():
        for _ in range(iters):
            mid = (lo + hi) / 2
            above = frac(mid) > target
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        b0 = (lo + hi) / 2
        eps = 1e-3
        slope = (frac(b0 + eps) - frac(b0 - eps)) / (2 * eps)
        usable = slope.abs() >= 1e-8  # else the target cannot be met: no Newton step, no gradient
        safe_slope = torch.where(usable, slope, torch.ones_like(slope))
    newton = b0 - (frac(b0, preferences) - target) / safe_slope
    b = torch.where(usable, newton, b0)
    return max_ratio * torch.sigmoid(preferences + b)
