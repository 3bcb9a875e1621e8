"""Full precision inside autocast: the policy and the MACs-budget projection run in fp32.

Under bf16 autocast a finite-difference slope with a step of 1e-3 is below bf16's resolution
(8 bits of mantissa), so the projection's implicit gradient would be dropped or wrong; the
policy network is tiny, so fp32 costs nothing there."""

from __future__ import annotations

import contextlib

import torch


def full_precision(*devices: torch.device | str):
    """A context with autocast switched off on ``devices``' types (and the CPU)."""
    kinds = {"cpu", *(torch.device(d).type for d in devices)}
    stack = contextlib.ExitStack()
    for kind in sorted(kinds):
        if torch.amp.is_autocast_available(kind):
            stack.enter_context(torch.autocast(kind, enabled=False))
    return stack


def fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 when it is a half-precision tensor (bf16, fp16); else unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t
