"""Any torchvision classification architecture by name, as a fewshot_kd model.

``create_model("torchvision", arch="resnet18", num_classes=3)`` builds torchvision's
``resnet18(num_classes=3)`` (random weights) behind a :class:`Normalize` layer (ImageNet
statistics by default), so it takes images in ``[0, 1]`` like every fewshot_kd vision model;
grey ``[N, 1, H, W]`` images are repeated to three channels. Its ``arch`` records the
architecture, so a student pruned from it exports and reloads like any registered model.
Load a checkpoint with ``model.net.load_state_dict(state)`` (torchvision's own keys).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fewshot_kd.errors import UnknownNameError
from fewshot_kd.models._normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from fewshot_kd.models.catalog import register_model


def torchvision_names() -> list[str]:
    """The classification architectures torchvision builds by name (``resnet18``, ``vit_b_16``, ...)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


class TorchvisionClassifier(nn.Module):
    """``normalize -> net``: a torchvision classifier taking ``[0, 1]`` images."""

    def __init__(self, arch: str, num_classes: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        import torchvision

        if arch not in torchvision_names():
            import difflib

            close = difflib.get_close_matches(arch, torchvision_names(), n=3)
            raise UnknownNameError(f"unknown torchvision architecture {arch!r}"
                                   + (f"; did you mean {', '.join(map(repr, close))}?" if close else "")
                                   + " (torchvision.models.list_models() names them all)")
        self.arch: dict[str, Any] = {"name": "torchvision", "arch": arch, "num_classes": num_classes,
                                     "mean": list(mean), "std": list(std)}
        self.normalize = Normalize(mean, std)
        self.net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.normalize.mean.numel() == 3:
            x = x.expand(-1, 3, -1, -1)
        return self.net(self.normalize(x))


@register_model("torchvision", "any torchvision classifier by architecture name (arch=...), random init")
def torchvision_model(arch: str, num_classes: int = 1000, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD, pretrained: bool = False, data_root: Any = None) -> TorchvisionClassifier:
    """torchvision's ``arch`` with ``num_classes`` outputs; weights come from a state-dict file
    (``pretrained=True`` is refused: torchvision's own weights need internet)."""
    if pretrained:
        raise ValueError(f"torchvision {arch} has no offline pretrained weights here: load a state-dict file "
                         f"into model.net (fewshot_kd.teachers.load_teacher('{arch}', weights=FILE))")
    return TorchvisionClassifier(arch, num_classes, mean, std)
