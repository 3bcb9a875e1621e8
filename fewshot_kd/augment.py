"""Batch augmentations for few-shot training (images: pad-crop and flip, mixup and cutmix)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fewshot_kd.registry import Registry

AUGMENTATIONS: Registry[Callable[..., torch.Tensor] | None] = Registry("augmentation")
"""Per-image batch augmentations by name; ``"none"`` maps to ``None`` (no augmentation)."""
MIXES: Registry[Callable[..., torch.Tensor]] = Registry("mix", plural="mixes")
"""Pairwise image mixing by name: ``(images, alpha, seed) -> images``."""
AUGMENTATIONS.register("none", "no augmentation")(None)


def default_padding(images: torch.Tensor) -> int:
    """An eighth of the image side (4 pixels for 32x32, 1 for 8x8)."""
    return max(1, min(images.shape[-2:]) // 8)


@AUGMENTATIONS.register("crop_flip", "random reflect-padded crop and horizontal flip")
def random_crop_flip(images: torch.Tensor, padding: int | None = None, generator: torch.Generator | None = None,
                     flip: bool = True) -> torch.Tensor:
    """Random translation by up to ``padding`` pixels (reflect-padded crop; default
    :func:`default_padding`) and, if ``flip``, a random horizontal flip, per image."""
    n, _, h, w = images.shape
    padding = default_padding(images) if padding is None else padding
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(images.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(images.device)
    out = padded[torch.arange(n, device=images.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    out = out.permute(0, 3, 1, 2)
    if not flip:
        return out
    flipped = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    return torch.where(flipped[:, None, None, None], out.flip(-1), out)


@AUGMENTATIONS.register("crop", "random reflect-padded crop, no mirror (digits, characters)")
def random_crop(images: torch.Tensor, padding: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random translation only (for data where a mirror image is another class, e.g. digits)."""
    return random_crop_flip(images, padding, generator, flip=False)


def unshifted(augment: Callable[..., torch.Tensor], images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What ``augment`` (a crop augmentation of :data:`AUGMENTATIONS`) draws next from ``generator``
    with a padding of 0: the same mirror images, not shifted. ``generator`` is left as it was (a
    draw of ``randint(0, n)`` consumes the generator alike for every ``n``), so the next call
    draws the shifted copies these anchor."""
    state = generator.get_state()
    anchors = augment(images, 0, generator)
    generator.set_state(state)
    return anchors


def get_augmentation(name: str):
    """The augmentation called ``name`` (``None`` for ``"none"``); :class:`UnknownNameError` otherwise."""
    return AUGMENTATIONS.get(name)


def _partners_and_weights(n: int, alpha: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random partner for every image and the share ``lam ~ Beta(alpha, alpha)`` it keeps."""
    generator = torch.Generator().manual_seed(seed)
    partners = torch.randperm(n, generator=generator)
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=n)).float()
    return partners, lam


@MIXES.register("mixup", "every image blended with a random partner")
def mixup(images: torch.Tensor, alpha: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Every image blended with a random partner: ``lam * x + (1 - lam) * x[partner]``."""
    partners, lam = _partners_and_weights(len(images), alpha, seed)
    lam = lam.to(images.device, images.dtype).view(-1, *([1] * (images.dim() - 1)))
    return lam * images + (1 - lam) * images[partners.to(images.device)]


@MIXES.register("cutmix", "a random box pasted from a random partner into every image")
def cutmix(images: torch.Tensor, alpha: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Every image with a random box (a ``1 - lam`` share of its area) pasted from a random partner."""
    n, _, h, w = images.shape
    partners, lam = _partners_and_weights(n, alpha, seed)
    rng = np.random.default_rng(seed + 1)
    side = np.sqrt(1.0 - lam.numpy())
    cy, cx = rng.integers(0, h, size=n), rng.integers(0, w, size=n)
    out = images.clone()
    for i in range(n):
        bh, bw = int(round(side[i] * h)), int(round(side[i] * w))
        top, left = max(0, cy[i] - bh // 2), max(0, cx[i] - bw // 2)
        bottom, right = min(h, top + bh), min(w, left + bw)
        out[i, :, top:bottom, left:right] = images[int(partners[i]), :, top:bottom, left:right]
    return out
