"""TinyBERT-style transformer distillation (Jiao et al., 2020): embedding, hidden-state and
attention-map losses over mapped layers, with learnable projections when widths differ.

Hidden states follow Hugging Face's ``output_hidden_states=True``: a sequence of
``num_layers + 1`` tensors ``[N, L, D]``, the embedding output first. Attentions follow
``output_attentions=True``: ``num_layers`` tensors ``[N, heads, L, L]`` of probabilities
(load BERT models with ``attn_implementation="eager"`` to get them). ``attention_mask`` is
``[N, L]`` with 1 for real tokens and 0 for padding; padded positions are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, Union

import torch
import torch.nn as nn

from fewshot_kd.distill._checks import (
    LayerWeights,
    require_finite,
    require_tensor,
    resolve_layer_weights,
    weighted_layer_mean,
)
from fewshot_kd.distill.attention_losses import ATTENTION_LOSSES
from fewshot_kd.distill.layer_map import last_layer_map, uniform_layer_map

AttentionLossMode = Literal["mse", "kl"]
"""A name in :data:`~fewshot_kd.distill.attention_losses.ATTENTION_LOSSES`."""
LayerMapSpec = Union[Literal["uniform", "last"], Sequence[int]]


def _token_mask(attention_mask: torch.Tensor | None, batch: int, length: int, like: torch.Tensor) -> torch.Tensor | None:
    if attention_mask is None:
        return None
    require_tensor("attention_mask", attention_mask)
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"attention_mask shaped {tuple(attention_mask.shape)} does not match the batch [N={batch}, L={length}]"
        )
    mask = attention_mask.to(device=like.device, dtype=like.dtype)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    if not bool(mask.any()):
        raise ValueError("attention_mask marks every token as padding; there is nothing to compare")
    return mask


def hidden_state_mse(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    projection: nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between ``projection(student_hidden)`` and ``teacher_hidden`` (``[N, L, D]``),
    averaged over real tokens and features."""
    require_tensor("student hidden state", student_hidden)
    require_tensor("teacher hidden state", teacher_hidden)
    require_finite("student hidden state", student_hidden)
    require_finite("teacher hidden state", teacher_hidden)
    student = projection(student_hidden) if projection is not None else student_hidden
    teacher = teacher_hidden.detach().to(student.dtype)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student hidden state {tuple(student.shape)} (after projection) and teacher {tuple(teacher.shape)} "
            "differ; give a projection (nn.Linear(student_width, teacher_width)) or use TinyBertLoss"
        )
    squared = (student - teacher).pow(2)
    mask = _token_mask(attention_mask, student.shape[0], student.shape[1], squared)
    if mask is None:
        return squared.mean()
    return (squared * mask.unsqueeze(-1)).sum() / (mask.sum() * squared.shape[-1])


