"""Online names (torchvision:*, hf:*): offline errors without network use, and conversion."""

from __future__ import annotations

import socket
import struct
import time

import datasets  # noqa: F401  (imported up front: the timing below measures the lookups only)
import numpy as np
import pytest
import torch
import torchvision  # noqa: F401

from fewshot_kd import list_datasets, load_dataset
from fewshot_kd.data import online
from fewshot_kd.errors import DataNotFoundError

TORCHVISION = ["CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "Omniglot", "SVHN"]
HUB = ["ag_news", "glue/sst2", "imdb", "trec", "rotten_tomatoes", "squad", "squad_v2", "wikitext"]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_KD_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def network_attempts(monkeypatch):
    """Record (rather than make) every outgoing connection or DNS lookup."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_online_names_are_registered():
    names = set(list_datasets())
    assert {f"torchvision:{n}" for n in TORCHVISION} <= names
    assert {f"hf:{n}" for n in HUB} <= names


@pytest.mark.parametrize("name", [f"torchvision:{n}" for n in TORCHVISION] + [f"hf:{n}" for n in HUB])
def test_missing_online_copy_says_download_true(name, empty_cache, network_attempts):
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset(name)
    assert "download=True" in str(caught.value) and str(empty_cache) in str(caught.value)
    assert network_attempts == []
    assert time.perf_counter() - start < 5  # no waiting on timeouts


def _write_idx(path, array: np.ndarray, type_code=0x08):
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_the_cache_is_converted(empty_cache, network_attempts):
    raw = empty_cache / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (5, 28, 28)), "t10k": rng.integers(0, 256, (3, 28, 28))}
    labels = {"train": np.array([0, 1, 9, 1, 0]), "t10k": np.array([7, 7, 2])}
    for part in ("train", "t10k"):
        _write_idx(raw / f"{part}-images-idx3-ubyte", images[part])
        _write_idx(raw / f"{part}-labels-idx1-ubyte", labels[part])
    splits = load_dataset("torchvision:MNIST")
    assert splits.train.inputs.shape == (5, 1, 28, 28) and splits.train.inputs.dtype == torch.uint8
    assert np.array_equal(splits.train.inputs[:, 0].numpy(), images["train"])
    assert splits.test.labels.tolist() == [7, 7, 2] and splits.num_classes == 10
    assert splits.class_names[0].startswith("0")
    assert network_attempts == []


def test_hub_text_fields_and_offline_flag(empty_cache, monkeypatch):
    import datasets
    import huggingface_hub.constants as hub_constants

    calls = []

    def fake_load_dataset(path, name=None, cache_dir=None, **kwargs):
        calls.append((path, name, cache_dir, datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE))
        features = datasets.Features({"sentence": datasets.Value("string"), "idx": datasets.Value("int32"),
                                      "label": datasets.ClassLabel(names=["negative", "positive"])})
        rows = {"train": (["good", "bad", "fine"], [1, 0, 1]), "validation": (["meh"], [0]), "test": (["?"], [-1])}
        return datasets.DatasetDict({
            split: datasets.Dataset.from_dict(
                {"sentence": t, "idx": list(range(len(t))), "label": y}, features=features
            )
            for split, (t, y) in rows.items()
        })

    offline_before = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_dataset("hf:glue/sst2")
    assert calls == [("nyu-mll/glue", "sst2", str(empty_cache / "hf_datasets"), True, True)]
    assert (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE) == offline_before  # restored
    assert splits.train.inputs == ["good", "bad", "fine"] and splits.train.labels.tolist() == [1, 0, 1]
    assert splits.test.inputs == ["meh"]  # GLUE's labelled validation set serves as test
    assert splits.class_names == ("negative", "positive")

    load_dataset("hf:glue/sst2", download=True)
    assert calls[-1][3:] == offline_before  # download=True leaves the user's own setting alone


def test_hub_specs_name_real_columns():
    specs = online.HUB_TEXT
    assert specs["glue/sst2"].text_field == "sentence" and specs["glue/sst2"].test_split == "validation"
    assert specs["trec"].label_field == "coarse_label" and len(specs["trec"].class_names) == 6
    assert specs["ag_news"].class_names == ("World", "Sports", "Business", "Sci/Tech")
