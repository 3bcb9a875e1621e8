"""Continuous relaxations of the discrete compression choices, so meta-gradients reach them.

Pruning: every channel of a group gets a gate ``sigmoid((rank_c + 1/2 - r n) / sharpness)``
where ``rank_c`` is the channel's L1-importance rank among the group's ``n`` and ``r`` the
group's prune ratio: the ``r n`` least important channels are (softly) off, and
``d gate / d r`` is defined. Gates
multiply the *outputs* of the modules the group emits, written into their parameters
(BatchNorm weight and bias, or the conv / linear weight and bias), so the model runs through
``torch.func.functional_call`` unchanged. Bits: a layer's weight is the mixture
``p8 * Q8(w) + (1 - p8) * Q4(w)`` of straight-through fake quantizers.
"""

from __future__ import annotations

from typing import Callable

import torch

BIT_CHOICES = (4, 8)


def channel_quantiles(params: dict[str, torch.Tensor], groups) -> list[torch.Tensor]:
    """Per group, each channel's L1-norm rank (0 = least important) as a float tensor."""
    out = []
    for g in groups:
        weight = params[f"{g.root}.weight"].detach()
        norms = weight.abs().reshape(weight.shape[0], -1).sum(1)
        out.append(norms.argsort().argsort().to(weight.dtype))
    return out


def _scale_along(t: torch.Tensor, gate: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * t.dim()
    shape[dim] = gate.numel()
    return t * gate.view(shape)


def gate_params(params: dict[str, torch.Tensor], groups, ratios: torch.Tensor, quantiles: list[torch.Tensor],
                sharpness: float = 0.2) -> dict[str, torch.Tensor]:
    """``params`` with every group's output channels gated at prune ratio ``ratios[g]``:
    ``gate_c = sigmoid((rank_c + 1/2 - ratio * channels) / sharpness)`` (sharpness in
    channels), so the ``ratio * channels`` least important channels are off."""
    out = dict(params)
    for g, ratio, ranks in zip(groups, ratios, quantiles):
        gate = torch.sigmoid((ranks + 0.5 - ratio * ranks.numel()) / sharpness)
        for module, _ in g.gated:
            for suffix in ("weight", "bias"):
                key = f"{module}.{suffix}"
                if key in out and out[key] is not None:
                    out[key] = _scale_along(out[key], gate, 0)
    return out


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization with a straight-through gradient."""
    qmax = 2 ** (bits - 1) - 1
    flat = weight.reshape(weight.shape[0], -1)
    step = (flat.detach().abs().amax(1).clamp_min(1e-8) / qmax).view([-1] + [1] * (weight.dim() - 1))
    rounded = torch.clamp(torch.round(weight / step), -qmax, qmax) * step
    return weight + (rounded - weight).detach()


def quantize_params(params: dict[str, torch.Tensor], layers: list[str], p8: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's weight as the ``p8``-weighted mixture of its 8- and 4-bit versions."""
    out = dict(params)
    for name, p in zip(layers, p8):
        key = f"{name}.weight"
        w = out[key]
        out[key] = p * quantize_weight(w, 8) + (1 - p) * quantize_weight(w, 4)
    return out


def expected_bits(p8: torch.Tensor, layer_params: torch.Tensor) -> torch.Tensor:
    share = layer_params / layer_params.sum()
    return (share * (BIT_CHOICES[0] + (BIT_CHOICES[1] - BIT_CHOICES[0]) * p8)).sum()


def project_ratios(preferences: torch.Tensor, macs_fraction: Callable[[torch.Tensor], torch.Tensor], target: float,
                   max_ratio: float = 0.9, iters: int = 50) -> torch.Tensor:
    """Per-group prune ratios ``max_ratio * sigmoid(z + b)`` with the shift ``b`` bisected so
    that ``macs_fraction(ratios) == target``. Gradients to the preferences ``z`` follow the
    implicit function (one Newton step from the bisected ``b``, slope held constant).
    Where the target cannot be met every ratio saturates at ``max_ratio``."""
    if preferences.numel() == 0:
        return preferences
    z = preferences.detach()

    def frac(b: torch.Tensor, prefs: torch.Tensor = z) -> torch.Tensor:
        return macs_fraction(max_ratio * torch.sigmoid(prefs + b))

    lo, hi = torch.tensor(-30.0, device=z.device), torch.tensor(30.0, device=z.device)
    with torch.no_grad():
        for _ in range(iters):
            mid = (lo + hi) / 2
            if frac(mid) > target:
                lo = mid
            else:
                hi = mid
        b0 = (lo + hi) / 2
        eps = 1e-3
        slope = (frac(b0 + eps) - frac(b0 - eps)) / (2 * eps)
    if slope.abs() < 1e-8:
        return max_ratio * torch.sigmoid(preferences + b0)
    b = b0 - (frac(b0, preferences) - target) / slope
    return max_ratio * torch.sigmoid(preferences + b)
