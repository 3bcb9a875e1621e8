"""Shared fixtures: the optional real-data root, determinism, GPU skipping."""

from __future__ import annotations

import pytest
import torch

from fewshot_kd.data.roots import resolve_data_root


@pytest.fixture(scope="session")
def shared_data_root():
    """The real datasets and weights folder, or skip: set FEWSHOT_KD_DATA or place
    the data at ../shared/data to run these tests."""
    root = resolve_data_root()
    if root is None or not root.is_dir():
        pytest.skip("real data not found: set FEWSHOT_KD_DATA or provide ../shared/data")
    return root


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
