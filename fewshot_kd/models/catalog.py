"""The model registry: ``create_model(name, **kwargs)`` and ``list_models()`` (timm style).

Every entry is a factory returning an ``nn.Module``. Vision models take float images in
``[0, 1]`` shaped ``[N, C, H, W]`` and normalise inside; text models take a list of strings
(or a tokenised batch) and return logits.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from fewshot_kd.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", modules=(
    "fewshot_kd.models.cifar_resnet", "fewshot_kd.models.small_cnn", "fewshot_kd.models.text",
    "fewshot_kd.models.torchvision_32", "fewshot_kd.models.torchvision_any", "fewshot_kd.models.hf_sequence"))


def register_model(name: str, help: str = ""):
    return MODELS.register(name, help)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Common keywords: ``num_classes``, ``pretrained``, ``data_root``."""
    return MODELS.get(name)(**kwargs)


def list_models() -> list[str]:
    return MODELS.names()
