"""Fold eval-mode BatchNorm into the per-channel quantized convolution before it.

With one weight step per output channel, folding ``y = g (conv(x) - mean) / sqrt(var + eps) + b``
into the convolution leaves the integer codes unchanged and only scales each channel's step
by ``m = g / sqrt(var + eps)``; the BatchNorm becomes a per-channel bias
``b - mean * m (+ conv bias * m)``. So the export drops four BatchNorm tensors per layer at
no cost in accuracy. Pairs are found by tracing the model (torch.fx): a BatchNorm2d whose
only input is a Conv2d output that nothing else reads. Channels with ``m <= 0`` (rare) keep
their BatchNorm unfolded.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from fewshot_kd.quant.modules import QuantConv2d, QuantLinear

_FOLDED_BN = ("weight", "running_mean", "running_var", "num_batches_tracked")


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return isinstance(module, (QuantConv2d, QuantLinear)) or super().is_leaf_module(module, name)


def conv_bn_pairs(model: nn.Module) -> dict[str, str]:
    """``{batchnorm name: conv name}`` for every foldable pair; empty when the model has no
    BatchNorm2d or cannot be traced."""
    modules = dict(model.named_modules())
    if not any(isinstance(m, nn.BatchNorm2d) for m in modules.values()):
        return {}
    try:
        graph = _LeafTracer().trace(model)
    except Exception:  # models with data-dependent control flow: export them unfolded
        return {}
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if (isinstance(source, fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), nn.Conv2d) and len(source.users) == 1
                and calls[source.target] == 1 and calls[node.target] == 1):
            pairs[node.target] = source.target
    return pairs


def bn_multiplier(bn: nn.BatchNorm2d) -> torch.Tensor:
    """``g / sqrt(var + eps)`` per channel (``g = 1`` without affine parameters)."""
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return gamma / torch.sqrt(bn.running_var + bn.eps)


def folded_bias(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """The per-channel bias left after folding ``bn`` into ``conv``."""
    mult = bn_multiplier(bn)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(mult)
    bias = beta - bn.running_mean * mult
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * mult
    return bias


def fold_into_codes(codes: torch.Tensor, step: torch.Tensor, bn: nn.BatchNorm2d,
                    qmax: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The codes and per-channel steps of the convolution with ``bn`` folded in: steps
    scaled by ``|m|``, codes negated where ``m < 0``. ``None`` when that is not exact (a zero
    or non-finite multiplier, or a negated code that would pass ``qmax``)."""
    if bn.running_mean is None:
        return None
    mult = bn_multiplier(bn).to(step)
    if not (torch.isfinite(mult).all() and (mult != 0).all()):
        return None
    negative = (mult < 0).reshape([-1] + [1] * (codes.dim() - 1))
    if bool((negative & (codes < -qmax)).any()):
        return None
    return torch.where(negative, -codes, codes), step * mult.abs()


def folded_bn_keys(bn_name: str, conv_name: str, conv: nn.Conv2d) -> set[str]:
    """State-dict keys a folded pair no longer stores (its bias stays, as ``<bn>.bias``)."""
    keys = {f"{bn_name}.{k}" for k in _FOLDED_BN}
    if conv.bias is not None:
        keys.add(f"{conv_name}.bias")
    return keys


def identity_bn_state(bn_name: str, bias: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """The BatchNorm state that turns the layer into ``x + bias`` (how a folded file loads
    into a skeleton that still has the BatchNorm)."""
    ones = torch.ones_like(bias)
    return {f"{bn_name}.weight": ones, f"{bn_name}.bias": bias, f"{bn_name}.running_mean": torch.zeros_like(bias),
            f"{bn_name}.running_var": ones - eps, f"{bn_name}.num_batches_tracked": torch.tensor(0)}
