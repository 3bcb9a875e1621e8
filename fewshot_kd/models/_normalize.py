"""Per-channel input normalisation as the first layer of a vision model.

Vision models take float images in ``[0, 1]`` shaped ``[N, C, H, W]``; a :class:`Normalize`
layer inside the model turns them into what the weights expect, so callers never need to
know a model's statistics.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def default_stats(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """CIFAR-10 statistics for 3 channels, otherwise 0.5/0.5 per channel (``[0,1] -> [-1,1]``)."""
    if in_channels == 3:
        return CIFAR10_MEAN, CIFAR10_STD
    return (0.5,) * in_channels, (0.5,) * in_channels


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel. ``mean`` and ``std`` are non-persistent buffers:
    they follow ``.to(device)`` but stay out of the ``state_dict`` (they are part of the
    architecture, recorded in the model's ``arch``), so upstream checkpoints load strictly."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32)
        std_t = torch.as_tensor(tuple(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape:
            raise ValueError(
                f"mean and std must be flat sequences of equal length, one value per channel; "
                f"got {len(mean_t)} means and {len(std_t)} stds"
            )
        if not bool((std_t > 0).all()):
            raise ValueError(f"every std must be > 0, got {tuple(std_t.tolist())}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = ", ".join(f"{v:.4g}" for v in self.mean.flatten().tolist())
        std = ", ".join(f"{v:.4g}" for v in self.std.flatten().tolist())
        return f"mean=({mean}), std=({std})"


def example_inputs(model: nn.Module, batch_size: int = 2, seed: int = 0) -> torch.Tensor:
    """A deterministic random batch in ``[0, 1]`` shaped ``[batch_size, *model.input_shape]``
    on the model's device (for tracing, ONNX export and pruning tools)."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise AttributeError(
            f"{type(model).__name__} has no input_shape attribute; build it with "
            "fewshot_kd.create_model(...) or pass the example batch yourself"
        )
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch_size, *shape), generator=generator).to(device)
