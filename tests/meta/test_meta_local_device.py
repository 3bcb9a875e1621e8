"""Under torchrun every rank takes its own GPU (``LOCAL_RANK``), not cuda:0."""

import torch

from fewshot_kd.meta.distributed import local_device


def test_cuda_rank_takes_its_local_gpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_device("cuda") == torch.device("cuda", 1)
    assert local_device("cuda:0") == torch.device("cuda", 0)  # an explicit index is kept
    assert local_device("cpu") == torch.device("cpu")


def test_without_torchrun_the_device_is_unchanged(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert local_device("cuda") == torch.device("cuda")
