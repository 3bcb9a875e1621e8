"""Two gloo processes split a meta-batch and all-reduce: the same meta-gradient as one process."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fewshot_kd.meta.episodes import load_family
from fewshot_kd.meta.policy_net import PolicyNet
from fewshot_kd.meta.train import meta_gradient
from meta_fixtures import make_tiny_config

INDICES = [0, 1, 2, 3]


def _gradient(rank: int, world: int) -> list[torch.Tensor]:
    config = make_tiny_config()
    torch.manual_seed(0)
    net = PolicyNet(config.hidden)
    families = [load_family("digits", config.ways)]
    meta_gradient(net, families, config, INDICES, rank, world)
    return [(p.grad if p.grad is not None else torch.zeros_like(p)).clone() for p in net.parameters()]


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        grads = _gradient(rank, world)
        torch.save(grads, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_meta_gradient_equals_single_process(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: Adam's first steps amplify float-order differences
    try:
        single = _gradient(0, 1)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        grads = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for a, b in zip(grads, single):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in single)
