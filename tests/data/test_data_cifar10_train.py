"""The real CIFAR-10 train split: 50,000 JPEGs decoded once, then read from the cache."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot_kd import load_dataset
from fewshot_kd.data import _jpeg_cache


@pytest.mark.slow
def test_cifar10_train_is_decoded_once_then_cached(shared_data_root, monkeypatch):
    first = load_dataset("cifar10", data_root=shared_data_root)  # decodes (~10-60 s) unless cached
    source = shared_data_root / "cifar10/cifar10_train_jpeg_bytes.npz"
    assert _jpeg_cache.decoded_cache_path(source).is_file()

    def no_decoding(*_):
        raise AssertionError("the cached pixels should have been used")

    monkeypatch.setattr(_jpeg_cache, "decode_jpeg_bytes", no_decoding)
    splits = load_dataset("cifar10", data_root=shared_data_root)
    train = splits.train
    assert set(splits) == {"train", "test", "test_exact"}
    assert train.inputs.shape == (50000, 3, 32, 32) and train.inputs.dtype == torch.uint8
    assert train.class_counts().tolist() == [5000] * 10
    assert torch.equal(train.inputs, first.train.inputs)
    with np.load(source) as fields:  # spot-check against a direct Pillow decode
        data, offsets = fields["jpeg"], fields["offsets"]
        for i in (0, 12345, 49999):
            image = Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]].tobytes())).convert("RGB")
            assert np.array_equal(train.inputs[i].permute(1, 2, 0).numpy(), np.asarray(image))
