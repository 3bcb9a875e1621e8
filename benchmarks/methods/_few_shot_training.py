"""Training settings shared by the few-shot baselines: a step budget, not an epoch count."""

from __future__ import annotations

import math

from fewshot_kd.training import TrainConfig


def few_shot_config(num_examples: int, augment: str, steps: int = 300, lr: float = 1e-3,
                    batch_size: int = 32, weight_decay: float = 1e-4, seed: int = 0,
                    optimizer: str = "adam") -> TrainConfig:
    """About ``steps`` optimizer steps over ``num_examples`` shots with ``augment``."""
    batch_size = min(batch_size, num_examples)
    epochs = max(1, math.ceil(steps * batch_size / num_examples))
    return TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                       optimizer=optimizer, augment=augment, seed=seed)
