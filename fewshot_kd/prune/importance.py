"""Channel importance criteria: L1/L2 magnitude, BatchNorm scale, first-order Taylor.

The same four names drive both the DepGraph pruner (:func:`make_importance` returns a
Torch-Pruning estimator that scores a whole coupled channel group) and the transformer
pruner (:func:`score_slices` scores heads / FFN neurons from weight slices).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from fewshot_kd.errors import NonFiniteLossError
from fewshot_kd.prune._util import LossFn, as_batches, call_model, default_loss, torch_pruning
from fewshot_kd.registry import Registry

IMPORTANCES: Registry[Callable[[], Any]] = Registry("importance")


@IMPORTANCES.register("l1", "sum of |w| over every weight slice of a channel group")
def _l1():
    return torch_pruning().importance.GroupMagnitudeImportance(p=1)


@IMPORTANCES.register("l2", "sum of w^2 over every weight slice of a channel group")
def _l2():
    return torch_pruning().importance.GroupMagnitudeImportance(p=2)


@IMPORTANCES.register("bn_scale", "|gamma| of the group's BatchNorm (network slimming)")
def _bn_scale():
    return torch_pruning().importance.BNScaleImportance()


@IMPORTANCES.register("taylor", "first-order Taylor |w * dL/dw| on the few labelled shots")
def _taylor():
    return torch_pruning().importance.GroupTaylorImportance()


def importance_names() -> list[str]:
    return IMPORTANCES.names()


def make_importance(importance: str | Any) -> Any:
    """A Torch-Pruning importance estimator from a name, or ``importance`` itself if it is
    already one (any callable taking a group)."""
    if isinstance(importance, str):
        return IMPORTANCES.get(importance)()
    if callable(importance):
        return importance
    raise TypeError(f"importance must be one of {importance_names()} or a callable, got {importance!r}")


def needs_gradients(importance: str | Any) -> bool:
    """True for gradient-based criteria (Taylor)."""
    if isinstance(importance, str):
        IMPORTANCES.get(importance)
        return importance == "taylor"
    tp = torch_pruning()
    return isinstance(importance, tp.importance.GroupTaylorImportance)


def accumulate_gradients_(model: nn.Module, data: Any, loss_fn: LossFn | None = None) -> int:
    """Zero the gradients, then sum ``d loss / d w`` over the ``(inputs, labels)`` batches
    in ``data``; parameters left without a gradient get zeros. Returns the number of
    examples. The model's train/eval mode is left as it was (BatchNorm in eval mode uses
    its running statistics, so a 5-shot batch does not disturb them)."""
    batches = as_batches(data)
    if not batches:
        raise ValueError(
            "the taylor importance needs data: pass data=[(x, y), ...], a few batches of the "
            "labelled shots, so that gradients can be computed"
        )
    loss_fn = loss_fn or default_loss
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    count = 0
    try:
        with torch.enable_grad():
            for inputs, labels in batches:
                loss = loss_fn(call_model(model, inputs), labels)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"the loss for the Taylor importance is {loss.item()}; check the data")
                loss.backward()
                count += len(labels)
    finally:
        model.train(was_training)
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return count


def score_slices(
    importance: str,
    weights: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """One score per unit from per-unit weight slices ``[units, ...]`` of several tensors:
    ``l1`` sums ``|w|``, ``l2`` sums ``w^2``, ``taylor`` sums ``|w * grad|``. Each tensor's
    contribution is divided by its mean so that no tensor dominates (as Torch-Pruning does)."""
    if importance == "bn_scale":
        raise ValueError("bn_scale needs BatchNorm layers; for transformers use 'l1', 'l2' or 'taylor'")
    IMPORTANCES.get(importance)
    total = None
    for i, w in enumerate(weights):
        w = w.detach().flatten(1).float()
        if importance == "l1":
            s = w.abs().sum(1)
        elif importance == "l2":
            s = w.pow(2).sum(1)
        else:
            g = None if grads is None else grads[i]
            if g is None:
                raise ValueError("the taylor importance needs gradients: pass data=[(inputs, labels), ...]")
            s = (w * g.detach().flatten(1).float()).abs().sum(1)
        mean = s.mean()
        s = s / mean if mean > 0 else s
        total = s if total is None else total + s
    if total is None:
        raise ValueError("score_slices needs at least one weight tensor")
    return total
