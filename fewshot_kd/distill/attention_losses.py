"""How one layer pair's attention probabilities are compared, by name (``mse``, ``kl``).

Each entry takes head-matched maps ``student``/``teacher`` ``[N, heads, L, L]`` and the
real-token masks ``queries`` ``[N, 1, L, 1]`` and ``keys`` ``[N, 1, 1, L]`` (1 = real token).
"""

from __future__ import annotations

from typing import Callable

import torch

from fewshot_kd.registry import Registry

AttentionLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ATTENTION_LOSSES: Registry[AttentionLoss] = Registry("attention loss mode")
_EPS = 1e-12


@ATTENTION_LOSSES.register("mse", "mean squared difference over heads and (real query, real key) entries")
def attention_mse(student: torch.Tensor, teacher: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    valid = queries * keys
    return ((student - teacher).pow(2) * valid).sum() / (valid.sum() * student.shape[1])


@ATTENTION_LOSSES.register("kl", "KL(teacher row || student row) over real keys, mean over heads and real queries (MiniLM)")
def attention_kl(student: torch.Tensor, teacher: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    per_entry = torch.xlogy(teacher, teacher) - teacher * student.clamp_min(_EPS).log()
    per_row = (per_entry * keys).sum(dim=-1, keepdim=True)
    return (per_row * queries).sum() / (queries.sum() * student.shape[1])
