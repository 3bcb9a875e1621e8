"""torchvision ResNet-18 and MobileNetV2 adapted to 32x32 inputs (the usual CIFAR changes).

* ``resnet18_32``: 3x3 stride-1 ``conv1``, no max-pool (final feature map 4x4 on 32x32).
* ``mobilenetv2_32``: stride-1 stem and stride-1 first block of the 24-channel stage
  (final feature map 4x4 on 32x32).

Both subclass the torchvision models, so their ``state_dict`` keys are torchvision's; they
take images in ``[0, 1]`` and normalise inside. Random initialisation only: the ImageNet
weights need internet and are made for 224x224 inputs.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.resnet import BasicBlock, ResNet

from fewshot_kd.models._normalize import Normalize, default_stats
from fewshot_kd.models.catalog import register_model

#: torchvision's MobileNetV2 setting (t, c, n, s) with the 24-channel stage at stride 1.
MOBILENETV2_32_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def _stats(in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None):
    default_mean, default_std = default_stats(in_channels)
    return tuple(mean if mean is not None else default_mean), tuple(std if std is not None else default_std)


def _refuse_pretrained(name: str, torchvision_name: str) -> None:
    raise ValueError(
        f"{name} has no offline pretrained weights (pretrained=True). torchvision's ImageNet "
        f"weights need internet and target 224x224 inputs: use "
        f"torchvision.models.{torchvision_name}(weights='DEFAULT') yourself, or train {name} "
        "from scratch / distil into it with pretrained=False."
    )


class ResNet18For32(ResNet):
    """torchvision ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 32x32 images."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        mean, std = _stats(in_channels, mean, std)
        self.arch: dict[str, Any] = {
            "name": "resnet18_32", "num_classes": num_classes, "in_channels": in_channels,
            "mean": mean, "std": std,
        }
        self.input_shape = (in_channels, 32, 32)
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalize(x))


class MobileNetV2For32(MobileNetV2):
    """torchvision MobileNetV2 with a stride-1 stem and a stride-1 24-channel stage."""

    def __init__(
        self,
        num_classes: int = 10,
        width_mult: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.2,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            width_mult=width_mult,
            inverted_residual_setting=MOBILENETV2_32_SETTING,
            dropout=dropout,
        )
        mean, std = _stats(in_channels, mean, std)
        self.arch: dict[str, Any] = {
            "name": "mobilenetv2_32", "num_classes": num_classes, "width_mult": width_mult,
            "in_channels": in_channels, "dropout": dropout, "mean": mean, "std": std,
        }
        self.input_shape = (in_channels, 32, 32)
        self.normalize = Normalize(mean, std)
        stem = self.features[0][0]
        new_stem = nn.Conv2d(in_channels, stem.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(new_stem.weight, mode="fan_out")
        self.features[0][0] = new_stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalize(x))


@register_model("resnet18_32")
def resnet18_32(
    num_classes: int = 10,
    in_channels: int = 3,
    pretrained: bool = False,
    data_root: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ResNet18For32:
    """torchvision ResNet-18 for 32x32 inputs (3x3 stride-1 stem, no max-pool); random init."""
    if pretrained:
        _refuse_pretrained("resnet18_32", "resnet18")
    return ResNet18For32(num_classes, in_channels, mean, std)


@register_model("mobilenetv2_32")
def mobilenetv2_32(
    num_classes: int = 10,
    width_mult: float = 1.0,
    in_channels: int = 3,
    dropout: float = 0.2,
    pretrained: bool = False,
    data_root: Any = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> MobileNetV2For32:
    """torchvision MobileNetV2 for 32x32 inputs (stride-1 stem and 24-channel stage); random init."""
    if pretrained:
        _refuse_pretrained("mobilenetv2_32", "mobilenet_v2")
    return MobileNetV2For32(num_classes, width_mult, in_channels, dropout, mean, std)
