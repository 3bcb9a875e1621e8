"""Multiply-accumulate count of one forward pass, from torch's FLOP counter.

The one MAC counter of fewshot_kd: reports, budgets and the pruner's search all use it."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from fewshot_kd.model_io import call_model, eval_mode, model_device, to_device


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """MACs of ``model`` on ``example_inputs`` (the whole batch given; pass one example for
    a per-example count).

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` as FLOPs / 2: matrix
    products, convolutions and attention (biases, norms and activations are not counted),
    plus what the counter does not know: torch's quantized linear/conv kernels and its CPU
    attention kernel (:func:`_extra_flop_formulas`). Inputs follow :func:`call_model`: a tensor,
    a ``list[str]``, a tuple of positional arguments or a dict of keyword arguments. The
    model runs once in eval mode without gradients, on its own device (tensors in the
    inputs are moved there); its training flags are restored.
    """
    inputs = to_device(example_inputs, model_device(model))
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with eval_mode(model), torch.no_grad(), counter:
        call_model(model, inputs)
    return int(counter.get_total_flops()) // 2


def _linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(out_shape) * int(x_shape[-1])


def _conv_flops(x_shape, packed, *args, out_shape=None, **kwargs) -> int:
    weight = packed.weight()  # [out, in / groups, *kernel]
    return 2 * math.prod(out_shape) * math.prod(weight.shape[1:])


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _extra_flop_formulas() -> dict:
    """FLOP formulas missing from ``FlopCounterMode``: quantized kernels and CPU attention."""
    mapping = _quantized_flops()
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = _sdpa_cpu_flops
    return mapping


def _quantized_flops() -> dict:
    """FLOP formulas for torch's quantized kernels, which the counter does not know."""
    ops = getattr(torch.ops, "quantized", None)
    mapping = {}
    for name, formula in (
        ("linear", _linear_flops),
        ("linear_relu", _linear_flops),
        ("linear_dynamic", _linear_flops),
        ("linear_relu_dynamic", _linear_flops),
        ("conv1d", _conv_flops),
        ("conv2d", _conv_flops),
        ("conv3d", _conv_flops),
        ("conv2d_relu", _conv_flops),
        ("conv1d_relu", _conv_flops),
        ("conv3d_relu", _conv_flops),
    ):
        try:
            mapping[getattr(ops, name)] = formula
        except (AttributeError, RuntimeError):
            continue
    return mapping
