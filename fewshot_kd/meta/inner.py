"""Differentiable inner loops: ``steps`` SGD steps with per-parameter learning rates
(Meta-SGD), through which meta-gradients reach the learning rates, the loss's own
hyperparameters and (second order) the starting weights.

Three backends compute the same thing and are checked against a hand-unrolled reference
(tests/test_meta_inner.py): ``"func"`` (``torch.func.grad``), ``"higher"`` (a differentiable
``torch.optim.SGD`` from ``higher.innerloop_ctx`` with ``copy_initial_weights=False``) and
``"learn2learn"`` (``clone_module`` + ``update_module``, the machinery of its MAML / MetaSGD).

``order``: ``"second"`` differentiates through every gradient; ``"first"`` treats gradients
as constants (FOMAML: meta-gradients still reach the learning rates and, through the outer
loss, everything the final weights depend on); ``"truncated"`` is second order through the
last ``truncate`` steps and first order before them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from fewshot_kd.registry import Registry

LossFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]
UNROLLS: Registry[Callable[..., dict[str, torch.Tensor]]] = Registry("SGD unroll backend")
"""How :func:`unroll` runs: ``(model, loss_fn, lrs, steps, order, truncate, params) -> params``."""
ORDERS = ("first", "second", "truncated")


def _second_order(step: int, steps: int, order: str, truncate: int) -> bool:
    if order == "second":
        return True
    if order == "first":
        return False
    return step >= steps - truncate


def _check(backend: str, order: str, steps: int) -> None:
    UNROLLS.get(backend)  # an unknown backend: UnknownNameError (a ValueError)
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")
    if steps < 1:
        raise ValueError(f"inner steps must be >= 1, got {steps}")


def unroll(model: nn.Module, loss_fn: LossFn, lrs: dict[str, torch.Tensor], steps: int, *,
           backend: str = "func", order: str = "second", truncate: int = 1,
           params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The weights after ``steps`` differentiable SGD steps on ``loss_fn(params)``, starting
    from ``params`` (default: ``model``'s own parameters). ``lrs[name]`` is a scalar tensor
    (or a tensor broadcastable to the parameter) per trained parameter; parameters without
    one stay fixed. ``loss_fn`` gets the full name -> tensor dict."""
    _check(backend, order, steps)
    start = dict(model.named_parameters()) if params is None else dict(params)
    return UNROLLS.get(backend)(model, loss_fn, lrs, steps, order, truncate, start)


@UNROLLS.register("func", "torch.func.grad on a functional call of the model")
def _unroll_func(model, loss_fn, lrs, steps, order, truncate, params):
    from torch.func import grad

    names = [n for n in params if n in lrs]
    current = dict(params)
    for step in range(steps):
        second = _second_order(step, steps, order, truncate)
        trained = {n: current[n] for n in names}
        if not second:
            trained = {n: t.detach().requires_grad_() for n, t in trained.items()}
        grads = grad(lambda p: loss_fn({**current, **p}))(trained)
        current = {**current, **{n: current[n] - lrs[n] * (grads[n] if second else grads[n].detach())
                                 for n in names}}
    return current


@UNROLLS.register("higher", "a differentiable torch.optim.SGD from higher.innerloop_ctx")
def _unroll_higher(model, loss_fn, lrs, steps, order, truncate, params):
    import higher

    own = dict(model.named_parameters())
    if any(params[n] is not own[n] for n in own if n in params):
        raise ValueError("the 'higher' backend starts from the model's own parameters; pass params=None")
    names = list(own)
    trained = [n for n in names if n in lrs]
    optimizer = torch.optim.SGD([{"params": [own[n]], "lr": 0.0} for n in trained], lr=0.0)
    override = {"lr": [lrs[n] for n in trained]}
    with higher.innerloop_ctx(model, optimizer, copy_initial_weights=False, override=override) as (fmodel, diffopt):
        for step in range(steps):
            second = _second_order(step, steps, order, truncate)
            loss = loss_fn({**params, **dict(zip(names, fmodel.fast_params))})
            callback = None if second else (lambda grads: [None if g is None else g.detach() for g in grads])
            diffopt.step(loss, grad_callback=callback)
        return {**params, **dict(zip(names, fmodel.fast_params))}


@UNROLLS.register("learn2learn", "learn2learn's clone_module + update_module (its MAML machinery)")
def _unroll_learn2learn(model, loss_fn, lrs, steps, order, truncate, params):
    from fewshot_kd.data.episodes import _learn2learn

    l2l = _learn2learn()
    clone = l2l.clone_module(model)
    names = [n for n, _ in clone.named_parameters()]
    for step in range(steps):
        second = _second_order(step, steps, order, truncate)
        current = dict(clone.named_parameters())
        loss = loss_fn({**params, **current})
        trained = [n for n in names if n in lrs]
        grads = torch.autograd.grad(loss, [current[n] for n in trained], create_graph=second, allow_unused=True)
        by_name = dict(zip(trained, grads))
        updates = [None if n not in by_name or by_name[n] is None
                   else -lrs[n] * (by_name[n] if second else by_name[n].detach()) for n in names]
        l2l.update_module(clone, updates=updates)
    return {**params, **dict(clone.named_parameters())}


BACKENDS = tuple(UNROLLS.names())
