"""The dataset registry: ``load_dataset(name)`` and ``list_datasets()``.

Every entry is a function ``(data_root, download) -> DatasetSplits``. The modules that
define them are imported here, explicitly, so the registry is complete on first use.
"""

from __future__ import annotations

import os
from typing import Callable

from fewshot_kd.data.dataset import DatasetSplits
from fewshot_kd.registry import Registry

DatasetFactory = Callable[..., DatasetSplits]
DATASETS: Registry[DatasetFactory] = Registry("dataset")
_LOADED = False


def _ensure_registered() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from fewshot_kd.data import digits, local_files, online  # noqa: F401  (registers entries)


def register_dataset(name: str, help: str = ""):
    return DATASETS.register(name, help)


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False, **kwargs) -> DatasetSplits:
    """Load a registered dataset by name. ``data_root`` overrides ``$FEWSHOT_KD_DATA``;
    ``download`` lets online sources (torchvision, Hugging Face hub) fetch what is missing."""
    _ensure_registered()
    return DATASETS.get(name)(data_root=data_root, download=download, **kwargs)


def list_datasets() -> list[str]:
    _ensure_registered()
    return DATASETS.names()
