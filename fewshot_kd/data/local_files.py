"""Datasets read from local files in the shared-data formats (see the data folder's README).

Named entries: ``cifar10``, ``omniglot`` (and ``omniglot28``, at 28x28), ``fashion_mnist``, ``sst2``, ``ag_news``, ``mr``, ``subj``,
``cr``, ``mpqa``, ``dbpedia``. They find
their files under the data root (``data_root=``, else ``$FEWSHOT_KD_DATA``, else
``../shared/data``) and never download; a missing file raises
:class:`~fewshot_kd.errors.DataNotFoundError` naming the path and how to get the data.

For a new dataset in the same formats use :func:`load_image_npz` and :func:`load_text_jsonl`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fewshot_kd.data._hf import hf_cache_dir, hf_session, hf_to_labelled
from fewshot_kd.data._npz import read_image_npz
from fewshot_kd.data._split import stratified_split
from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset
from fewshot_kd.data.roots import ENV_VAR, require_file
from fewshot_kd.errors import DataNotFoundError, FewShotKDError

PathLike = str | os.PathLike

OMNIGLOT_TRAIN_DRAWERS = 15  # drawers 01..15 train, 16..20 test, for every character
TEXT_TEST_FRACTION = 0.2  # MR / SUBJ / CR / MPQA have no official split
TEXT_SPLIT_SEED = 0


def _how_to_get(relative: str, online: str | None, download: bool) -> str:
    folder = relative.split("/")[0]
    hint = f"Set {ENV_VAR} (or pass data_root=...) to a folder holding {folder}/ in the shared-data layout."
    if online:
        hint += f" Or use load_dataset({online!r}, download=True) to fetch the standard copy."
    if download:
        hint += " (download=True has no effect here: this entry only reads local files.)"
    return hint


def locate(path: PathLike, data_root: PathLike | None = None, how_to_get: str = "") -> Path:
    """An absolute ``path`` as is, a relative one under the data root; a missing file raises
    :class:`DataNotFoundError` naming the path looked at."""
    path = Path(path).expanduser()
    if path.is_absolute():
        if not path.is_file():
            raise DataNotFoundError(f"{path} does not exist. {how_to_get}".strip())
        return path
    return require_file(data_root, path.as_posix(), how_to_get or _how_to_get(path.as_posix(), None, False))


def load_image_npz(
    path: PathLike,
    *,
    data_root: PathLike | None = None,
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    channels_last: bool | None = None,
    how_to_get: str = "",
) -> LabelledDataset:
    """One image split from an ``.npz`` with ``y``, ``class_names`` and either ``x``
    (``[N,H,W]``, ``[N,H,W,C]`` or ``[N,C,H,W]``) or ``jpeg`` + ``offsets`` (JPEG files, decoded
    with Pillow once and cached under ``$FEWSHOT_KD_CACHE``). Images come back NCHW, ``uint8``
    kept as ``uint8``; grayscale as ``[N, 1, H, W]``. ``path`` is absolute or relative to the data root."""
    file = locate(path, data_root, how_to_get)
    return read_image_npz(file, name or file.stem, class_names, channels_last)


def _read_label_names(
    label_names: Sequence[str] | PathLike | None, train_file: Path, data_root, how_to_get: str
) -> tuple[str, ...]:
    if label_names is None:
        label_names = train_file.parent / "label_names.json"
    if isinstance(label_names, (str, os.PathLike)):
        names = json.loads(locate(label_names, data_root, how_to_get).read_text(encoding="utf-8"))
        if not isinstance(names, list):
            raise FewShotKDError(f"{label_names} must hold a JSON list of class names, got {type(names).__name__}")
        return tuple(str(n) for n in names)
    return tuple(str(n) for n in label_names)


def load_text_jsonl(
    train: PathLike,
    test: PathLike | None = None,
    label_names: Sequence[str] | PathLike | None = None,
    *,
    data_root: PathLike | None = None,
    name: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    test_fraction: float = TEXT_TEST_FRACTION,
    seed: int = TEXT_SPLIT_SEED,
    how_to_get: str = "",
) -> DatasetSplits:
    """Text ``train``/``test`` splits from JSON Lines files (``.jsonl`` or ``.jsonl.gz``, rows
    ``{"text": str, "label": int}``), read through Hugging Face ``datasets`` (offline, cached
    under ``$FEWSHOT_KD_CACHE``). Without ``test`` the train file is split, stratified by label,
    ``test_fraction`` to test, seeded. ``label_names`` is a list, a JSON file, or ``None`` for
    ``label_names.json`` beside ``train``."""
    train_file = locate(train, data_root, how_to_get)
    files = {"train": str(train_file)}
    if test is not None:
        files["test"] = str(locate(test, data_root, how_to_get))
    names = _read_label_names(label_names, train_file, data_root, how_to_get)
    title = name or train_file.parent.name
    with hf_session(offline=True) as datasets:
        loaded = datasets.load_dataset("json", data_files=files, cache_dir=str(hf_cache_dir()))
        splits = {
            split: hf_to_labelled(loaded[split], text_field, label_field, names, f"{title}/{split}") for split in files
        }
    if test is None:
        train_idx, test_idx = stratified_split(splits["train"].labels, test_fraction, seed)
        full = splits["train"]
        splits = {"train": full.subset(train_idx, f"{title}/train"), "test": full.subset(test_idx, f"{title}/test")}
    return DatasetSplits(title, splits)


# --- named entries -------------------------------------------------------------------------

CIFAR10_FILES = {
    "train": "cifar10/cifar10_train_jpeg_bytes.npz",
    "test": "cifar10/cifar10_test_jpeg.npz",
    "test_exact": "cifar10/cifar10_test_first1000_lossless.npz",
}


@register_dataset("cifar10", "CIFAR-10 from local files: JPEG train 50k / JPEG test 10k / pixel-exact test_exact 1k")
def load_cifar10(data_root: PathLike | None = None, download: bool = False) -> DatasetSplits:
    """CIFAR-10 as ``uint8 [N, 3, 32, 32]``: ``train`` (50,000, decoded once from JPEG bytes and
    cached), ``test`` (10,000 JPEG re-encodings, a shifted CIFAR-10) and ``test_exact`` (the first
    1,000 original test images, pixel-exact)."""
    splits = {}
    for split, relative in CIFAR10_FILES.items():
        how = _how_to_get(relative, "torchvision:CIFAR10", download)
        splits[split] = load_image_npz(relative, data_root=data_root, name=f"cifar10/{split}", how_to_get=how)
    return DatasetSplits("cifar10", splits)


OMNIGLOT_FILE = "omniglot/omniglot_background_small.npz"


@register_dataset("omniglot", "Omniglot background-small (242 characters x 20 drawers) from a local file")
def load_omniglot(data_root: PathLike | None = None, download: bool = False, invert: bool = False) -> DatasetSplits:
    """Omniglot, one class per character (``"Alphabet/characterNN"``), ``uint8 [N, 1, 105, 105]``
    as in the file: 0 = ink stroke, 255 = background (``invert=True``: 255 = stroke). Every
    character's drawers 01-15 are ``train`` and 16-20 ``test`` (3,630 / 1,210 images)."""
    how = _how_to_get(OMNIGLOT_FILE, "torchvision:Omniglot", download)
    full = load_image_npz(OMNIGLOT_FILE, data_root=data_root, name="omniglot", how_to_get=how)
    if invert:
        full.inputs = 255 - full.inputs
    with np.load(locate(OMNIGLOT_FILE, data_root, how)) as fields:
        drawer = torch.from_numpy(fields["drawer"].astype(np.int64))
    is_train = drawer <= OMNIGLOT_TRAIN_DRAWERS
    return DatasetSplits(
        "omniglot",
        {
            "train": full.subset(torch.nonzero(is_train).flatten(), "omniglot/train"),
            "test": full.subset(torch.nonzero(~is_train).flatten(), "omniglot/test"),
        },
    )


