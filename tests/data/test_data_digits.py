"""The embedded ``digits`` dataset and the stratified split it uses."""

from __future__ import annotations

import torch

from fewshot_kd import load_dataset
from fewshot_kd.data._split import stratified_split

# scikit-learn's digits: images per class 0..9 (a property of the bundled data)
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
# round(0.3 * n) of each, worked out by hand: 53.4, 54.6, 53.1, 54.9, 54.3, 54.6, 54.3, 53.7, 52.2, 54.0
DIGITS_TEST_COUNTS = [53, 55, 53, 55, 54, 55, 54, 54, 52, 54]


def test_digits_shapes_range_and_classes(tmp_path):
    splits = load_dataset("digits", data_root=tmp_path)  # needs no files at all
    assert set(splits) == {"train", "test"}
    assert splits.class_names == tuple(str(d) for d in range(10))
    for part in splits.values():
        assert part.inputs.dtype == torch.float32
        assert part.inputs.shape[1:] == (1, 8, 8)
        assert float(part.inputs.min()) == 0.0 and float(part.inputs.max()) == 1.0
        sixteenths = part.inputs * 16
        assert torch.equal(sixteenths, sixteenths.round())  # pixel counts 0..16 divided by 16
    assert len(splits.train) + len(splits.test) == 1797


def test_digits_split_is_stratified_70_30():
    splits = load_dataset("digits")
    assert splits.test.class_counts().tolist() == DIGITS_TEST_COUNTS
    total = splits.train.class_counts() + splits.test.class_counts()
    assert total.tolist() == DIGITS_CLASS_COUNTS


def test_digits_split_matches_the_index_split_and_is_seeded():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16
    labels = torch.as_tensor(bunch.target)
    train_idx, test_idx = stratified_split(labels, 0.3, seed=0)
    assert set(train_idx.tolist()).isdisjoint(test_idx.tolist())
    splits = load_dataset("digits")
    assert torch.equal(splits.train.inputs, images[train_idx])
    assert torch.equal(splits.test.inputs, images[test_idx])
    assert torch.equal(splits.test.labels, labels[test_idx])
    assert torch.equal(load_dataset("digits").test.inputs, splits.test.inputs)
    assert not torch.equal(load_dataset("digits", seed=1).test.inputs, splits.test.inputs)


def test_stratified_split_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # 5 of class 0, 10 of class 1
    train, test = stratified_split(labels, 0.2, seed=3)
    assert labels[test].tolist().count(0) == 1 and labels[test].tolist().count(1) == 2
    assert sorted(train.tolist() + test.tolist()) == list(range(15))
    assert torch.equal(test, stratified_split(labels, 0.2, seed=3)[1])
    assert torch.equal(test, test.sort().values)


def test_stratified_split_rejects_bad_fraction():
    import pytest

    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(torch.tensor([0, 1]), 1.0)
