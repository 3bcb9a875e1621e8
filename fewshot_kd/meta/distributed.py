"""Episodes split over ranks, meta-gradients all-reduced: PyTorch's own distributed engine
(``torchrun --nproc_per_node=N -m fewshot_kd.meta_train``; gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def local_device(device: torch.device | str) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA device without an index when
    torchrun set ``LOCAL_RANK`` (one GPU per rank); any other device unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def init_from_env(device: torch.device | str) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when torchrun's variables are
    set. On CUDA the device is this rank's GPU (:func:`local_device`), made current first."""
    device = local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), device
    return 0, 1, device


def collective_device() -> torch.device:
    """Where the process group's collectives take tensors: this rank's GPU under NCCL (which
    refuses CPU tensors), the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


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
    """``values`` summed over the ranks, in float64 on :func:`collective_device`."""
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()
