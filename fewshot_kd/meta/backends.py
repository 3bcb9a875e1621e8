"""The meta-training inner loop by name (``MetaTrainConfig.backend``).

An entry is an episode's meta-loss ``(policy, episode, InnerConfig) -> (loss, metrics)``.
The plain SGD unrolls (``func``, ``higher``, ``learn2learn``) are :mod:`fewshot_kd.meta.inner`'s.
"""

from __future__ import annotations

from typing import Callable

from fewshot_kd.meta.objective import episode_loss
from fewshot_kd.registry import Registry

INNER_BACKENDS: Registry[Callable[..., tuple]] = Registry("inner-loop backend")
INNER_BACKENDS.register("func", "adapt()'s Adam distillation loop run through torch.func.functional_call")(episode_loss)
