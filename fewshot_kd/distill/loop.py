"""The distillation loop adapt() runs and the meta-learner differentiates through: Adam
(pure functions, cosine schedule, weight decay) on random batches of a view bank, BatchNorm
in train mode, loss :func:`~fewshot_kd.distill.objective.distillation_objective`.

One pure step, ``(params, buffers, batch, hyperparameters) -> params``, is shared. adapt()
runs every step detached (no second-order graph). The meta-learner runs the same steps and
keeps two kinds of meta-gradient: **first order over the whole horizon** for the learning
rates (the weights end as ``w_detached + sum_g (lr_g - lr_g.detach()) * D_g``, where ``D_g``
is the accumulated step of group ``g``: the value is unchanged and ``d w / d lr_g = D_g``),
and **second order through the last ``differentiable_steps``** steps, through which the
loss's hyperparameters (temperature, alpha, feature and pair weights) and the compression
applied to the weights receive their gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from fewshot_kd.distill.adam import (AdamState, adam_direction, adam_direction_foreach, can_fuse, cosine_factor,
                                     fused_adam_step_)
from fewshot_kd.distill.hooks import FeatureCapture
from fewshot_kd.distill.objective import ObjectiveWeights, distillation_objective

Params = dict[str, torch.Tensor]
Compress = Callable[[Params], Params]


class Distillee(nn.Module):
    """The student and the hint adaptors as one module, so one parameter dict holds both
    (``student.*`` and ``adaptors.*``) and ``functional_call`` runs them on any weights."""

    def __init__(self, student: nn.Module, adaptors: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.student = student
        self.adaptors = nn.ModuleList(adaptors)

    def forward(self, inputs):
        return self.student(inputs)


def distilled_parameters(model: nn.Module) -> Params:
    """The parameters the loop trains: every trainable one except embedding tables
    (``nn.Embedding``: a text student's token and position vectors). A few shots touch a
    handful of tokens, and Adam's L2 weight decay would move every unseen token's vector on
    every step."""
    frozen = {f"{n}.weight" if n else "weight" for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    return {n: p for n, p in model.named_parameters() if p.requires_grad and n not in frozen}


@dataclass(frozen=True)
class LoopSpec:
    """``steps`` Adam steps at ``lr`` (cosine to 0) on batches of ``batch_size`` rows."""

    steps: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


def batch_schedule(rows: int, steps: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """The random row indices of every step (with replacement, as adapt() has always drawn)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(rows, (min(batch_size, rows),), generator=generator) for _ in range(steps)]


def batch_loss(model: Distillee, params: Params, batch, weights: ObjectiveWeights, layers: Sequence[str],
               compress: Compress | None = None, classes: Sequence[int] | None = None, buffers: Params | None = None):
    """``(loss, parts, logits)`` of the objective on one bank batch at weights ``params``."""
    inputs, labels, teacher_logits, teacher_features = batch
    weights_in = compress(params) if compress is not None else params
    state = {**(buffers or {}), **weights_in}
    with FeatureCapture(model.student, list(layers)) as capture:
        logits = functional_call(model, state, (inputs,))
        features = [capture.outputs[n] for n in layers]
    if classes is not None:
        logits = logits[:, list(classes)]
    adaptors = [_bound(model, state, i) for i in range(len(features))]
    loss, parts = distillation_objective(logits, teacher_logits, labels, weights, features, teacher_features, adaptors)
    return loss, parts, logits


def _bound(model: Distillee, state: Params, index: int):
    prefix = f"adaptors.{index}."
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    adaptor = model.adaptors[index]
    return lambda x: functional_call(adaptor, own, (x,))


