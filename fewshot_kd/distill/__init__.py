"""Distillation losses (logit KD, hints, attention transfer, TinyBERT, multi-teacher),
feature capture by forward hooks, and teacher-to-student layer mapping."""

from fewshot_kd.distill._checks import resolve_layer_weights
from fewshot_kd.distill.attention import (
    AttentionTransferConfig,
    AttentionTransferLoss,
    attention_map,
    attention_transfer_layer_loss,
    attention_transfer_loss,
)
from fewshot_kd.distill.features import FeatureAdaptor, HintLoss, feature_mse, hint_loss
from fewshot_kd.distill.hooks import FeatureCapture
from fewshot_kd.distill.layer_map import (
    Stage,
    find_stages,
    last_layer_map,
    map_layers,
    resolve_layers,
    transformer_blocks,
    uniform_layer_map,
)
from fewshot_kd.distill.losses import KDConfig, KDLoss, kd_loss, soft_target_kl, soft_target_kl_from_probs
from fewshot_kd.distill.multi_teacher import multi_teacher_kd_loss, multi_teacher_soft_targets
from fewshot_kd.distill.transformer import (
    TinyBertConfig,
    TinyBertLoss,
    attention_probs_loss,
    embedding_loss,
    hidden_state_mse,
    resolve_transformer_layer_map,
)

__all__ = [
    "AttentionTransferConfig",
    "AttentionTransferLoss",
    "FeatureAdaptor",
    "FeatureCapture",
    "HintLoss",
    "KDConfig",
    "KDLoss",
    "Stage",
    "TinyBertConfig",
    "TinyBertLoss",
    "attention_map",
    "attention_probs_loss",
    "attention_transfer_layer_loss",
    "attention_transfer_loss",
    "embedding_loss",
    "feature_mse",
    "find_stages",
    "hidden_state_mse",
    "hint_loss",
    "kd_loss",
    "last_layer_map",
    "map_layers",
    "multi_teacher_kd_loss",
    "multi_teacher_soft_targets",
    "resolve_layer_weights",
    "resolve_layers",
    "resolve_transformer_layer_map",
    "soft_target_kl",
    "soft_target_kl_from_probs",
    "transformer_blocks",
    "uniform_layer_map",
]
