"""Structured pruning: physically smaller models, soft masks for the inner loop, saving.

* :func:`prune_` removes channels (DepGraph, via Torch-Pruning) or attention heads and FFN
  neurons (BERT family) in place and returns a :class:`PruneReport`.
* :func:`attach_soft_masks` / :func:`harden_`: differentiable channel gates, then the same
  physical pruning with identical outputs.
* :class:`Importance`: what a pruning criterion (``"l1"``, ``"taylor"``, ...) can do.
* :func:`channel_scores`: the per-channel scores ``prune_`` ranks each group by.
* :func:`save_pruned` / :func:`load_pruned`: safetensors weights + JSON architecture.

Torch-Pruning (``pip install 'fewshot_kd[prune]'``) is imported only when a graph is built.
"""

from fewshot_kd.prune.group_scores import channel_scores
from fewshot_kd.prune.importance import (
    IMPORTANCES, Importance, accumulate_gradients_, importance_names, make_importance, resolve_importance)
from fewshot_kd.prune.gpt2 import GPT2Layer, find_gpt2_layers
from fewshot_kd.prune.masks import SoftChannelMask, SoftMasks, attach_soft_masks, find_mask_groups, harden_
from fewshot_kd.prune.physical import prune_, prune_channels_
from fewshot_kd.prune.report import PruneReport
from fewshot_kd.prune.serialize import describe_architecture, load_pruned, read_architecture, save_pruned
from fewshot_kd.prune.targets import PruneTargetError, count_macs, count_macs_params, n_keep, search_ratio
from fewshot_kd.prune.transformer import (
    TransformerLayer,
    find_transformer_layers,
    head_counts,
    prune_ffn_,
    prune_heads_,
    prune_transformer_,
)

__all__ = [
    "GPT2Layer",
    "IMPORTANCES",
    "Importance",
    "PruneReport",
    "PruneTargetError",
    "SoftChannelMask",
    "SoftMasks",
    "TransformerLayer",
    "accumulate_gradients_",
    "attach_soft_masks",
    "channel_scores",
    "count_macs",
    "count_macs_params",
    "describe_architecture",
    "find_gpt2_layers",
    "find_mask_groups",
    "find_transformer_layers",
    "harden_",
    "head_counts",
    "importance_names",
    "load_pruned",
    "make_importance",
    "n_keep",
    "prune_",
    "prune_channels_",
    "prune_ffn_",
    "prune_heads_",
    "prune_transformer_",
    "read_architecture",
    "resolve_importance",
    "save_pruned",
    "search_ratio",
]
