"""What the CPU's integer kernels can do, for choices that depend on it."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def x86_without_vnni() -> bool:
    """True on an x86 CPU whose flags (Linux ``/proc/cpuinfo``) list no VNNI instructions. Its
    u8 x s8 int8 products go through 16-bit sums that can saturate, so onnxruntime advises 7-bit
    weights (``reduce_range``) there. False elsewhere, or when the flags cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return flags is not None and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)
