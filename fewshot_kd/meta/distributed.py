"""Episodes split over ranks, meta-gradients all-reduced: PyTorch's own distributed engine
(``torchrun --nproc_per_node=N -m fewshot_kd.meta_train``; gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``; joins the process group when torchrun's variables are set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_episodes(indices: list[int], rank: int, world: int) -> list[int]:
    return [i for position, i in enumerate(indices) if position % world == rank]


def all_reduce_gradients_(parameters, world: int) -> None:
    """Sum every parameter's gradient over the ranks (each rank already divided its share
    by the global meta-batch size, so the sum is the mean over the whole meta-batch)."""
    if world == 1:
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def all_reduce_metrics(values: list[float], world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()
