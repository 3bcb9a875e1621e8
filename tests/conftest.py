"""Shared fixtures: the optional real-data root, determinism, GPU skipping."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd import create_model, load_dataset
from fewshot_kd.data.roots import resolve_data_root
from fewshot_kd.training import TrainConfig, fit


@pytest.fixture(scope="session")
def shared_data_root():
    """The real datasets and weights folder, or skip: set FEWSHOT_KD_DATA or place
    the data at ../shared/data to run these tests."""
    root = resolve_data_root()
    if root is None or not root.is_dir():
        pytest.skip("real data not found: set FEWSHOT_KD_DATA or provide ../shared/data")
    return root


@pytest.fixture(scope="session")
def shared_data_files(shared_data_root):
    """``need(*relative)``: the data root, or skip naming the files missing under it (a data
    folder from before those datasets were added)."""

    def need(*relative: str):
        missing = [r for r in relative if not (shared_data_root / r).is_file()]
        if missing:
            pytest.skip(f"real data incomplete: {', '.join(missing)} not found under {shared_data_root}")
        return shared_data_root

    return need


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled digits (a module may define its own ``digits``)."""
    return load_dataset("digits")


@pytest.fixture(scope="module")
def teacher(digits):
    """A small CNN trained on digits for 4 epochs, the adapt() tests' teacher (a module that
    needs another teacher defines its own ``teacher``)."""
    torch.manual_seed(0)
    model = create_model("small_cnn", in_channels=1, input_size=8, width=8, num_classes=10)
    fit(model, digits.train, TrainConfig(epochs=4, lr=5e-3, augment="none"), progress=False)
    return model.eval()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
