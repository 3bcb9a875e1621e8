"""A Hugging Face ``datasets`` folder written by ``save_to_disk``: text or image rows with a label."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fewshot_kd.data._hf import hf_session
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.data.image_folder import stack_images
from fewshot_kd.data.text_table import index_labels
from fewshot_kd.errors import BadInputError, CorruptFileError

IMAGE_COLUMNS = ("image", "img", "pixel_values")
TEST_SPLITS = ("test", "validation", "valid", "val")


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` looks like ``save_to_disk`` output (a Dataset or a DatasetDict)."""
    return any((folder / f).is_file() for f in ("dataset_dict.json", "dataset_info.json", "state.json"))


def load_saved(folder: Path) -> dict:
    """``{split: Dataset}``; a single saved ``Dataset`` comes back as ``{"all": dataset}``."""
    with hf_session(offline=True) as datasets:
        try:
            loaded = datasets.load_from_disk(str(folder))
        except (FileNotFoundError, ValueError, OSError, KeyError) as error:
            raise CorruptFileError(f"{folder} is not a readable Hugging Face dataset folder "
                                   f"({type(error).__name__}: {str(error)[:200]}); write it again with save_to_disk") from None
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}


def _class_names(table, label_column: str) -> tuple[str, ...] | None:
    feature = table.features.get(label_column)
    return tuple(feature.names) if hasattr(feature, "names") else None


def hf_split_to_labelled(table, name: str, text_column: str = "text", label_column: str = "label",
                         image_size: int | None = None, class_names: Sequence[str] | None = None) -> LabelledDataset:
    """One saved split as a :class:`LabelledDataset`: texts from ``text_column``, or images from
    an ``image`` / ``img`` column; labels from ``label_column`` (a ``ClassLabel`` names them)."""
    columns = table.column_names
    image_column = next((c for c in IMAGE_COLUMNS if c in columns), None)
    if label_column not in columns or (text_column not in columns and image_column is None):
        raise BadInputError(f"{name}: the dataset needs a {label_column!r} column and a {text_column!r} (text) or "
                            f"{' / '.join(IMAGE_COLUMNS)} (image) column; it has {columns}. Name them with "
                            f"text_column= / label_column= (--text-column / --label-column)")
    names = class_names if class_names is not None else _class_names(table, label_column)
    labels, names = index_labels(table[label_column], names, name)
    if text_column in columns:
        return LabelledDataset([str(t) for t in table[text_column]], labels, names, name=name)
    images = stack_images(list(table[image_column]), [f"{name}[{i}]" for i in range(len(table))], image_size)
    return LabelledDataset(images, labels, names, name=name)