OMNIGLOT_SMALL_SIZE = 28


@register_dataset("omniglot28", "Omniglot background-small at 28x28 (area-resized), ink = 255: the size few-shot work uses")
def load_omniglot28(data_root: PathLike | None = None, download: bool = False) -> DatasetSplits:
    """:func:`load_omniglot` with every image area-averaged to 28x28 and inverted (``uint8``,
    255 = ink stroke, 0 = background, as MNIST), the resolution of the few-shot literature
    (Vinyals et al. 2016; Finn et al. 2017): a CNN learns the 242 characters from 5 drawers
    each at this size on a CPU, where the 105x105 originals took minutes an epoch."""
    splits = load_omniglot(data_root, download, invert=True)
    return DatasetSplits("omniglot28", {name: _area_resized(split, OMNIGLOT_SMALL_SIZE, f"omniglot28/{name}")
                                        for name, split in splits.items()})


def _area_resized(data: LabelledDataset, size: int, name: str) -> LabelledDataset:
    import torch.nn.functional as F

    small = F.interpolate(data.inputs.float(), size=(size, size), mode="area")
    return LabelledDataset(small.round().clamp(0, 255).to(torch.uint8), data.labels, data.class_names, name)


FASHION_MNIST_FILES = {"train": "fashion_mnist/train.npz", "test": "fashion_mnist/test.npz"}


