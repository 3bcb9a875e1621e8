"""The named local-file datasets against the real files (skipped without them), and the
errors every one of them raises when its files are missing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from fewshot_kd import load_dataset
from fewshot_kd.data.local_files import CIFAR10_FILES, load_image_npz
from fewshot_kd.errors import DataNotFoundError

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# numbers below are quoted from the data folder's README
CIFAR_TEST_X_SHA256 = "5a6aa8185204d80b65d3dfb540696dadd5f10d185ded226a96665d3e0fc6259f"
CIFAR_TEST_EXACT_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
FASHION_X_SHA256 = {"train": "45f445dd10db027a214841d75209d034e4351e9c0b26233f186e38b8810c76fd",
                    "test": "4933391d016b481042c50a3302daa0c7c1cdee910a6e6e4dd0ddce5720ffdcac"}
DBPEDIA_CLASSES = ("Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                   "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork")
OMNIGLOT_CHARACTERS_PER_ALPHABET = {"Balinese": 24, "Early_Aramaic": 22, "Greek": 24, "Japanese_(katakana)": 47,
                                    "Korean": 40, "Latin": 26, "Sanskrit": 42, "Tagalog": 17}


def test_cifar10_test_splits(shared_data_root):
    # the named entry also decodes the train split (see test_data_cifar10_train.py); read the
    # two test files through the same generic loader it uses
    test, exact = (load_image_npz(CIFAR10_FILES[s], data_root=shared_data_root) for s in ("test", "test_exact"))
    assert test.class_names == exact.class_names == CIFAR_CLASSES
    assert test.inputs.shape == (10000, 3, 32, 32) and test.inputs.dtype == torch.uint8
    assert test.class_counts().tolist() == [1000] * 10
    hwc = np.ascontiguousarray(test.inputs.numpy().transpose(0, 2, 3, 1))
    assert hashlib.sha256(hwc.tobytes()).hexdigest() == CIFAR_TEST_X_SHA256  # NCHW layout is a pure transpose
    assert exact.inputs.shape == (1000, 3, 32, 32)
    assert exact.class_counts().tolist() == CIFAR_TEST_EXACT_COUNTS
    assert exact.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the original test batch starts so
    # each exact image is close to its JPEG copy (README: mean error 5.8/255) and far from a random one
    rows = torch.from_numpy(np.load(shared_data_root / "cifar10/cifar10_test_first1000_lossless.npz")["jpeg_row"])
    near = (exact.inputs.float() - test.inputs[rows.long()].float()).abs().mean()
    far = (exact.inputs.float() - test.inputs[rows.long().roll(1)].float()).abs().mean()
    assert 3 < near < 10 < far
    assert torch.equal(test.labels[rows.long()], exact.labels)


def test_omniglot(shared_data_root):
    splits = load_dataset("omniglot", data_root=shared_data_root)
    train, test = splits.train, splits.test
    assert splits.num_classes == 242 and len(train) == 3630 and len(test) == 1210
    assert train.class_counts().tolist() == [15] * 242 and test.class_counts().tolist() == [5] * 242
    assert train.inputs.shape[1:] == (1, 105, 105) and train.inputs.dtype == torch.uint8
    sample = train.inputs[::50]
    assert set(torch.unique(sample).tolist()) == {0, 255}
    assert float((sample == 0).float().mean()) < 0.2  # 0 is ink: strokes are the minority
    alphabets = {}
    for name in splits.class_names:
        alphabet, character = name.split("/")
        assert character.startswith("character")
        alphabets[alphabet] = alphabets.get(alphabet, 0) + 1
    assert alphabets == OMNIGLOT_CHARACTERS_PER_ALPHABET
    inverted = load_dataset("omniglot", data_root=shared_data_root, invert=True)
    assert torch.equal(inverted.test.inputs[:20], 255 - test.inputs[:20])


def test_fashion_mnist(shared_data_files):
    root = shared_data_files("fashion_mnist/train.npz", "fashion_mnist/test.npz")
    splits = load_dataset("fashion_mnist", data_root=root)
    assert splits.class_names == FASHION_CLASSES and splits.num_classes == 10
    for split, size in (("train", 60000), ("test", 10000)):
        data = splits[split]
        assert data.inputs.shape == (size, 1, 28, 28) and data.inputs.dtype == torch.uint8
        assert data.class_counts().tolist() == [size // 10] * 10
        # [N, 28, 28] in the file: the channel axis is added, pixels untouched (0 = background)
        assert hashlib.sha256(data.inputs.numpy().tobytes()).hexdigest() == FASHION_X_SHA256[split]
    assert abs(splits.train.inputs.float().mean().item() / 255 - 0.2860) < 1e-3


@pytest.mark.parametrize(
    "name, train_counts, test_counts, class_names",
    [
        ("sst2", [29780, 37569], [428, 444], ("negative", "positive")),
        ("ag_news", [2509, 2458, 2496, 2538], [1900] * 4, ("World", "Sports", "Business", "Sci/Tech")),
        # MR / SUBJ: 80/20 per class; round(5331 * 0.2) = 1066, round(5000 * 0.2) = 1000
        ("mr", [5331 - 1066] * 2, [1066] * 2, ("negative", "positive")),
        ("subj", [4000] * 2, [1000] * 2, ("objective", "subjective")),
        # CR 1,366 / 2,405 and MPQA 7,292 / 3,311 rows per class, split 80/20 like MR
        ("cr", [1366 - 273, 2405 - 481], [273, 481], ("negative", "positive")),
        ("mpqa", [7292 - 1458, 3311 - 662], [1458, 662], ("negative", "positive")),
        # DBpedia-14: the 5,000-row validation subset is train; random draws, not stratified
        ("dbpedia", [350, 359, 376, 337, 332, 354, 353, 370, 357, 354, 372, 380, 369, 337],
         [364, 332, 362, 378, 334, 348, 358, 366, 367, 350, 382, 371, 361, 327], DBPEDIA_CLASSES),
    ],
)
def test_text_datasets(shared_data_files, name, train_counts, test_counts, class_names):
    folder = f"text/{name}"
    files = {"dbpedia": ("validation.jsonl.gz", "test.jsonl.gz"), "sst2": ("train.jsonl.gz",),
             "ag_news": ("train_subset.jsonl.gz",)}.get(name, ("all.jsonl.gz",))
    root = shared_data_files(*(f"{folder}/{f}" for f in (*files, "label_names.json")))
    splits = load_dataset(name, data_root=root)
    assert splits.class_names == class_names
    assert splits.train.class_counts().tolist() == train_counts
    assert splits.test.class_counts().tolist() == test_counts
    assert splits.train.is_text and all(isinstance(t, str) and t for t in splits.train.inputs[:100])
    assert splits.train.labels.dtype == torch.int64


def test_text_split_without_official_test_is_deterministic(shared_data_root):
    a = load_dataset("mr", data_root=shared_data_root)
    b = load_dataset("mr", data_root=shared_data_root)
    assert a.test.inputs == b.test.inputs
    assert load_dataset("mr", data_root=shared_data_root, seed=1).test.inputs != a.test.inputs


@pytest.mark.parametrize(
    "name, relative, online",
    [
        ("cifar10", "cifar10/cifar10_train_jpeg_bytes.npz", "torchvision:CIFAR10"),
        ("omniglot", "omniglot/omniglot_background_small.npz", "torchvision:Omniglot"),
        ("sst2", "text/sst2/train.jsonl.gz", "hf:glue/sst2"),
        ("ag_news", "text/ag_news/train_subset.jsonl.gz", "hf:ag_news"),
        ("mr", "text/mr/all.jsonl.gz", "hf:rotten_tomatoes"),
        ("subj", "text/subj/all.jsonl.gz", None),
        ("fashion_mnist", "fashion_mnist/train.npz", "torchvision:FashionMNIST"),
        ("cr", "text/cr/all.jsonl.gz", None),
        ("mpqa", "text/mpqa/all.jsonl.gz", None),
        ("dbpedia", "text/dbpedia/validation.jsonl.gz", "hf:dbpedia_14"),
    ],
)
def test_missing_files_raise_data_not_found(tmp_path, name, relative, online):
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset(name, data_root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / relative) in message and "FEWSHOT_KD_DATA" in message
    if online:
        assert online in message and "download=True" in message


def test_missing_files_found_through_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_KD_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="cifar10_train_jpeg_bytes.npz"):
        load_dataset("cifar10")
    with pytest.raises(DataNotFoundError, match="only reads local files"):
        load_dataset("cifar10", download=True)
