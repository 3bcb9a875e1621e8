"""The dataset registry: ``load_dataset(name)`` and ``list_datasets()``.

Every entry is a function ``(data_root, download) -> DatasetSplits`` (classification);
``squad`` / ``hf:squad`` return :class:`~fewshot_kd.data.qa_examples.QASplits` and
``tinyshakespeare`` / ``hf:wikitext`` a :class:`~fewshot_kd.data.lm_corpus.TextCorpus`. The modules that
define them are named here, explicitly, and imported by the registry on first use.
"""

from __future__ import annotations

import os
from typing import Callable

from fewshot_kd.data.dataset import DatasetSplits
from fewshot_kd.errors import UnknownNameError
from fewshot_kd.registry import Registry

DatasetFactory = Callable[..., DatasetSplits]
DATASETS: Registry[DatasetFactory] = Registry(
    "dataset", modules=("fewshot_kd.data.digits", "fewshot_kd.data.local_files", "fewshot_kd.data.online",
                        "fewshot_kd.data.squad", "fewshot_kd.data.tinyshakespeare", "fewshot_kd.data.online_qa_lm"))


def register_dataset(name: str, help: str = ""):
    return DATASETS.register(name, help)


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False, **kwargs) -> DatasetSplits:
    """Load a registered dataset by name, or the dataset at a path (an image folder, an ``.npz``,
    a CSV / JSONL file or a ``save_to_disk`` folder: :func:`~fewshot_kd.data.by_path.load_data_path`).
    ``data_root`` overrides ``$FEWSHOT_KD_DATA``; ``download`` lets online sources
    (torchvision, Hugging Face hub) fetch what is missing."""
    from fewshot_kd.data.by_path import FORMATS, load_data_path, looks_like_path

    if name not in DATASETS and looks_like_path(name):
        return load_data_path(name, **kwargs)
    try:
        factory = DATASETS.get(name)
    except UnknownNameError as error:
        raise UnknownNameError(f"{error}. Or pass a path to {', '.join(FORMATS)}") from None
    return factory(data_root=data_root, download=download, **kwargs)


def list_datasets() -> list[str]:
    return DATASETS.names()
