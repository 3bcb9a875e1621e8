"""Peak memory used by a call: CUDA allocator peak, or the process's resident-set peak on CPU.

On CPU the number is the growth of the process's peak resident set size (RSS) over its RSS
when the call starts: it covers every allocation that touched memory (tensors, Python
objects, libraries), not only torch's. Freed heap memory is first returned to the OS
(glibc ``malloc_trim``) so that reused pages count as growth. On Linux the kernel's high-water mark (``VmHWM``) is
reset through ``/proc/self/clear_refs`` before the call, so no peak is missed, but the
kernel batches RSS counts per CPU, so the number can be low by up to
:func:`rss_counter_slack_bytes` (512 KiB on 2 CPUs). Elsewhere RSS is sampled by a thread
every millisecond (a peak shorter than that can be missed).
Other threads' allocations during the call count too. ``tracemalloc`` is not used: it
sees only Python's allocator, not tensor memory.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MALLOC_TRIM = None  # glibc's malloc_trim, looked up on first use; False where absent


def measure_peak_memory(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[Any, int]:
    """Run ``fn()`` (wrap arguments in a ``lambda``); return ``(result, peak_bytes)``.

    ``device`` says which memory to watch: on ``"cuda"`` the growth of
    ``torch.cuda.max_memory_allocated`` over the allocated bytes at the start (its peak
    counter is reset); on ``"cpu"`` the peak RSS growth described in this module's doc.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type != "cpu":
        raise ValueError(f"peak memory can be measured on 'cpu' or 'cuda', not {device.type!r}")
    return _cpu_peak(fn)


def cpu_peak_method() -> str:
    """``"vmhwm"`` where the kernel high-water mark can be reset, else ``"sampling"``."""
    return "vmhwm" if _reset_high_water_mark() else "sampling"


def rss_counter_slack_bytes() -> int:
    """How far the kernel's RSS counters can lag behind the truth: Linux >= 6.2 batches
    updates per CPU (``max(32, 2 * cpus)`` pages each), older kernels per thread (64 pages
    each); this returns ``cpus * max(64, 2 * cpus)`` pages."""
    cpus = os.cpu_count() or 1
    return cpus * max(64, 2 * cpus) * resource.getpagesize()


def _cuda_peak(fn, device) -> tuple[Any, int]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    return result, max(0, torch.cuda.max_memory_allocated(device) - start)


def _cpu_peak(fn) -> tuple[Any, int]:
    _release_free_heap()
    if _reset_high_water_mark():
        start = _status_bytes("VmHWM")
        result = fn()
        return result, max(0, _status_bytes("VmHWM") - start)
    return _sampled_peak(fn)


def _release_free_heap() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``), so that memory the call
    reuses from earlier work shows up as RSS growth instead of hiding in resident pages."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return _status_bytes("VmHWM") is not None
    except (OSError, ValueError):
        return False


def _status_bytes(field: str) -> int | None:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def _current_rss() -> int:
    try:
        import psutil  # optional

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize()
    except OSError:  # no /proc: fall back to the lifetime peak, a lower bound of growth
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _sampled_peak(fn) -> tuple[Any, int]:
    start = _current_rss()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss())
            done.wait(0.001)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        result = fn()
        peak[0] = max(peak[0], _current_rss())
    finally:
        done.set()
        watcher.join()
    return result, max(0, peak[0] - start)
