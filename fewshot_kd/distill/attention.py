"""Attention transfer (Zagoruyko & Komodakis, 2017) for convolutional features.

The attention map of a feature ``[N, C, H, W]`` is the mean over channels of ``|f|**p``,
flattened and scaled to unit L2 norm. A layer's loss is ``||a_s - a_t||_2`` averaged over
the batch; layers are combined as ``sum_i w_i * loss_i / n_layers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.distill._checks import (
    LayerWeights,
    require_finite,
    require_same_count,
    require_tensor,
    resolve_layer_weights,
    weighted_layer_mean,
)
from fewshot_kd.errors import UnsupportedLayerError


def _spatial_attention(feature: torch.Tensor, p: float) -> torch.Tensor:
    require_tensor("feature", feature)
    if feature.dim() != 4:
        raise UnsupportedLayerError(
            f"attention transfer needs convolutional features [N, C, H, W], got shape {tuple(feature.shape)}; "
            "for transformers use fewshot_kd.distill.transformer.attention_probs_loss"
        )
    return feature.abs().pow(p).mean(dim=1)


def _resize_map(amap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(amap.shape[-2:]) == size:
        return amap
    batch = amap.unsqueeze(1)
    if amap.shape[-2] >= size[0] and amap.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(batch, size).squeeze(1)
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False).squeeze(1)


def attention_map(feature: torch.Tensor, p: float = 2.0, size: tuple[int, int] | None = None) -> torch.Tensor:
    """``normalize(mean_c |f|**p)`` flattened to ``[N, H*W]``; ``size`` resizes the 2-D map
    first (average pooling when shrinking, bilinear when growing)."""
    amap = _spatial_attention(feature, p)
    if size is not None:
        amap = _resize_map(amap, tuple(size))
    return F.normalize(amap.flatten(1), dim=1)


def attention_transfer_layer_loss(
    student_feature: torch.Tensor, teacher_feature: torch.Tensor, p: float = 2.0, squared: bool = False
) -> torch.Tensor:
    """One layer: ``mean_n ||a_s - a_t||_2``. Channel counts may differ; differing resolutions
    are brought to the smaller one of each side. ``squared=True`` gives the authors' code
    variant, the mean of the squared differences."""
    require_tensor("student feature", student_feature)
    require_tensor("teacher feature", teacher_feature)
    if student_feature.dim() == 4 and teacher_feature.dim() == 4 and student_feature.shape[0] != teacher_feature.shape[0]:
        raise ValueError(
            f"student batch {student_feature.shape[0]} differs from teacher batch {teacher_feature.shape[0]}"
        )
    require_finite("student feature", student_feature)
    require_finite("teacher feature", teacher_feature)
    s_size, t_size = student_feature.shape[-2:], teacher_feature.shape[-2:]
    size = (min(s_size[0], t_size[0]), min(s_size[1], t_size[1]))
    a_s = attention_map(student_feature, p, size)
    a_t = attention_map(teacher_feature.detach().to(student_feature.dtype), p, size)
    diff = a_s - a_t
    if squared:
        return diff.pow(2).mean()
    return diff.norm(p=2, dim=1).mean()


def attention_transfer_loss(
    student_features: Sequence[torch.Tensor],
    teacher_features: Sequence[torch.Tensor],
    weights: LayerWeights = None,
    p: float = 2.0,
    squared: bool = False,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """``sum_i w_i * AT_i / n_layers`` over matched layers (see ``attention_transfer_layer_loss``)."""
    count = require_same_count(student_features, teacher_features)
    layer_weights = resolve_layer_weights(weights, count, names)
    per_layer = [
        attention_transfer_layer_loss(s, t, p, squared) for s, t in zip(student_features, teacher_features)
    ]
    return weighted_layer_mean(per_layer, layer_weights)


@dataclass(frozen=True)
class AttentionTransferConfig:
    """``p`` is the exponent of the attention map; ``squared`` picks the squared-difference variant."""

    p: float = 2.0
    squared: bool = False

    def __post_init__(self) -> None:
        if not self.p > 0:
            raise ValueError(f"p must be positive, got {self.p}")


class AttentionTransferLoss(nn.Module):
    """``attention_transfer_loss`` as a module with fixed weights and config (no parameters)."""

    def __init__(
        self,
        weights: LayerWeights = None,
        config: AttentionTransferConfig = AttentionTransferConfig(),
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.weights = weights
        self.config = config
        self.names = names

    def forward(self, student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor]) -> torch.Tensor:
        return attention_transfer_loss(
            student_features, teacher_features, self.weights, self.config.p, self.config.squared, self.names
        )
