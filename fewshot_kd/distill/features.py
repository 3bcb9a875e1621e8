"""Hint (feature) distillation, FitNets style: MSE between matched teacher and student
features, with learnable adaptors that map student features into the teacher's shape.

Features are lists with one tensor per layer, shaped ``[N, C, H, W]`` (CNN), ``[N, L, D]``
(tokens) or ``[N, D]`` (vectors). Teacher features are detached.
"""

from __future__ import annotations

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

Shape = Sequence[int]


def feature_mse(student: torch.Tensor, teacher: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Mean squared error of one layer; with ``normalize`` each sample's flattened feature
    vector is scaled to unit L2 norm first."""
    require_tensor("student feature", student)
    require_tensor("teacher feature", teacher)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student feature {tuple(student.shape)} and teacher feature {tuple(teacher.shape)} differ; "
            "use HintLoss (it adds a learnable FeatureAdaptor) or match the layers"
        )
    require_finite("student feature", student)
    require_finite("teacher feature", teacher)
    teacher = teacher.detach().to(student.dtype)
    if normalize:
        student = F.normalize(student.flatten(1), dim=1)
        teacher = F.normalize(teacher.flatten(1), dim=1)
    return F.mse_loss(student, teacher)


def hint_loss(
    student_features: Sequence[torch.Tensor],
    teacher_features: Sequence[torch.Tensor],
    weights: LayerWeights = None,
    normalize: bool = False,
    names: Sequence[str] | None = None,
) -> torch.Tensor:
    """``sum_i w_i * MSE(s_i, t_i) / n_layers`` for features of equal shapes (no adaptors).

    ``weights`` is a sequence (one per layer) or a dict keyed by layer index or by ``names``.
    """
    count = require_same_count(student_features, teacher_features)
    layer_weights = resolve_layer_weights(weights, count, names)
    per_layer = [feature_mse(s, t, normalize) for s, t in zip(student_features, teacher_features)]
    return weighted_layer_mean(per_layer, layer_weights)


class FeatureAdaptor(nn.Module):
    """Maps a student feature to the teacher's per-sample shape.

    ``[C, H, W]``: a 1x1 convolution when channels differ, then adaptive average pooling
    (student larger) or bilinear interpolation (otherwise) when resolutions differ.
    ``[L, D]`` and ``[D]``: a ``Linear`` over the last dimension when widths differ.
    Equal shapes give an identity with no parameters. Shapes exclude the batch dimension.
    """

    def __init__(self, student_shape: Shape, teacher_shape: Shape) -> None:
        super().__init__()
        self.student_shape = tuple(int(d) for d in student_shape)
        self.teacher_shape = tuple(int(d) for d in teacher_shape)
        if len(self.student_shape) != len(self.teacher_shape):
            raise UnsupportedLayerError(
                f"cannot adapt a student feature of per-sample shape {self.student_shape} to a teacher "
                f"feature of shape {self.teacher_shape}: they have different ranks; pick layers of the same kind"
            )
        rank = len(self.student_shape)
        if rank == 3:
            s_channels, t_channels = self.student_shape[0], self.teacher_shape[0]
            self.proj: nn.Module = (
                nn.Conv2d(s_channels, t_channels, kernel_size=1) if s_channels != t_channels else nn.Identity()
            )
            self.size = self.teacher_shape[1:] if self.student_shape[1:] != self.teacher_shape[1:] else None
        elif rank in (1, 2):
            if rank == 2 and self.student_shape[0] != self.teacher_shape[0]:
                raise UnsupportedLayerError(
                    f"student features have {self.student_shape[0]} tokens but the teacher's {self.teacher_shape[0]}; "
                    "use the same tokenisation/sequence length for both models"
                )
            s_width, t_width = self.student_shape[-1], self.teacher_shape[-1]
            self.proj = nn.Linear(s_width, t_width) if s_width != t_width else nn.Identity()
            self.size = None
        else:
            raise UnsupportedLayerError(
                f"features of per-sample shape {self.student_shape} are not supported; "
                "use [C, H, W], [L, D] or [D] features"
            )

    @classmethod
    def from_tensors(cls, student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> "FeatureAdaptor":
        """Build from one batch of example features (the batch dimension is dropped)."""
        return cls(student_feature.shape[1:], teacher_feature.shape[1:])

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if tuple(feature.shape[1:]) != self.student_shape:
            raise ValueError(
                f"adaptor built for student features {self.student_shape} got {tuple(feature.shape[1:])}"
            )
        if self.size is None:
            return self.proj(feature)
        downsample = all(s >= t for s, t in zip(self.student_shape[1:], self.size))
        if downsample:  # pooling and a 1x1 conv commute; pool first (cheaper)
            return self.proj(F.adaptive_avg_pool2d(feature, self.size))
        return F.interpolate(self.proj(feature), size=self.size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"student_shape={self.student_shape}, teacher_shape={self.teacher_shape}"


class HintLoss(nn.Module):
    """Weighted hint loss with one learnable ``FeatureAdaptor`` per layer.

    Give per-sample shapes (no batch dimension), or build with ``HintLoss.from_features``.
    The adaptors' parameters must be optimised together with the student.
    """

    def __init__(
        self,
        student_shapes: Sequence[Shape],
        teacher_shapes: Sequence[Shape],
        weights: LayerWeights = None,
        normalize: bool = False,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        count = require_same_count(student_shapes, teacher_shapes, "feature shape")
        if names is not None and len(names) != count:
            raise ValueError(f"got {len(names)} layer names for {count} layers")
        self.names = list(names) if names is not None else None
        self.layer_weights = resolve_layer_weights(weights, count, self.names)
        self.normalize = normalize
        self.adaptors = nn.ModuleList(FeatureAdaptor(s, t) for s, t in zip(student_shapes, teacher_shapes))

    @classmethod
    def from_features(
        cls,
        student_features: Sequence[torch.Tensor],
        teacher_features: Sequence[torch.Tensor],
        **kwargs,
    ) -> "HintLoss":
        """Build from one batch of example features; move it to the student's device afterwards."""
        require_same_count(student_features, teacher_features)
        module = cls([s.shape[1:] for s in student_features], [t.shape[1:] for t in teacher_features], **kwargs)
        return module.to(device=student_features[0].device, dtype=student_features[0].dtype)

    def forward(self, student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor]) -> torch.Tensor:
        count = require_same_count(student_features, teacher_features)
        if count != len(self.adaptors):
            raise ValueError(f"HintLoss was built for {len(self.adaptors)} layers but got {count}")
        for s in student_features:
            require_finite("student feature", require_tensor("student feature", s))
        per_layer = [
            feature_mse(adaptor(s), t, self.normalize)
            for adaptor, s, t in zip(self.adaptors, student_features, teacher_features)
        ]
        return weighted_layer_mean(per_layer, self.layer_weights)

    def extra_repr(self) -> str:
        return f"weights={self.layer_weights}, normalize={self.normalize}"
