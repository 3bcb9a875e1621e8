"""Unlabelled inputs by path: a folder of images, a ``.txt`` file of texts (one a line), or
any labelled format :func:`~fewshot_kd.data.by_path.load_data_path` reads, labels ignored."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fewshot_kd.data.dataset import Inputs, model_ready
from fewshot_kd.data.image_folder import IMAGE_SUFFIXES, class_folders, open_image, stack_images
from fewshot_kd.errors import BadInputError, DataNotFoundError


def _texts(path: Path) -> list[str]:
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise BadInputError(f"{path} holds no text lines")
    return texts


def load_unlabelled_path(path: str | os.PathLike, image_size: int | None = None, **options) -> Inputs:
    """Model-ready inputs at ``path``: a ``[N, C, H, W]`` float tensor or a list of strings.
    ``options`` (``text_column``, ...) go to the labelled readers."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"unlabelled data {path} does not exist")
    if path.is_file() and path.suffix == ".txt":
        return _texts(path)
    loose = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else []
    if loose and not class_folders(path):
        return model_ready(stack_images([open_image(p) for p in loose], [str(p) for p in loose], image_size))
    from fewshot_kd.data.by_path import load_data_path

    splits = load_data_path(path, image_size=image_size, **options)
    parts = [split.all_inputs() for split in splits.values()]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [t for part in parts for t in part]
