"""``digits``: scikit-learn's bundled 8x8 handwritten digits, the offline default dataset.

1,797 images of 10 classes, shipped inside scikit-learn, so it needs no files and no
network. Inputs are ``float32 [N, 1, 8, 8]`` in ``[0, 1]`` (pixel counts 0..16 divided
by 16); the train/test split is stratified, 70/30, seed 0.
"""

from __future__ import annotations

import torch

from fewshot_kd.data._split import stratified_split
from fewshot_kd.data.catalog import register_dataset
from fewshot_kd.data.dataset import DatasetSplits, LabelledDataset

TEST_FRACTION = 0.3
SPLIT_SEED = 0


@register_dataset("digits", "scikit-learn 8x8 digits (1,797 images, 10 classes), bundled, no download")
def load_digits(
    data_root=None, download: bool = False, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> DatasetSplits:
    """The digits as ``DatasetSplits`` with ``train``/``test``. ``data_root`` and
    ``download`` are accepted for a uniform signature and ignored."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    names = tuple(str(int(c)) for c in bunch.target_names)
    full = LabelledDataset(images, labels, names, name="digits")
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return DatasetSplits(
        "digits",
        {"train": full.subset(train_idx, "digits/train"), "test": full.subset(test_idx, "digits/test")},
    )
