"""Adam as pure functions over ``{name: tensor}`` dicts, with a cosine learning-rate schedule.

Equal to ``torch.optim.Adam(weight_decay=wd)`` stepped under
``torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)`` (tests/test_distill_loop.py),
but the update is an ordinary tensor expression: run on tensors that carry a graph, the
weights after ``n`` steps are differentiable in the learning rates, the loss's
hyperparameters and the starting weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

Params = dict[str, torch.Tensor]


@dataclass
class AdamState:
    """First and second moments per parameter name, and the number of steps taken."""

    exp_avg: Params = field(default_factory=dict)
    exp_avg_sq: Params = field(default_factory=dict)
    step: int = 0


def cosine_factor(step: int, steps: int) -> float:
    """The multiplier of the base learning rate at (0-based) ``step`` of ``steps``, as
    ``CosineAnnealingLR(T_max=steps, eta_min=0)`` gives it."""
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


def adam_direction(params: Params, grads: Params, state: AdamState, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> tuple[Params, AdamState]:
    """The bias-corrected step direction ``m_hat / (sqrt(v_hat) + eps)`` per parameter (to be
    multiplied by the learning rate and subtracted) and the new state. Parameters without a
    gradient get no direction."""
    beta1, beta2 = betas
    t = state.step + 1
    correction1, correction2 = 1 - beta1**t, math.sqrt(1 - beta2**t)
    directions, new_avg, new_sq = {}, dict(state.exp_avg), dict(state.exp_avg_sq)
    for name, grad in grads.items():
        if grad is None:
            continue
        if weight_decay:
            grad = grad + weight_decay * params[name]
        avg = state.exp_avg.get(name)
        sq = state.exp_avg_sq.get(name)
        avg = (1 - beta1) * grad if avg is None else beta1 * avg + (1 - beta1) * grad
        sq = (1 - beta2) * grad * grad if sq is None else beta2 * sq + (1 - beta2) * grad * grad
        new_avg[name], new_sq[name] = avg, sq
        # the clamp keeps the square root's gradient finite where a moment is exactly 0
        directions[name] = (avg / correction1) / (sq.clamp_min(1e-30).sqrt() / correction2 + eps)
    return directions, AdamState(new_avg, new_sq, t)

