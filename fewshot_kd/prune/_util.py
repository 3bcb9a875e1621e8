"""Small helpers shared by the pruning modules: calling a model, counting, naming."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

import torch
import torch.nn as nn

from fewshot_kd.errors import UnknownNameError
from fewshot_kd.measure.size import count_params  # noqa: F401  (re-exported for the pruning modules)
from fewshot_kd.model_io import call_model, logits_of  # noqa: F401  (re-exported for the pruning modules)

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def torch_pruning():
    """The ``torch_pruning`` module, or an ImportError that says how to install it."""
    try:
        import torch_pruning as tp
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "structured pruning needs torch-pruning: pip install 'fewshot_kd[prune]' "
            "(or pip install torch-pruning)"
        ) from error
    return tp


def default_loss(output: Any, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between the model's logits and integer labels."""
    return nn.functional.cross_entropy(logits_of(output), target)


def resolve_modules(model: nn.Module, items: Iterable[str | nn.Module], what: str) -> list[nn.Module]:
    """Modules named or given in ``items``; an unknown name raises :class:`UnknownNameError`."""
    by_name = dict(model.named_modules())
    owned = {id(m) for m in by_name.values()}
    modules = []
    for item in items:
        if isinstance(item, str):
            if item not in by_name:
                raise UnknownNameError(
                    f"{what}: the model has no submodule named {item!r}; names look like "
                    f"{', '.join(repr(n) for n in list(by_name)[1:6])} ..."
                )
            modules.append(by_name[item])
        elif isinstance(item, nn.Module):
            if id(item) not in owned:
                raise ValueError(f"{what}: {type(item).__name__} module is not part of the model")
            modules.append(item)
        else:
            raise TypeError(f"{what}: expected module names or modules, got {type(item).__name__}")
    return modules


def as_batches(data: Any) -> list[tuple[Any, torch.Tensor]]:
    """A list of ``(inputs, labels)`` batches from one pair or an iterable of pairs."""
    if data is None:
        return []
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], torch.Tensor) and data[1].dim() == 1:
        return [data]
    batches = list(data)
    for batch in batches:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("data must be (inputs, labels) batches, e.g. [(x, y), ...]")
    return [tuple(batch) for batch in batches]


@torch.no_grad()
def probe(model: nn.Module, inputs: Any, run: Callable[[nn.Module, Any], None]) -> None:
    """``run(model, inputs)`` in eval mode without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        run(model, inputs)
    finally:
        model.train(was_training)
