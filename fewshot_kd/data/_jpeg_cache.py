"""Decode an array of concatenated JPEG files once, and keep the pixels as a ``.npy`` cache."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from fewshot_kd.data.roots import cache_dir
from fewshot_kd.files import atomic_path

_CACHE_FORMAT = "v1"  # bump when the decoded layout changes


def decode_jpeg_bytes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``uint8 [N, 3, H, W]`` RGB pixels of the JPEG files ``data[offsets[i]:offsets[i+1]]``,
    decoded with Pillow. All images must share one size."""
    from PIL import Image

    blob = data.tobytes()
    count = len(offsets) - 1
    images = None
    for i in range(count):
        with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]])) as image:
            pixels = np.asarray(image.convert("RGB"))
        if images is None:
            images = np.empty((count, *pixels.shape), dtype=np.uint8)
        if pixels.shape != images.shape[1:]:
            raise ValueError(
                f"JPEG image {i} is {pixels.shape[:2]}, the first one {images.shape[1:3]}; sizes must match"
            )
        images[i] = pixels
    if images is None:
        return np.empty((0, 3, 0, 0), dtype=np.uint8)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def decoded_cache_path(source: Path) -> Path:
    """Where the decoded pixels of ``source`` are cached: keyed by its resolved path, size and
    modification time, under :func:`fewshot_kd.data.roots.cache_dir` (``$FEWSHOT_KD_CACHE``)."""
    stat = source.stat()
    where = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "decoded" / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}-{where}-{_CACHE_FORMAT}.npy"


def cached_jpeg_images(source: Path, data: np.ndarray | None = None, offsets: np.ndarray | None = None) -> np.ndarray:
    """The decoded images of the ``jpeg``/``offsets`` fields of ``source``: read from the cache
    when present, otherwise decoded once and written there atomically. The cache is read into
    memory, not memory-mapped: random access to single images (episodes) is far faster."""
    cached = decoded_cache_path(source)
    if not cached.is_file():
        if data is None or offsets is None:
            with np.load(source) as fields:
                data, offsets = fields["jpeg"], fields["offsets"]
        images = decode_jpeg_bytes(data, offsets)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, images)
    return np.load(cached)
