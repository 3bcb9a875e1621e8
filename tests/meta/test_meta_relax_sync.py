"""The budget bisection never reads a value back to the host (one sync per step on a GPU
would be 50 per episode) and gives the same ratios and gradients as the branching loop."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fewshot_kd.meta.relax import project_ratios

LAYER_MACS = torch.tensor([4.0, 3.0, 2.0, 1.0, 5.0])


def _macs_fraction(ratios: torch.Tensor) -> torch.Tensor:
    kept = 1 - ratios
    return (LAYER_MACS * kept * torch.roll(kept, 1)).sum() / LAYER_MACS.sum()


def _branching(preferences, macs_fraction, target, max_ratio=0.9, iters=50):
    """The former loop: ``if frac(mid) > target`` on the host."""
    z = preferences.detach()

    def frac(b, prefs=z):
        return macs_fraction(max_ratio * torch.sigmoid(prefs + b))

    lo, hi = torch.tensor(-30.0), torch.tensor(30.0)
    with torch.no_grad():
        for _ in range(iters):
            mid = (lo + hi) / 2
            if frac(mid) > target:
                lo = mid
            else:
                hi = mid
        b0 = (lo + hi) / 2
        slope = (frac(b0 + 1e-3) - frac(b0 - 1e-3)) / 2e-3
    if slope.abs() < 1e-8:
        return max_ratio * torch.sigmoid(preferences + b0)
    b = b0 - (frac(b0, preferences) - target) / slope
    return max_ratio * torch.sigmoid(preferences + b)


class _HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def test_bisection_equals_the_branching_loop():
    generator = torch.Generator().manual_seed(0)
    for target in (0.2, 0.5, 0.8, 0.001):  # 0.001 cannot be met: every ratio saturates, no gradient step
        prefs = torch.randn(5, generator=generator, requires_grad=True)
        weights = torch.rand(5, generator=generator)
        new = project_ratios(prefs, _macs_fraction, target)
        (new_grad,) = torch.autograd.grad((new * weights).sum(), prefs)
        old = _branching(prefs, _macs_fraction, target)
        (old_grad,) = torch.autograd.grad((old * weights).sum(), prefs)
        assert torch.equal(new, old), target
        assert torch.equal(new_grad, old_grad), target


def test_bisection_reads_nothing_back_to_the_host():
    prefs = torch.randn(5, requires_grad=True)
    with _HostReads() as mode:
        ratios = project_ratios(prefs, _macs_fraction, 0.5)
        ratios.sum().backward()
    assert mode.reads == 0
    with _HostReads() as mode:
        _branching(prefs, _macs_fraction, 0.5)
    assert mode.reads >= 50  # the check sees a host read
