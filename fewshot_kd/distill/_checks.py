"""Shared input checks for the distillation losses: finiteness, shapes and layer weights."""

from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

import torch

from fewshot_kd.errors import NonFiniteLossError

LayerWeights = Union[Sequence[float], Mapping[Union[int, str], float], None]


def require_finite(what: str, tensor: torch.Tensor) -> None:
    """Raise ``NonFiniteLossError`` when ``tensor`` holds NaN or inf."""
    if not torch.is_floating_point(tensor):
        return
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteLossError(
            f"{what} contains NaN or inf values; check the model's outputs (learning rate too high, "
            "bad input scaling or a diverged teacher) before computing the loss"
        )


def require_tensor(what: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}")
    return value


def require_same_count(student: Sequence, teacher: Sequence, what: str = "feature") -> int:
    """The number of student and teacher layers must agree and be positive."""
    if isinstance(student, torch.Tensor) or isinstance(teacher, torch.Tensor):
        raise TypeError(f"pass the {what}s as a list of tensors (one per layer), not a single tensor")
    if len(student) != len(teacher):
        raise ValueError(
            f"got {len(student)} student {what}s but {len(teacher)} teacher {what}s; "
            "pass one matched (student, teacher) pair per layer"
        )
    if len(student) == 0:
        raise ValueError(f"no {what}s given: pass at least one layer")
    return len(student)


def resolve_layer_weights(
    weights: LayerWeights, count: int, names: Sequence[str] | None = None, what: str = "layer"
) -> list[float]:
    """Per-layer weights as a list of ``count`` non-negative floats.

    ``None`` gives all ones. A sequence must hold exactly ``count`` numbers. A mapping's keys
    are layer indices (``0..count-1``) or, when ``names`` are given, layer names; layers it
    leaves out keep weight 1.
    """
    if weights is None:
        return [1.0] * count
    if isinstance(weights, Mapping):
        out = [1.0] * count
        for key, value in weights.items():
            index = _weight_index(key, count, names)
            out[index] = _check_weight(value, key)
        return out
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().flatten().tolist()
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"layer weights must be a sequence or a dict, got {type(weights).__name__}")
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} {what} weights for {count} {what}s; give one weight per {what}")
    return [_check_weight(value, i) for i, value in enumerate(weights)]


def _weight_index(key: int | str, count: int, names: Sequence[str] | None) -> int:
    if isinstance(key, str):
        if names is None:
            raise KeyError(f"layer weight key {key!r} is a name, but no layer names were given; use layer indices")
        if key not in names:
            raise KeyError(f"layer weight key {key!r} is not one of the layers {list(names)}")
        return list(names).index(key)
    if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < count:
        raise KeyError(f"layer weight key {key!r} is not a layer index in 0..{count - 1}")
    return key


def _check_weight(value: object, key: object) -> float:
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"layer weight {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"layer weight {key!r} is {weight}; weights must be finite and non-negative")
    return weight


def weighted_layer_mean(per_layer: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``sum_i w_i * loss_i / n_layers``: the plain mean when every weight is 1, and a layer
    with weight 0 contributes nothing."""
    total = per_layer[0] * weights[0]
    for loss, weight in zip(per_layer[1:], weights[1:]):
        total = total + loss * weight
    return total / len(per_layer)


def check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    return temperature


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (share of the soft-target term), got {alpha}")
    return alpha
