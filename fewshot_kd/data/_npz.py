"""Read an image classification ``.npz`` in the shared-data format into a LabelledDataset."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fewshot_kd.data._jpeg_cache import cached_jpeg_images
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.errors import FewShotKDError


def to_nchw(images: np.ndarray, channels_last: bool | None = None) -> np.ndarray:
    """``[N, H, W]`` → ``[N, 1, H, W]``; ``[N, H, W, C]`` → ``[N, C, H, W]`` when
    ``channels_last`` (``None``: when the last axis has 1, 3 or 4 entries and is shorter than axis 1)."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise FewShotKDError(f"images must be [N, H, W] or 4-D, got shape {images.shape}")
    if channels_last is None:
        channels_last = images.shape[-1] in (1, 3, 4) and images.shape[-1] < images.shape[1]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if channels_last else images


def read_image_npz(
    path: Path,
    name: str,
    class_names: Sequence[str] | None = None,
    channels_last: bool | None = None,
) -> LabelledDataset:
    """Images from field ``x`` (``uint8``/float, ``[N,H,W]``, ``[N,H,W,C]`` or ``[N,C,H,W]``)
    or from fields ``jpeg`` + ``offsets`` (concatenated JPEG files, decoded once and cached),
    labels from ``y``, class names from ``class_names`` (argument, else the field)."""
    with np.load(path) as fields:
        keys = set(fields.files)
        if "y" not in keys:
            raise FewShotKDError(f"{path} has no 'y' (labels) field; it has {sorted(keys)}")
        labels = torch.from_numpy(fields["y"].astype(np.int64))
        if class_names is None:
            if "class_names" not in keys:
                raise FewShotKDError(f"{path} has no 'class_names' field: pass class_names=[...]")
            class_names = [str(c) for c in fields["class_names"]]
        if "x" in keys:
            images = to_nchw(fields["x"], channels_last)
            if images.dtype.kind == "f":
                images = images.astype(np.float32, copy=False)
        elif {"jpeg", "offsets"} <= keys:
            images = cached_jpeg_images(path)
        else:
            raise FewShotKDError(f"{path} holds neither 'x' nor 'jpeg'+'offsets' image fields; it has {sorted(keys)}")
    return LabelledDataset(torch.from_numpy(images), labels, tuple(class_names), name=name)
