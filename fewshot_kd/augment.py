"""Batch augmentations for few-shot training (images: pad-crop and flip)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random ``padding``-pixel translation (reflect-padded crop) and horizontal flip, per image."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(images.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(images.device)
    out = padded[torch.arange(n, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    out = out.permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


AUGMENTATIONS = {"none": None, "crop_flip": random_crop_flip}


def get_augmentation(name: str):
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose from {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