def embedding_loss(
    student_embeddings: torch.Tensor,
    teacher_embeddings: torch.Tensor,
    projection: nn.Module | None = None,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embedding-layer loss: ``hidden_state_mse`` on the embedding outputs."""
    return hidden_state_mse(student_embeddings, teacher_embeddings, projection, attention_mask)


def attention_probs_loss(
    student_attention: torch.Tensor,
    teacher_attention: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    mode: AttentionLossMode = "mse",
    average_heads: bool = False,
) -> torch.Tensor:
    """Loss between attention probabilities ``[N, heads, L, L]`` of one layer pair.

    ``mode="mse"``: mean squared difference over heads and (real query, real key) entries.
    ``mode="kl"``: ``KL(teacher row || student row)`` summed over real keys, averaged over
    heads and real queries (MiniLM style). Head counts must match unless
    ``average_heads=True`` compares the head-averaged maps.
    """
    require_tensor("student attention", student_attention)
    require_tensor("teacher attention", teacher_attention)
    if student_attention.dim() != 4 or teacher_attention.dim() != 4:
        raise ValueError(
            f"attention maps must be [N, heads, L, L], got {tuple(student_attention.shape)} and "
            f"{tuple(teacher_attention.shape)}"
        )
    require_finite("student attention", student_attention)
    require_finite("teacher attention", teacher_attention)
    teacher = teacher_attention.detach().to(student_attention.dtype)
    student = student_attention
    if average_heads:
        student, teacher = student.mean(dim=1, keepdim=True), teacher.mean(dim=1, keepdim=True)
    if student.shape != teacher.shape:
        raise ValueError(
            f"student attention {tuple(student.shape)} and teacher attention {tuple(teacher.shape)} differ; "
            "head counts must match, or pass average_heads=True"
        )
    batch, _, length, _ = student.shape
    mask = _token_mask(attention_mask, batch, length, student)
    if mask is None:
        mask = student.new_ones(batch, length)
    return ATTENTION_LOSSES.get(mode)(student, teacher, mask[:, None, :, None], mask[:, None, None, :])


def resolve_transformer_layer_map(layer_map: LayerMapSpec, num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """Teacher layer index (0-based) for each student layer: ``"uniform"``, ``"last"`` or explicit."""
    if isinstance(layer_map, str):
        if layer_map == "uniform":
            return uniform_layer_map(num_student_layers, num_teacher_layers)
        if layer_map == "last":
            return last_layer_map(num_student_layers, num_teacher_layers)
        raise ValueError(f"unknown layer map {layer_map!r}; use 'uniform', 'last' or a list of teacher indices")
    indices = [int(i) for i in layer_map]
    if len(indices) != num_student_layers:
        raise ValueError(f"layer map has {len(indices)} entries for {num_student_layers} student layers")
    bad = [i for i in indices if not 0 <= i < num_teacher_layers]
    if bad:
        raise ValueError(f"teacher layer indices {bad} are outside 0..{num_teacher_layers - 1}")
    return indices


@dataclass(frozen=True)
class TinyBertConfig:
    """Weights of the three TinyBERT terms and the attention loss mode."""

    embedding_weight: float = 1.0
    hidden_weight: float = 1.0
    attention_weight: float = 1.0
    attention_mode: AttentionLossMode = "mse"
    average_heads: bool = False

    def __post_init__(self) -> None:
        for name in ("embedding_weight", "hidden_weight", "attention_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        ATTENTION_LOSSES.get(self.attention_mode)  # an unknown mode: UnknownNameError (a ValueError)


class TinyBertLoss(nn.Module):
    """Embedding + mapped hidden-state + mapped attention losses.

    Student layer ``j`` learns from teacher layer ``layer_map[j]`` (0-based; ``"uniform"``
    maps 3 student layers to teacher layers 2, 4, 6 of 6). Hidden states pass through a
    learnable ``Linear(student_width, teacher_width)`` when widths differ (one shared by all
    layers as in TinyBERT, or one per layer); the embeddings get their own. Per-layer
    weights combine as ``sum_j w_j * loss_j / num_student_layers``. Optimise this module's
    parameters together with the student.
    """

    def __init__(
        self,
        student_width: int,
        teacher_width: int,
        num_student_layers: int,
        num_teacher_layers: int,
        layer_map: LayerMapSpec = "uniform",
        hidden_weights: LayerWeights = None,
        attention_weights: LayerWeights = None,
        config: TinyBertConfig = TinyBertConfig(),
        share_projection: bool = True,
    ) -> None:
        super().__init__()
        self.num_student_layers = int(num_student_layers)
        self.num_teacher_layers = int(num_teacher_layers)
        self.layer_map = resolve_transformer_layer_map(layer_map, self.num_student_layers, self.num_teacher_layers)
        self.hidden_weights = resolve_layer_weights(hidden_weights, self.num_student_layers)
        self.attention_weights = resolve_layer_weights(attention_weights, self.num_student_layers)
        self.config = config

        def projection() -> nn.Module:
            return nn.Linear(student_width, teacher_width) if student_width != teacher_width else nn.Identity()

        self.embedding_projection = projection()
        count = 1 if share_projection else self.num_student_layers
        self.hidden_projections = nn.ModuleList(projection() for _ in range(count))

    def _hidden_projection(self, j: int) -> nn.Module:
        return self.hidden_projections[0 if len(self.hidden_projections) == 1 else j]

    def components(
        self,
        student_hidden_states: Sequence[torch.Tensor],
        teacher_hidden_states: Sequence[torch.Tensor],
        student_attentions: Sequence[torch.Tensor] | None = None,
        teacher_attentions: Sequence[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The weighted terms ``embedding``, ``hidden``, ``attention`` (when attentions are
        given) and their sum ``total``."""
        self._check_count("student hidden states", student_hidden_states, self.num_student_layers + 1)
        self._check_count("teacher hidden states", teacher_hidden_states, self.num_teacher_layers + 1)
        cfg = self.config
        parts = {
            "embedding": cfg.embedding_weight
            * embedding_loss(
                student_hidden_states[0], teacher_hidden_states[0], self.embedding_projection, attention_mask
            )
        }
        hidden = [
            hidden_state_mse(
                student_hidden_states[j + 1], teacher_hidden_states[t + 1], self._hidden_projection(j), attention_mask
            )
            for j, t in enumerate(self.layer_map)
        ]
        parts["hidden"] = cfg.hidden_weight * weighted_layer_mean(hidden, self.hidden_weights)
        if (student_attentions is None) != (teacher_attentions is None):
            raise ValueError("give both student and teacher attentions, or neither")
        if student_attentions is not None and teacher_attentions is not None:
            self._check_count("student attentions", student_attentions, self.num_student_layers)
            self._check_count("teacher attentions", teacher_attentions, self.num_teacher_layers)
            attention = [
                attention_probs_loss(
                    student_attentions[j], teacher_attentions[t], attention_mask, cfg.attention_mode, cfg.average_heads
                )
                for j, t in enumerate(self.layer_map)
            ]
            parts["attention"] = cfg.attention_weight * weighted_layer_mean(attention, self.attention_weights)
        total = parts["embedding"]
        for name in ("hidden", "attention"):
            if name in parts:
                total = total + parts[name]
        parts["total"] = total
        return parts

    def forward(
        self,
        student_hidden_states: Sequence[torch.Tensor],
        teacher_hidden_states: Sequence[torch.Tensor],
        student_attentions: Sequence[torch.Tensor] | None = None,
        teacher_attentions: Sequence[torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.components(
            student_hidden_states, teacher_hidden_states, student_attentions, teacher_attentions, attention_mask
        )["total"]

    @staticmethod
    def _check_count(what: str, values: Sequence[torch.Tensor] | None, expected: int) -> None:
        if values is None or isinstance(values, torch.Tensor) or len(values) != expected:
            got = "a single tensor" if isinstance(values, torch.Tensor) else (len(values) if values is not None else None)
            raise ValueError(
                f"expected {expected} {what}, got {got}; hidden states include the embedding output first "
                "(Hugging Face output_hidden_states=True), attentions have one entry per layer"
            )

    def extra_repr(self) -> str:
        return f"layer_map={self.layer_map}, hidden_weights={self.hidden_weights}"
