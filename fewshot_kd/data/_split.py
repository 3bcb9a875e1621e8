"""Deterministic stratified index splits and caps."""

from __future__ import annotations

import hashlib

import torch


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, test)``: every class puts ``round(n_c * test_fraction)`` of its
    ``n_c`` members in test, chosen by a seeded permutation. Both are sorted ascending."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def stratified_cap_indices(labels: torch.Tensor, limit: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of at most ``limit`` examples, each class ``floor(share * limit)``
    of them, the first met in a seeded permutation (all indices when ``limit`` is ``None``
    or not below the count)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    if limit is None or len(labels) <= limit:
        return torch.arange(len(labels))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    counts = torch.bincount(labels).double()
    quota = torch.floor(counts / counts.sum() * limit).long()
    taken = torch.zeros_like(quota)
    keep = []
    for i in order.tolist():
        c = int(labels[i])
        if taken[c] < quota[c]:
            taken[c] += 1
            keep.append(i)
    return torch.tensor(sorted(keep), dtype=torch.long)


def indices_digest(indices: torch.Tensor) -> str:
    """A short checksum of a set of indices (order-free), to record which examples were used."""
    values = sorted(int(i) for i in torch.as_tensor(indices).flatten().tolist())
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()[:16]
