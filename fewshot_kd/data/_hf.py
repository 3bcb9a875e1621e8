"""Quiet, offline-safe use of Hugging Face ``datasets``."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.data.roots import cache_dir
from fewshot_kd.errors import FewShotKDError


def hf_cache_dir() -> Path:
    """Hugging Face ``datasets`` cache inside fewshot_kd's cache (never the home HF cache)."""
    path = cache_dir() / "hf_datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def hf_session(offline: bool) -> Iterator[object]:
    """Yield the ``datasets`` module with progress bars off and, when ``offline``, the Hub
    switched off too (``HF_HUB_OFFLINE`` semantics), so nothing waits on the network."""
    import datasets
    import huggingface_hub.constants as hub_constants
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    bars_were_on = not are_progress_bars_disabled()
    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    if bars_were_on:
        disable_progress_bars()
    if offline:
        datasets.config.HF_HUB_OFFLINE = True
        hub_constants.HF_HUB_OFFLINE = True
    try:
        yield datasets
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved
        if bars_were_on:
            enable_progress_bars()


def hf_to_labelled(table, text_field: str, label_field: str, class_names: Sequence[str], name: str) -> LabelledDataset:
    """A text :class:`LabelledDataset` from the ``text_field``/``label_field`` columns of a
    Hugging Face ``Dataset``."""
    missing = {text_field, label_field} - set(table.column_names)
    if missing:
        raise FewShotKDError(f"{name}: rows lack field(s) {sorted(missing)}; they have {table.column_names}")
    columns = table.select_columns([text_field, label_field]).to_dict()
    texts = [str(t) for t in columns[text_field]]
    labels = torch.tensor(columns[label_field], dtype=torch.long)
    return LabelledDataset(texts, labels, tuple(class_names), name)
