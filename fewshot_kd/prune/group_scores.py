"""The channel scores the deployed pruner ranks by, for code that imitates its choice.

:func:`channel_scores` builds the same Torch-Pruning pruner as :func:`~fewshot_kd.prune.prune_`
and asks its importance estimator about every prunable group, so a soft relaxation of
pruning (the meta-learner's gates) switches off exactly the channels ``prune_`` removes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.prune._util import LossFn
from fewshot_kd.prune.physical import build_pruner


def channel_scores(
    model: nn.Module,
    example_inputs: Any,
    importance: str | Any = "l1",
    *,
    ignored_layers: Iterable[str | nn.Module] | None = None,
    data: Any = None,
    loss_fn: LossFn | None = None,
) -> dict[str, torch.Tensor]:
    """``{root layer name: scores [channels]}`` for every channel group that
    :func:`~fewshot_kd.prune.prune_` (same ``importance``, ``ignored_layers``, ``data``,
    ``loss_fn``) would prune: the scores its pruner ranks by (``"l1"``: the L1 norm summed
    over every coupled weight slice of the group, divided by its mean). Per-layer pruning
    removes the lowest-scoring channels. Float32 on the CPU; the model is not changed (its
    gradients are cleared for ``"taylor"``). Attention head groups are left out."""
    pruner, _ = build_pruner(model, example_inputs, 0.0, importance=importance, ignored_layers=ignored_layers,
                             data=data, loss_fn=loss_fn)
    names = {id(m): n for n, m in model.named_modules()}
    scores = {}
    with torch.no_grad():
        for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                              root_module_types=pruner.root_module_types):
            if pruner._is_atten_group(group)[0]:
                continue
            imp = pruner.estimate_importance(group)
            if imp is None:
                continue
            per_dim = pruner._get_channel_groups(group)  # as BasePruner._prune folds channel groups
            if per_dim > 1:
                imp = imp.view(per_dim, -1).mean(dim=0)
            scores[names[id(group[0].dep.target.module)]] = imp.detach().float().cpu()
    model.zero_grad(set_to_none=True)
    return scores
