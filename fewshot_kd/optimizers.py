"""Optimisers by name (``TrainConfig.optimizer``): ``(params, lr, weight_decay, momentum) -> Optimizer``."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from fewshot_kd.registry import Registry

OptimizerFactory = Callable[..., torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


@OPTIMIZERS.register("adam", "Adam with L2 weight decay added to the gradient")
def adam(params: Iterable, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw", "AdamW: Adam with decoupled weight decay")
def adamw(params: Iterable, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd", "SGD with Nesterov momentum")
def sgd(params: Iterable, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
