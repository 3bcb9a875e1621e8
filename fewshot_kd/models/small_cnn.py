"""Small students: ``small_cnn`` (~100K parameters), ``tiny_cnn`` (~1.5K) and ``mlp``.

All take images in ``[0, 1]`` shaped ``[N, C, H, W]``, normalise inside, and record in
``arch`` what rebuilds them (``create_model(**model.arch)``) and in ``input_shape`` the
nominal input size used by :func:`example_inputs`. The conv nets end in global average
pooling, so they also run on other sizes (8x8 digits, 28x28, 32x32, ...).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn

from fewshot_kd.models._normalize import Normalize, default_stats, example_inputs
from fewshot_kd.models.catalog import register_model

__all__ = ["SmallCNN", "TinyCNN", "MLP", "conv_block", "example_inputs"]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _stats(in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None):
    default_mean, default_std = default_stats(in_channels)
    return tuple(mean if mean is not None else default_mean), tuple(std if std is not None else default_std)


def conv_block(in_channels: int, out_channels: int, pool: bool, bias: bool = False) -> nn.Sequential:
    """conv3x3-BN-ReLU, then a 2x2 max-pool (ceil mode, so odd and 1-pixel maps work)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Four conv blocks (``width``, 2x, 4x, 8x channels; max-pool after the first three),
    global average pooling, then ``Linear(8w, 4w)``-ReLU-``Linear(4w, classes)``.
    With ``width=16`` on 3x32x32 and 10 classes: 106,826 parameters (the seed's student)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 16,
        input_size: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_positive(num_classes=num_classes, in_channels=in_channels, width=width, input_size=input_size)
        mean, std = _stats(in_channels, mean, std)
        self.arch: dict[str, Any] = {
            "name": "small_cnn", "num_classes": num_classes, "in_channels": in_channels,
            "width": width, "input_size": input_size, "mean": mean, "std": std,
        }
        self.input_shape = (in_channels, input_size, input_size)
        channels = [in_channels, width, 2 * width, 4 * width, 8 * width]
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            *(conv_block(channels[i], channels[i + 1], pool=i < 3, bias=True) for i in range(4))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(8 * width, 4 * width), nn.ReLU(inplace=True), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.features(self.normalize(x))).flatten(1)
        return self.classifier(out)


class TinyCNN(nn.Module):
    """Two conv blocks (``width``, 2x; max-pool after the first), global average pooling,
    linear. About 1.4K parameters with the defaults (1x8x8 digits, 10 classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: int = 8,
        input_size: int = 8,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_positive(num_classes=num_classes, in_channels=in_channels, width=width, input_size=input_size)
        mean, std = _stats(in_channels, mean, std)
        self.arch: dict[str, Any] = {
            "name": "tiny_cnn", "num_classes": num_classes, "in_channels": in_channels,
            "width": width, "input_size": input_size, "mean": mean, "std": std,
        }
        self.input_shape = (in_channels, input_size, input_size)
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            conv_block(in_channels, width, pool=True), conv_block(width, 2 * width, pool=False)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.normalize(x))).flatten(1))


class MLP(nn.Module):
    """Flatten, then ``Linear``-ReLU per hidden size, then a linear head. The input shape is
    fixed by ``input_shape`` (default: 1x8x8 digits)."""

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 8, 8),
        hidden: Sequence[int] = (64,),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        input_shape = tuple(int(v) for v in input_shape)
        hidden = tuple(int(v) for v in hidden)
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width), got {input_shape}")
        _check_positive(num_classes=num_classes, **{f"input_shape[{i}]": v for i, v in enumerate(input_shape)})
        _check_positive(**{f"hidden[{i}]": v for i, v in enumerate(hidden)})
        mean, std = _stats(input_shape[0], mean, std)
        self.arch: dict[str, Any] = {
            "name": "mlp", "num_classes": num_classes, "input_shape": input_shape,
            "hidden": hidden, "mean": mean, "std": std,
        }
        self.input_shape = input_shape
        self.normalize = Normalize(mean, std)
        sizes = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x))


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(f"{name} has no pretrained weights; build it with pretrained=False and train it")


@register_model("small_cnn")
def small_cnn(num_classes: int = 10, in_channels: int = 3, width: int = 16, input_size: int = 32,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              pretrained: bool = False, data_root: Any = None) -> SmallCNN:
    """Compact 4-block CNN student, ~100K parameters at width 16 (any input size >= 1 pixel)."""
    _no_pretrained("small_cnn", pretrained)
    return SmallCNN(num_classes, in_channels, width, input_size, mean, std)


@register_model("tiny_cnn")
def tiny_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8, input_size: int = 8,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             pretrained: bool = False, data_root: Any = None) -> TinyCNN:
    """Very small 2-block CNN (~1.4K parameters) for fast tests and the 8x8 digits default."""
    _no_pretrained("tiny_cnn", pretrained)
    return TinyCNN(num_classes, in_channels, width, input_size, mean, std)


@register_model("mlp")
def mlp(num_classes: int = 10, input_shape: Sequence[int] = (1, 8, 8), hidden: Sequence[int] = (64,),
        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
        pretrained: bool = False, data_root: Any = None) -> MLP:
    """Multi-layer perceptron on flattened images (default 1x8x8 digits, one hidden layer of 64)."""
    _no_pretrained("mlp", pretrained)
    return MLP(num_classes, input_shape, hidden, mean, std)
