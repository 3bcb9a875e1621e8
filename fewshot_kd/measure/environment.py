"""A description of the machine and software a measurement was taken on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch


def environment_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Versions, devices, CPU, thread counts and the git commit of ``path`` (default: the
    working directory). Never raises: what cannot be found is ``None``."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "fewshot_kd": _version("fewshot_kd"),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_available": _available_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "git_commit": _git(path, "rev-parse", "HEAD"),
        "git_dirty": _git_dirty(path),
    }


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo``, else what ``platform`` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _available_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return None


def _git(path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path or os.getcwd()), *args],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git_dirty(path) -> bool | None:
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)
