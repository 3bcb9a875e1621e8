"""Channel importance criteria: L1/L2 magnitude, BatchNorm scale, first-order Taylor.

Each name in :data:`IMPORTANCES` is an :class:`Importance` that says what it can do: give
the DepGraph pruner a Torch-Pruning estimator scoring a coupled channel group, score
transformer heads / FFN neurons from weight slices, and whether it needs gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn

from fewshot_kd.errors import NonFiniteLossError
from fewshot_kd.prune._util import LossFn, as_batches, call_model, default_loss, torch_pruning
from fewshot_kd.registry import Registry

UnitScore = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@runtime_checkable
class Importance(Protocol):
    """What a pruning criterion can do; code asks these instead of comparing names."""

    needs_gradients: bool
    """Scores use ``dL/dw``: accumulate gradients on the labelled shots first."""
    scores_slices: bool
    """It can score transformer heads / FFN neurons from weight slices (:meth:`slice_scores`)."""

    def group_estimator(self) -> Any:
        """A fresh Torch-Pruning estimator that scores a coupled channel group."""

    def slice_scores(self, weights: Sequence[torch.Tensor],
                     grads: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """One score per unit from per-unit slices ``[units, ...]`` of several tensors."""


@dataclass(frozen=True)
class Criterion:
    """An :class:`Importance` built from a Torch-Pruning estimator and a per-unit score of
    one flattened weight slice ``[units, n]`` (and its gradient); ``unit_score=None``
    when the criterion cannot score weight slices."""

    name: str
    help: str
    estimator: Callable[[], Any]
    unit_score: UnitScore | None
    needs_gradients: bool = False

    @property
    def scores_slices(self) -> bool:
        return self.unit_score is not None

    def group_estimator(self) -> Any:
        return self.estimator()

    def slice_scores(self, weights: Sequence[torch.Tensor],
                     grads: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Sum over tensors of each tensor's unit scores divided by their mean, so that no
        tensor dominates (as Torch-Pruning does)."""
        if self.unit_score is None:
            raise ValueError(f"importance {self.name!r} ({self.help}) cannot score transformer heads or "
                             f"FFN neurons; use one of {slice_importance_names()}")
        total = None
        for i, w in enumerate(weights):
            g = None
            if self.needs_gradients:
                g = None if grads is None else grads[i]
                if g is None:
                    raise ValueError(f"the {self.name} importance needs gradients: pass data=[(inputs, labels), ...]")
                g = g.detach().flatten(1).float()
            s = self.unit_score(w.detach().flatten(1).float(), g)
            mean = s.mean()
            s = s / mean if mean > 0 else s
            total = s if total is None else total + s
        if total is None:
            raise ValueError("score_slices needs at least one weight tensor")
        return total


IMPORTANCES: Registry[Importance] = Registry("importance")


def _add(criterion: Criterion) -> None:
    IMPORTANCES.register(criterion.name, criterion.help)(criterion)


_add(Criterion("l1", "sum of |w| over every weight slice of a channel group",
               lambda: torch_pruning().importance.GroupMagnitudeImportance(p=1),
               lambda w, g: w.abs().sum(1)))
_add(Criterion("l2", "sum of w^2 over every weight slice of a channel group",
               lambda: torch_pruning().importance.GroupMagnitudeImportance(p=2),
               lambda w, g: w.pow(2).sum(1)))
_add(Criterion("bn_scale", "|gamma| of the group's BatchNorm (network slimming)",
               lambda: torch_pruning().importance.BNScaleImportance(), None))
_add(Criterion("taylor", "first-order Taylor |w * dL/dw| on the few labelled shots",
               lambda: torch_pruning().importance.GroupTaylorImportance(),
               lambda w, g: (w * g).abs().sum(1), needs_gradients=True))


def importance_names() -> list[str]:
    return IMPORTANCES.names()


def slice_importance_names() -> list[str]:
    """The criteria that can score transformer heads and FFN neurons."""
    return [name for name in IMPORTANCES.names() if IMPORTANCES.get(name).scores_slices]


def resolve_importance(importance: str | Importance) -> Importance:
    """The registered criterion called ``importance`` (:class:`UnknownNameError` if there is
    none), or ``importance`` itself if it already is an :class:`Importance`."""
    if isinstance(importance, str):
        return IMPORTANCES.get(importance)
    if isinstance(importance, Importance):
        return importance
    raise TypeError(f"importance must be one of {importance_names()} or an Importance, got {importance!r}")


def make_importance(importance: str | Any) -> Any:
    """A Torch-Pruning importance estimator from a name or an :class:`Importance`, or
    ``importance`` itself if it is already an estimator (any callable taking a group)."""
    if isinstance(importance, (str, Importance)):
        return resolve_importance(importance).group_estimator()
    if callable(importance):
        return importance
    raise TypeError(f"importance must be one of {importance_names()} or a callable, got {importance!r}")


def needs_gradients(importance: str | Any) -> bool:
    """True for gradient-based criteria (a name, an :class:`Importance` or a Torch-Pruning
    estimator)."""
    if isinstance(importance, (str, Importance)):
        return resolve_importance(importance).needs_gradients
    return isinstance(importance, torch_pruning().importance.GroupTaylorImportance)


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
    importance: str | Importance,
    weights: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """One score per unit from per-unit weight slices ``[units, ...]`` of several tensors:
    ``l1`` sums ``|w|``, ``l2`` sums ``w^2``, ``taylor`` sums ``|w * grad|``. Each tensor's
    contribution is divided by its mean so that no tensor dominates (as Torch-Pruning does)."""
    return resolve_importance(importance).slice_scores(weights, grads)
