"""Hardware energy counters: Linux powercap (Intel / AMD RAPL) for the CPU, NVML for NVIDIA GPUs.

Each counter's :meth:`joules` is the energy since it was opened. A counter that cannot be read
raises :class:`EnergyCounterUnavailable` saying why, so the caller can fall back to an estimate.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import torch

POWERCAP_ROOT = Path("/sys/class/powercap")
"""Where Linux exposes RAPL zones; tests point :class:`RaplCounter` at a fake folder instead."""
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")


class EnergyCounterUnavailable(RuntimeError):
    """No usable energy counter here; the message says why."""


class RaplCounter:
    """The CPU packages' energy from powercap: the sum over top-level ``intel-rapl:<n>`` zones named
    ``package-*`` (``psys`` and sub-zones would count the same energy twice). ``energy_uj`` wraps at
    ``max_energy_range_uj``; a wrap between two reads is added back, so read at least once per wrap
    period (minutes at full load)."""

    method = "measured-rapl"

    def __init__(self, root: str | Path | None = None) -> None:
        root = Path(root) if root is not None else POWERCAP_ROOT
        zones = sorted(p for p in root.glob("intel-rapl:*") if _PACKAGE_ZONE.match(p.name)) if root.is_dir() else []
        self.zones = [z for z in zones if _read(z / "name").startswith("package")]
        if not self.zones:
            raise EnergyCounterUnavailable(f"no RAPL package zone under {root} (not Linux, or powercap is not exposed)")
        self.ranges = [int(_read(z / "max_energy_range_uj")) for z in self.zones]
        self.last = self._raw()
        self.total_uj = 0

    def _raw(self) -> list[int]:
        return [int(_read(z / "energy_uj")) for z in self.zones]

    def joules(self) -> float:
        now = self._raw()
        self.total_uj += sum(wrapped_delta(a, b, r) for a, b, r in zip(self.last, now, self.ranges))
        self.last = now
        return self.total_uj * 1e-6

    def describe(self) -> dict:
        return {"zones": [f"{z.name} ({_read(z / 'name')})" for z in self.zones],
                "scope": "whole CPU packages: idle draw and other processes included"}


def wrapped_delta(before: int, after: int, wrap: int) -> int:
    """``after - before`` of a counter that wraps to 0 at ``wrap`` (one wrap at most)."""
    return after - before if after >= before else after + wrap - before


class NvmlCounter:
    """A GPU's total energy since the driver loaded (``nvmlDeviceGetTotalEnergyConsumption``, in mJ;
    Volta and newer), through pynvml when installed, else the driver's libnvidia-ml directly.
    The NVML index is taken to be the torch device index (true unless ``CUDA_VISIBLE_DEVICES`` reorders)."""

    method = "measured-nvml"

    def __init__(self, device: torch.device) -> None:
        self.index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            self._read_mj = _pynvml_reader(self.index)
        except ImportError:
            self._read_mj = _ctypes_nvml_reader(self.index)
        self.start = self._read_mj()

    def joules(self) -> float:
        return (self._read_mj() - self.start) * 1e-3

    def describe(self) -> dict:
        return {"gpu_index": self.index, "scope": "whole GPU: idle draw and other processes included"}


def open_counter(device: torch.device, powercap_root: str | Path | None = None):
    """The energy counter of ``device`` (RAPL for the CPU, NVML for CUDA)."""
    if device.type == "cuda":
        return NvmlCounter(device)
    if device.type == "cpu":
        return RaplCounter(powercap_root)
    raise EnergyCounterUnavailable(f"no energy counter for device type {device.type!r}")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:  # RAPL's energy_uj is root-only since Linux 5.10 (CVE-2020-8694)
        raise EnergyCounterUnavailable(f"cannot read {path}: {error.strerror or error}") from None


def _pynvml_reader(index: int):
    import pynvml

    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as error:
        raise EnergyCounterUnavailable(f"NVML energy counter of GPU {index}: {error}") from None
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)


def _ctypes_nvml_reader(index: int):
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as error:
        raise EnergyCounterUnavailable(f"no pynvml and no libnvidia-ml.so.1 ({error})") from None
    handle, energy = ctypes.c_void_p(), ctypes.c_ulonglong()

    def check(code: int, what: str) -> None:
        if code != 0:
            raise EnergyCounterUnavailable(f"NVML {what} of GPU {index} failed with code {code}")

    check(nvml.nvmlInit_v2(), "init")
    check(nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)), "device handle")

    def read() -> int:
        check(nvml.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(energy)), "total energy")
        return energy.value

    read()
    return read
