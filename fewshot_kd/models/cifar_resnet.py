"""CIFAR ResNet-20/32/44/56 (He et al. 2016, §4.2) as in akamaster/pytorch_resnet_cifar10,
with its pretrained CIFAR-10 weights.

Option-A shortcuts are a real module (:class:`PadChannelsShortcut`), not a lambda, so the
models pickle, trace, export and are visible to pruning tools. The state-dict keys equal the
upstream ones (without ``module.``), so the upstream checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.data.roots import require_file
from fewshot_kd.errors import DataNotFoundError
from fewshot_kd.models._normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from fewshot_kd.models.catalog import register_model

#: Blocks per stage for each depth (depth = 6n + 2).
BLOCKS_PER_STAGE = {20: 3, 32: 5, 44: 7, 56: 9}
#: Upstream checkpoint file names; the 8 hex digits start the file's sha256.
WEIGHT_FILES = {
    20: "weights/resnet20-12fca82f.th",
    32: "weights/resnet32-d509ac18.th",
    44: "weights/resnet44-014dd654.th",
    56: "weights/resnet56-4bfd9763.th",
}
_UPSTREAM = "https://github.com/akamaster/pytorch_resnet_cifar10 (pretrained_models/, BSD-2-Clause)"


class PadChannelsShortcut(nn.Module):
    """Parameter-free "option A" shortcut: subsample by ``stride`` and zero-pad ``pad``
    channels on each side, i.e. ``F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, pad, pad))``.

    Width pruning may remove channels on either side (:meth:`prune_in_channels_`,
    :meth:`prune_out_channels_`); the shortcut then places each kept input channel where it
    went before through ``gather_index`` (per output channel: 0 for a zero channel, ``k + 1``
    for input channel ``k``), a buffer that exists only once the shortcut was pruned."""

    gather_index: torch.Tensor | None
    #: what :func:`~fewshot_kd.prune.serialize.save_pruned` records beside the weights
    recorded_attributes = ("in_channels",)

    def __init__(self, pad: int, stride: int = 2, in_channels: int | None = None) -> None:
        super().__init__()
        self.pad = pad
        self.stride = stride
        self.in_channels = in_channels
        self.register_buffer("gather_index", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if self.gather_index is None:
            return F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, self.pad, self.pad))
        index = self.gather_index if self.gather_index.device == x.device else self.gather_index.to(x.device)
        return torch.index_select(F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, 1, 0)), 1, index)

    @property
    def out_channels(self) -> int | None:
        if self.gather_index is not None:
            return len(self.gather_index)
        return None if self.in_channels is None else self.in_channels + 2 * self.pad

    def _index(self) -> torch.Tensor:
        if self.gather_index is not None:
            return self.gather_index
        if self.in_channels is None:
            raise ValueError("pruning a PadChannelsShortcut needs its in_channels (give it at construction)")
        index = torch.zeros(self.in_channels + 2 * self.pad, dtype=torch.long)
        index[self.pad: self.pad + self.in_channels] = torch.arange(1, self.in_channels + 1)
        return index

    def prune_out_channels_(self, idxs) -> None:
        """Drop output channels ``idxs``."""
        index = self._index()
        keep = torch.ones(len(index), dtype=torch.bool)
        keep[torch.as_tensor(list(idxs), dtype=torch.long)] = False
        self.gather_index = index[keep.to(index.device)].clone()

    def prune_in_channels_(self, idxs) -> None:
        """Drop input channels ``idxs``: outputs they fed become zero channels, the rest follow
        their input's new position."""
        index = self._index()
        gone = torch.as_tensor(sorted(set(int(i) for i in idxs)), dtype=torch.long, device=index.device)
        source = index - 1  # -1: a zero channel
        shift = torch.searchsorted(gone, source.clamp(min=0))  # removed inputs before each source
        moved = torch.where(torch.isin(source, gone) | (source < 0), torch.zeros_like(index), source - shift + 1)
        self.gather_index = moved
        if self.in_channels is not None:
            self.in_channels -= len(gone)

    def extra_repr(self) -> str:
        placed = "" if self.gather_index is None else f", out_channels={self.out_channels} (pruned)"
        return f"pad={self.pad}, stride={self.stride}{placed}"


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = PadChannelsShortcut(planes // 4, stride, in_channels=in_planes)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2 on ``[N, 3, H, W]`` images in ``[0, 1]`` (normalised
    inside with the ImageNet statistics the upstream weights were trained with).

    ``arch`` holds what rebuilds it: ``create_model(**model.arch)``.
    """

    def __init__(self, depth: int = 56, num_classes: int = 10) -> None:
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        n = BLOCKS_PER_STAGE[depth]
        self.arch = {"name": f"cifar_resnet{depth}", "num_classes": num_classes}
        self.input_shape = (3, 32, 32)
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.in_planes = 16
        self.layer1 = self._make_stage(16, n, stride=1)
        self.layer2 = self._make_stage(32, n, stride=2)
        self.layer3 = self._make_stage(64, n, stride=2)
        self.linear = nn.Linear(64, num_classes)
        self.apply(_kaiming_init_)

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d pooled features before ``linear``."""
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def _kaiming_init_(module: nn.Module) -> None:
    """Upstream's ``_weights_init``: Kaiming-normal weights for Linear and Conv2d."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(module.weight)


def sha256_prefix(path: str | os.PathLike, length: int = 8) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def pretrained_weights_path(depth: int, data_root: str | os.PathLike | None = None) -> Path:
    """The checkpoint of ``cifar_resnet{depth}`` under the data root, after checking that
    its sha256 starts with the 8 hex digits in its name; :class:`DataNotFoundError` if it is
    missing or does not match."""
    if depth not in WEIGHT_FILES:
        raise ValueError(f"no pretrained weights for depth {depth}; available: {sorted(WEIGHT_FILES)}")
    relative = WEIGHT_FILES[depth]
    how_to_get = (
        f"Copy {Path(relative).name} from {_UPSTREAM} into <data_root>/weights/ "
        "(with its LICENSE.txt), or use pretrained=False."
    )
    path = require_file(data_root, relative, how_to_get)
    expected = Path(relative).stem.rsplit("-", 1)[1]
    actual = sha256_prefix(path, len(expected))
    if actual != expected:
        raise DataNotFoundError(
            f"{path} is corrupt or not the upstream file: its sha256 starts with {actual}, "
            f"the name says {expected}. {how_to_get}"
        )
    return path


def load_upstream_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of an akamaster checkpoint (``{"state_dict": ..., "best_prec1": ...}``
    saved from ``nn.DataParallel``) with the ``module.`` prefix removed. Never unpickles code."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataNotFoundError(f"{path} is not an akamaster checkpoint: no 'state_dict' entry")
    return {key.removeprefix("module."): value for key, value in checkpoint["state_dict"].items()}


def load_pretrained_(model: CifarResNet, data_root: str | os.PathLike | None = None) -> CifarResNet:
    """Load the upstream CIFAR-10 weights into ``model`` in place. With 10 classes every
    tensor must match (``strict=True``); with another class count the backbone is loaded
    and the freshly initialised ``linear`` head is kept."""
    depth = int(model.arch["name"].removeprefix("cifar_resnet"))
    state = load_upstream_state_dict(pretrained_weights_path(depth, data_root))
    if model.linear.out_features == state["linear.weight"].shape[0]:
        model.load_state_dict(state, strict=True)
        return model
    backbone = {k: v for k, v in state.items() if not k.startswith("linear.")}
    result = model.load_state_dict(backbone, strict=False)
    if result.unexpected_keys or set(result.missing_keys) != {"linear.weight", "linear.bias"}:
        raise RuntimeError(
            f"checkpoint does not fit cifar_resnet{depth}: missing {result.missing_keys}, "
            f"unexpected {result.unexpected_keys}"
        )
    return model


def _factory(depth: int):
    def build(
        num_classes: int = 10, pretrained: bool = False, data_root: str | os.PathLike | None = None
    ) -> CifarResNet:
        model = CifarResNet(depth, num_classes)
        if pretrained:
            load_pretrained_(model, data_root)
        return model

    build.__name__ = f"cifar_resnet{depth}"
    build.__doc__ = (
        f"CIFAR ResNet-{depth} (akamaster, option-A shortcuts). pretrained=True loads the "
        f"CIFAR-10 weights from <data_root>/{WEIGHT_FILES[depth]}; with num_classes != 10 it "
        "loads the backbone and re-initialises the linear head."
    )
    return build


for _depth in BLOCKS_PER_STAGE:
    register_model(f"cifar_resnet{_depth}")(_factory(_depth))