def run_distillation(model: Distillee, params: Params, bank, weights: ObjectiveWeights, layers: Sequence[str],
                     spec: LoopSpec, lr_scales: dict[str, float | torch.Tensor] | None = None, *, seed: int = 0,
                     buffers: Params | None = None, differentiable_steps: int = 0, compress: Compress | None = None,
                     classes: Sequence[int] | None = None, stop: torch.Tensor | None = None,
                     on_step: Callable[[int, torch.Tensor, dict, torch.Tensor, torch.Tensor], None] | None = None) -> Params:
    """``spec.steps`` steps from ``params`` over ``bank`` (a ``ViewBank``); returns the final
    weights. ``lr_scales[name]`` multiplies ``spec.lr`` for that parameter (a float, or a
    tensor that receives first-order meta-gradient); parameters not in ``params`` stay fixed.
    ``stop`` (a tensor in (0, 1]): the cosine schedule ends after ``stop * spec.steps`` steps
    and the loop stops there; a ``stop`` that requires grad receives a first-order
    meta-gradient through the schedule (the learned number of steps, see :func:`stop_schedule`).
    ``on_step(step, loss, parts, logits, teacher_logits)`` sees every step (check for NaN
    there). ``model`` should be in train mode."""
    lr_scales = lr_scales or {}
    names = list(params)
    current = {n: params[n].detach() for n in names}
    start_graph = {n: params[n] for n in names}
    state = AdamState()
    carried: dict[str, torch.Tensor] = {}  # sum over detached steps of -factor * direction, per name
    carried_stop: dict[str, torch.Tensor] = {}  # sum over detached steps of -lr * scale * dfactor/dstop * direction
    stop = stop if stop is None or isinstance(stop, torch.Tensor) else torch.tensor(float(stop))
    steps = spec.steps if stop is None else stopped_steps(float(stop.detach()), spec.steps)
    first_diff = max(steps - differentiable_steps, 0)
    schedule = batch_schedule(len(bank), spec.steps, spec.batch_size, seed)[:steps]
    track = any(isinstance(v, torch.Tensor) and v.requires_grad for v in lr_scales.values())
    track_stop = isinstance(stop, torch.Tensor) and stop.requires_grad
    fused, owned = can_fuse(current), False
    for step, index in enumerate(schedule):
        factor, slope = (cosine_factor(step, spec.steps), 0.0) if stop is None else stop_schedule(step, spec.steps, stop)
        in_graph = factor if stop is None else factor.to(stop.dtype)  # the weights' precision
        differentiable = step >= first_diff
        if step == first_diff:
            current = _attach(start_graph, current, carried, lr_scales, spec.lr, stop, carried_stop)
        trained = current if differentiable else {n: t.requires_grad_() for n, t in current.items()}
        batch = bank.batch(index)
        loss, parts, logits = batch_loss(model, trained, batch, weights, layers, compress, classes, buffers)
        if on_step is not None:
            on_step(step, loss, parts, logits, batch[2])
        grads = torch.autograd.grad(loss, [trained[n] for n in names], create_graph=differentiable, allow_unused=True)
        grads = dict(zip(names, grads))
        if not differentiable:
            with torch.no_grad():  # adapt()'s path: the update builds no graph
                value, slope = float(factor), float(slope)
                if fused and not (track or track_stop):  # PyTorch's fused Adam kernel, in place on owned copies
                    if not owned:
                        current, owned = {n: t.detach().clone() for n, t in trained.items()}, True
                    lrs = {n: spec.lr * float(lr_scales.get(n, 1.0)) * value for n in names}
                    state = fused_adam_step_(current, grads, state, lrs, spec.weight_decay, spec.betas, spec.eps)
                    continue
                directions, state = adam_direction_foreach(trained, grads, state, spec.weight_decay, spec.betas, spec.eps)
                for n, d in directions.items():
                    scale = float(lr_scales.get(n, 1.0))
                    current[n] = trained[n].detach() - spec.lr * scale * value * d
                    if track:
                        carried[n] = carried.get(n, 0.0) - value * d
                    if track_stop:
                        carried_stop[n] = carried_stop.get(n, 0.0) - spec.lr * scale * slope * d
        else:
            directions, state = adam_direction(trained, grads, state, spec.weight_decay, spec.betas, spec.eps)
            current = {n: trained[n] - spec.lr * lr_scales.get(n, 1.0) * in_graph * directions[n]
                       if n in directions else trained[n] for n in names}
    if first_diff >= steps:
        current = _attach(start_graph, current, carried, lr_scales, spec.lr, stop, carried_stop)
    return current


def stopped_steps(stop: float, steps: int) -> int:
    """The steps a loop of ``steps`` runs when its schedule ends at ``stop * steps``."""
    return max(1, min(steps, math.ceil(stop * steps - 1e-9)))


def stop_schedule(step: int, steps: int, stop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(factor, d factor / d stop)`` at ``step``, in float64: a cosine from 1 to 0 over
    ``stop * steps`` steps (0 after). ``factor`` carries ``stop``'s graph; the slope is detached."""
    wide = stop.double()  # in float64, a stop of 1 reproduces cosine_factor exactly
    u = step / (wide * steps)
    inside = (u < 1).to(u.dtype)
    factor = 0.5 * (1.0 + torch.cos(math.pi * torch.clamp(u, max=1.0))) * inside
    slope = (0.5 * math.pi * torch.sin(math.pi * torch.clamp(u, max=1.0)) * u / wide * inside).detach()
    return factor, slope


def _attach(start: Params, current: Params, carried: dict, lr_scales: dict, lr: float,
            stop: torch.Tensor | None = None, carried_stop: dict | None = None) -> Params:
    """Reconnect detached weights to the graph: the value stays ``current``; the gradient
    reaches the starting weights (identity, first order), every tensor learning-rate
    scale (``d w / d scale = lr * carried``) and a tensor ``stop`` (``d w / d stop = carried_stop``)."""
    out = {}
    for n, value in current.items():
        w = value.detach() + (start[n] - start[n].detach())
        scale = lr_scales.get(n)
        if isinstance(scale, torch.Tensor) and scale.requires_grad and n in carried:
            w = w + lr * (scale - scale.detach()) * carried[n]
        if isinstance(stop, torch.Tensor) and stop.requires_grad and carried_stop and n in carried_stop:
            w = w + (stop - stop.detach()) * carried_stop[n]
        out[n] = w
    return out


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, inputs, state: Params | None = None, batch_size: int = 128) -> int:
    """Re-estimate every BatchNorm's running statistics on ``inputs`` (cumulative average) and
    leave ``model`` in eval mode; returns how many BatchNorm layers were reset. The statistics
    written are the module's own, or those in ``state`` (a ``functional_call`` dict of weights
    and buffers), which then run the forward passes."""
    norms = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not norms:
        return 0
    if state is None:
        state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for name in norms:
        for leaf, reset in (("running_mean", torch.Tensor.zero_), ("running_var", lambda t: t.fill_(1.0)),
                            ("num_batches_tracked", torch.Tensor.zero_)):
            if f"{name}.{leaf}" in state:
                reset(state[f"{name}.{leaf}"])
    momenta = {n: m.momentum for n, m in norms.items()}
    try:
        for m in norms.values():
            m.momentum = None
        model.train()
        for start in range(0, len(inputs), batch_size):
            functional_call(model, state, (inputs[start:start + batch_size],))
    finally:
        for n, m in norms.items():
            m.momentum = momenta[n]
    model.eval()
    return len(norms)
