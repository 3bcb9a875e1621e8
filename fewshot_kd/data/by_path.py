"""Load a dataset by path: an image folder, an ``.npz``, a CSV / JSONL text file, or a
Hugging Face ``save_to_disk`` folder (each alone, or as ``train`` + ``test`` splits).

=============================  ============================================================
``DIR/<class>/<image>``        torchvision's ImageFolder layout (``DIR/train/<class>/...``
                               and ``DIR/test/<class>/...`` for given splits)
``FILE.npz``                   fields ``x`` (or ``jpeg`` + ``offsets``), ``y``, ``class_names``
                               (``DIR/train.npz`` + ``DIR/test.npz`` for given splits)
``FILE.csv`` / ``FILE.jsonl``  a text column and a label column (``.tsv`` and ``.gz`` too;
                               ``DIR/train.csv`` + ``DIR/test.csv`` for given splits)
``DIR`` from ``save_to_disk``  a ``Dataset`` or a ``DatasetDict`` with text or image rows
=============================  ============================================================

Without a test split, ``test_fraction`` of every class (seeded) is held out as ``test``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from fewshot_kd.data._split import stratified_split
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset
from fewshot_kd.data.hf_disk import TEST_SPLITS, hf_split_to_labelled, is_saved_dataset, load_saved
from fewshot_kd.data.image_folder import IMAGE_SUFFIXES, class_folders, read_image_folder
from fewshot_kd.data.text_table import TEXT_SUFFIXES, read_text_table
from fewshot_kd.errors import BadInputError, DataNotFoundError, NotEnoughExamplesError

TEST_FRACTION = 0.2
SPLIT_SEED = 0
FILE_SUFFIXES = (".npz", *TEXT_SUFFIXES)
FORMATS = ("an image folder (one sub-folder per class)", "an .npz file", "a .csv / .tsv / .jsonl text file",
           "a Hugging Face save_to_disk folder")
Reader = Callable[..., LabelledDataset]


def looks_like_path(name: str | os.PathLike) -> bool:
    """Whether a dataset name is meant as a path: it has a folder separator or a data file
    suffix, starts with ``.`` or ``~``, or exists."""
    text = os.fspath(name)
    return ("/" in text or os.sep in text or text.startswith((".", "~")) or text.lower().endswith(FILE_SUFFIXES)
            or Path(text).exists())


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(FILE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), path.suffix.lower())


def _read_npz(path: Path, name: str, class_names=None, **_) -> LabelledDataset:
    import zipfile

    from fewshot_kd.data._npz import read_image_npz
    from fewshot_kd.files import reading

    with reading(path, ".npz file", (ValueError, OSError, EOFError, zipfile.BadZipFile)):
        return read_image_npz(path, name, class_names)


def _read_text(path: Path, name: str, class_names=None, text_column="text", label_column="label", **_) -> LabelledDataset:
    return read_text_table(path, name, text_column, label_column, class_names)


def _read_images(path: Path, name: str, class_names=None, image_size=None, **_) -> LabelledDataset:
    return read_image_folder(path, name, image_size, class_names)


def _file_reader(path: Path) -> Reader:
    if _suffix(path) == ".npz":
        return _read_npz
    if _suffix(path) in TEXT_SUFFIXES:
        return _read_text
    raise BadInputError(f"{path}: unknown data format {path.suffix or '(no suffix)'!r}; pass {', '.join(FORMATS)}")


def hold_out_test(full: LabelledDataset, name: str, test_fraction: float = TEST_FRACTION,
                  seed: int = SPLIT_SEED) -> DatasetSplits:
    """``train`` / ``test`` splits of one set: ``test_fraction`` of every class, seeded."""
    train, test = stratified_split(full.labels, test_fraction, seed)
    if len(test) == 0 or len(train) == 0:
        raise NotEnoughExamplesError(f"{name}: {len(full)} examples are too few to hold out a test split; add "
                                     f"examples, or give train and test splits (e.g. train/ and test/ folders)")
    return DatasetSplits(name, {"train": full.subset(train, f"{name}/train"), "test": full.subset(test, f"{name}/test")})


def _given_splits(folder: Path) -> tuple[Path, Path, Reader] | None:
    """``(train, test, reader)`` when ``folder`` holds train and test splits of one format."""
    for suffix in FILE_SUFFIXES:
        train = folder / f"train{suffix}"
        tests = [folder / f"{t}{suffix}" for t in TEST_SPLITS if (folder / f"{t}{suffix}").is_file()]
        if train.is_file() and tests:
            return train, tests[0], _file_reader(train)
    tests = [folder / t for t in TEST_SPLITS if (folder / t).is_dir()]
    if (folder / "train").is_dir() and tests:
        return folder / "train", tests[0], _read_images
    return None


def _from_saved(folder: Path, name: str, test_fraction: float, seed: int, options: dict) -> DatasetSplits:
    tables = load_saved(folder)
    train_key = "train" if "train" in tables else next(iter(tables))
    test_key = next((k for k in TEST_SPLITS if k in tables), None)
    if test_key is None:
        return hold_out_test(hf_split_to_labelled(tables[train_key], name, **options), name, test_fraction, seed)
    train = hf_split_to_labelled(tables[train_key], f"{name}/train", **options)
    test = hf_split_to_labelled(tables[test_key], f"{name}/test", class_names=train.class_names, **options)
    return DatasetSplits(name, {"train": train, "test": test})


def load_data_path(path: str | os.PathLike, *, image_size: int | None = None, text_column: str = "text",
                   label_column: str = "label", test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED,
                   **ignored) -> DatasetSplits:
    """The dataset at ``path`` as ``train`` / ``test`` splits (see the module docstring for the
    formats). ``image_size`` resizes images to a square; ``text_column`` / ``label_column``
    name a table's columns. Other keywords (``data_root``, ``download``) are accepted and ignored."""
    path = Path(path).expanduser()
    name = path.name.removesuffix(_suffix(path)) if path.is_file() else path.name
    options = {"image_size": image_size, "text_column": text_column, "label_column": label_column}
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist; pass {', '.join(FORMATS)}, or a registered dataset name "
                                f"(fewshot_kd.list_datasets())")
    if path.is_file():
        return hold_out_test(_file_reader(path)(path, name, **options), name, test_fraction, seed)
    if is_saved_dataset(path):
        return _from_saved(path, name, test_fraction, seed, options)
    given = _given_splits(path)
    if given is not None:
        train_path, test_path, reader = given
        train = reader(train_path, f"{name}/train", **options)
        test = reader(test_path, f"{name}/test", class_names=train.class_names, **options)
        return DatasetSplits(name, {"train": train, "test": test})
    if class_folders(path):
        return hold_out_test(read_image_folder(path, name, image_size), name, test_fraction, seed)
    files = sorted(p.name for p in path.iterdir())[:8]
    raise BadInputError(f"{path}: unknown data format (it holds {files or 'nothing'}); pass {', '.join(FORMATS)}. "
                        f"Images need one sub-folder per class with {', '.join(IMAGE_SUFFIXES[:3])}... files")
