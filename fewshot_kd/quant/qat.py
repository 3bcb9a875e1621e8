"""Quantization-aware training (QAT): ordinary training through the fake-quant layers.

Any optimizer loop works once :func:`quantize_model_` (and ideally :func:`calibrate_`) has
run: gradients reach the float weights through the straight-through estimator and the
steps through LSQ. :func:`qat_param_groups` keeps the steps out of weight decay and lets
them use their own learning rate; :func:`qat_step` is one plain training step.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import NonFiniteLossError


def step_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The learnable quantizer steps (LSQ) of ``model``."""
    return [p for n, p in model.named_parameters() if n.endswith("_quant.step")]


def qat_param_groups(model: nn.Module, lr: float, step_lr: float | None = None, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: model weights (with ``weight_decay``) and quantizer steps
    (no weight decay, learning rate ``step_lr`` or ``lr``)."""
    steps = {id(p) for p in step_parameters(model)}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in steps]
    groups = [{"params": weights, "lr": lr, "weight_decay": weight_decay}]
    step_params = [p for p in step_parameters(model) if p.requires_grad]
    if step_params:
        groups.append({"params": step_params, "lr": lr if step_lr is None else step_lr, "weight_decay": 0.0})
    return groups


def qat_step(
    model: nn.Module,
    inputs: Any,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> float:
    """One training step through the fake quantizers; returns the loss. ``targets`` may be
    labels or teacher logits, whatever ``loss_fn`` expects. Steps are kept positive."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(inputs), targets)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"QAT loss is {loss.item()}; lower the learning rate (especially the step lr)")
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for step in step_parameters(model):
            step.clamp_(min=1e-8)
    return float(loss.detach())
