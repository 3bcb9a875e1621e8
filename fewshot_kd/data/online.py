"""The standard datasets by their usual names, fetched by torchvision or Hugging Face ``datasets``.

``torchvision:<Class>`` (CIFAR10, CIFAR100, MNIST, FashionMNIST, Omniglot, SVHN) keep their
files under ``$FEWSHOT_KD_CACHE/torchvision``; ``hf:<name>`` (ag_news, glue/sst2, imdb, trec,
rotten_tomatoes) under ``$FEWSHOT_KD_CACHE/hf_datasets``. With ``download=False`` (the
default) nothing touches the network: a copy missing from the cache raises
:class:`~fewshot_kd.errors.DataNotFoundError` that says to pass ``download=True``.

Images come back ``uint8`` NCHW (grayscale ``[N, 1, H, W]``), text as ``list[str]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fewshot_kd.data._hf import hf_cache_dir, hf_session, hf_to_labelled
from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset
from fewshot_kd.data.roots import cache_dir
from fewshot_kd.errors import DataNotFoundError

OMNIGLOT_TRAIN_DRAWERS = 15  # same per-character split as the local ``omniglot`` entry


def torchvision_root() -> Path:
    """Where torchvision datasets are looked for and downloaded to."""
    return cache_dir() / "torchvision"


def _not_found(source: str, where: Path | str, error: Exception, download: bool) -> DataNotFoundError:
    if download:
        return DataNotFoundError(f"could not fetch {source} into {where}: {type(error).__name__}: {error}. "
                                 f"Check the network connection, or use a local copy (see list_datasets()).")
    return DataNotFoundError(f"{source} is not in {where}. Pass download=True to fetch it (needs internet), "
                             f"or set FEWSHOT_KD_CACHE to a folder that already holds it.")


def _labelled(images, labels, class_names, name: str, channels_last: bool) -> LabelledDataset:
    images = torch.as_tensor(np.asarray(images), dtype=torch.uint8)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif channels_last:
        images = images.permute(0, 3, 1, 2).contiguous()
    return LabelledDataset(images, torch.as_tensor(np.asarray(labels), dtype=torch.long), class_names, name)


def _torchvision(class_name: str, download: bool, **kwargs):
    import torchvision

    root = torchvision_root()
    try:
        return getattr(torchvision.datasets, class_name)(str(root), download=download, **kwargs)
    except (RuntimeError, OSError) as error:
        raise _not_found(f"torchvision {class_name}", root, error, download) from error


def _train_flag_loader(class_name: str, channels_last: bool) -> Callable[..., DatasetSplits]:
    """CIFAR10/100, MNIST, FashionMNIST: ``train=True/False``, fields ``data/targets/classes``."""

    def load(data_root=None, download: bool = False) -> DatasetSplits:
        splits = {}
        for split, train in (("train", True), ("test", False)):
            ds = _torchvision(class_name, download, train=train)
            splits[split] = _labelled(ds.data, ds.targets, ds.classes, f"{class_name}/{split}", channels_last)
        return DatasetSplits(f"torchvision:{class_name}", splits)

    return load


def _load_svhn(data_root=None, download: bool = False) -> DatasetSplits:
    splits = {}
    for split in ("train", "test"):
        ds = _torchvision("SVHN", download, split=split)
        splits[split] = _labelled(ds.data, ds.labels, [str(d) for d in range(10)], f"SVHN/{split}", False)
    return DatasetSplits("torchvision:SVHN", splits)


def _load_omniglot(data_root=None, download: bool = False) -> DatasetSplits:
    """Background alphabets (964 characters), drawers 01-15 train / 16-20 test per character;
    0 = ink, 255 = background, as in the local ``omniglot`` entry."""
    from PIL import Image

    ds = _torchvision("Omniglot", download, background=True)
    images, labels, drawers = [], [], []
    for image_name, character in ds._flat_character_images:
        path = os.path.join(ds.target_folder, ds._characters[character], image_name)
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("L")))
        labels.append(character)
        drawers.append(int(Path(image_name).stem.split("_")[-1]))
    full = _labelled(np.stack(images), labels, ds._characters, "Omniglot", False)
    is_train = torch.tensor(drawers) <= OMNIGLOT_TRAIN_DRAWERS
    return DatasetSplits("torchvision:Omniglot", {
        "train": full.subset(torch.nonzero(is_train).flatten(), "Omniglot/train"),
        "test": full.subset(torch.nonzero(~is_train).flatten(), "Omniglot/test"),
    })


_TORCHVISION = {
    "CIFAR10": _train_flag_loader("CIFAR10", channels_last=True),
    "CIFAR100": _train_flag_loader("CIFAR100", channels_last=True),
    "MNIST": _train_flag_loader("MNIST", channels_last=False),
    "FashionMNIST": _train_flag_loader("FashionMNIST", channels_last=False),
    "SVHN": _load_svhn,
    "Omniglot": _load_omniglot,
}
for _name, _loader in _TORCHVISION.items():
    register_dataset(f"torchvision:{_name}", f"torchvision {_name} (download=True fetches it)")(_loader)


@dataclass(frozen=True)
class HubTextSpec:
    """Where a Hugging Face hub text dataset keeps its text, labels and splits."""

    repo: str
    config: str | None
    text_field: str
    label_field: str
    class_names: tuple[str, ...]  # used when the label column is not a ClassLabel
    train_split: str = "train"
    test_split: str = "test"
    extra_splits: dict[str, str] = field(default_factory=dict)


HUB_TEXT = {
    "ag_news": HubTextSpec("fancyzhx/ag_news", None, "text", "label", ("World", "Sports", "Business", "Sci/Tech")),
    "glue/sst2": HubTextSpec("nyu-mll/glue", "sst2", "sentence", "label", ("negative", "positive"),
                             test_split="validation"),  # GLUE's test labels are hidden
    "imdb": HubTextSpec("stanfordnlp/imdb", None, "text", "label", ("neg", "pos")),
    "trec": HubTextSpec("CogComp/trec", None, "text", "coarse_label", ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM")),
    "rotten_tomatoes": HubTextSpec("cornell-movie-review-data/rotten_tomatoes", None, "text", "label", ("neg", "pos"),
                                   extra_splits={"validation": "validation"}),
}


def load_hub_text(spec: HubTextSpec, download: bool = False, name: str | None = None) -> DatasetSplits:
    """A hub text dataset as ``DatasetSplits``; ``download=False`` reads only the local cache."""
    name = name or spec.repo
    wanted = {"train": spec.train_split, "test": spec.test_split, **spec.extra_splits}
    where = hf_cache_dir()
    with hf_session(offline=not download) as datasets:
        try:
            loaded = datasets.load_dataset(spec.repo, spec.config, cache_dir=str(where))
        except Exception as error:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError...
            raise _not_found(f"Hugging Face dataset {spec.repo!r}" + (f" ({spec.config})" if spec.config else ""),
                             where, error, download) from error
        feature = loaded[spec.train_split].features[spec.label_field]
        class_names = tuple(getattr(feature, "names", None) or spec.class_names)
        splits = {ours: hf_to_labelled(loaded[theirs], spec.text_field, spec.label_field, class_names, f"{name}/{ours}")
                  for ours, theirs in wanted.items()}
    return DatasetSplits(name, splits)


def _hub_loader(short: str, spec: HubTextSpec) -> Callable[..., DatasetSplits]:
    def load(data_root=None, download: bool = False) -> DatasetSplits:
        return load_hub_text(spec, download, name=f"hf:{short}")

    return load


for _short, _spec in HUB_TEXT.items():
    register_dataset(f"hf:{_short}", f"Hugging Face {_spec.repo}" + (f" ({_spec.config})" if _spec.config else "")
                     + f", text={_spec.text_field!r}, label={_spec.label_field!r}")(_hub_loader(_short, _spec))