@register_dataset("fashion_mnist", "Fashion-MNIST from local files: train 60,000 / test 10,000, 10 classes, 28x28 grey")
def load_fashion_mnist(data_root: PathLike | None = None, download: bool = False) -> DatasetSplits:
    """Fashion-MNIST as ``uint8 [N, 1, 28, 28]`` (0 = background): ``train`` 60,000 and
    ``test`` 10,000, 10 classes, rows sorted by class as in the files (the original order is
    not recoverable; every consumer draws seeded stratified subsets)."""
    splits = {}
    for split, relative in FASHION_MNIST_FILES.items():
        how = _how_to_get(relative, "torchvision:FashionMNIST", download)
        splits[split] = load_image_npz(relative, data_root=data_root, name=f"fashion_mnist/{split}", how_to_get=how)
    return DatasetSplits("fashion_mnist", splits)


def _text_entry(name: str, train: str, test: str | None, online: str | None):
    def load(data_root: PathLike | None = None, download: bool = False, **kwargs) -> DatasetSplits:
        how = _how_to_get(train, online, download)
        return load_text_jsonl(train, test, f"{Path(train).parent.as_posix()}/label_names.json",
                               data_root=data_root, name=name, how_to_get=how, **kwargs)

    load.__name__ = f"load_{name}"
    return load


_TEXT_ENTRIES = {
    "sst2": ("text/sst2/train.jsonl.gz", "text/sst2/validation.jsonl.gz", "hf:glue/sst2",
             "SST-2 (GLUE) from local files: train 67,349 / validation as test 872, 2 classes"),
    "ag_news": ("text/ag_news/train_subset.jsonl.gz", "text/ag_news/test.jsonl.gz", "hf:ag_news",
                "AG News from local files: 10,001-row train subset / test 7,600, 4 classes"),
    "mr": ("text/mr/all.jsonl.gz", None, "hf:rotten_tomatoes",
           "MR movie-review polarity from a local file, seeded stratified 80/20 split, 2 classes"),
    "subj": ("text/subj/all.jsonl.gz", None, None,
             "SUBJ subjectivity from a local file, seeded stratified 80/20 split, 2 classes"),
    "cr": ("text/cr/all.jsonl.gz", None, None,
           "CR customer-review polarity (SentEval) from a local file, seeded stratified 80/20 split, 2 classes"),
    "mpqa": ("text/mpqa/all.jsonl.gz", None, None,
             "MPQA opinion polarity (SentEval) from a local file, seeded stratified 80/20 split, 2 classes"),
    "dbpedia": ("text/dbpedia/validation.jsonl.gz", "text/dbpedia/test.jsonl.gz", "hf:dbpedia_14",
                "DBpedia-14 from local files: a 5,000-row subset as train / 5,000-row test, 14 classes"),
}
for _name, (_train, _test, _online, _help) in _TEXT_ENTRIES.items():
    register_dataset(_name, _help)(_text_entry(_name, _train, _test, _online))
