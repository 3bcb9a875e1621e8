"""A dispatch-level check that training runs on the asked device: every op autograd runs
backward is recorded when it writes a tensor elsewhere (no mocks, no patched library code)."""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_leaves
from torch.utils._python_dispatch import TorchDispatchMode


class BackwardDeviceAudit(TorchDispatchMode):
    """``off_device``: names of backward ops whose outputs left ``device``'s type."""

    def __init__(self, device: str | torch.device) -> None:
        super().__init__()
        self.kind = torch.device(device).type
        self.off_device: list[str] = []
        self.backward_ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if torch._C._current_autograd_node() is not None:
            self.backward_ops += 1
            if any(isinstance(t, torch.Tensor) and t.device.type != self.kind for t in tree_leaves(out)):
                self.off_device.append(str(func))
        return out
