"""Joules per inference: measured with the platform's energy counter where it has one, otherwise
estimated from op counts and bytes moved (:mod:`fewshot_kd.measure.energy_estimate`).

Every figure carries its ``method``: ``"measured-rapl"`` (CPU, Linux powercap), ``"measured-nvml"``
(NVIDIA GPU) or ``"estimated-horowitz2014"``; an estimate made because a counter was unusable
says why in ``details["not_measured"]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from fewshot_kd.measure.energy_counters import EnergyCounterUnavailable, open_counter
from fewshot_kd.measure.energy_estimate import METHOD as ESTIMATED, estimate_joules
from fewshot_kd.model_io import CallableModule, batch_size_of, call_model, eval_mode, model_device, to_device


@dataclass(frozen=True)
class Energy:
    """Energy of one inference (one example) in joules, how it was obtained, and what went into it."""

    joules_per_inference: float
    method: str
    details: dict = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.method.startswith("measured")

    @property
    def label(self) -> str:
        """``"meas."`` or ``"est."``, for table cells."""
        return "meas." if self.measured else "est."

    @property
    def microjoules(self) -> float:
        return self.joules_per_inference * 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"joules_per_inference": self.joules_per_inference, "method": self.method, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: dict) -> "Energy":
        return cls(float(data["joules_per_inference"]), str(data["method"]), dict(data.get("details", {})))


def estimate_energy(model: nn.Module, example_inputs: Any, weight_bits: int | None = None) -> Energy:
    """The Horowitz (ISSCC 2014) estimate for ``model`` on a batch like ``example_inputs``, its
    weights stored in ``weight_bits`` (default: read from the model)."""
    joules, details = estimate_joules(model, example_inputs, weight_bits)
    return Energy(joules, ESTIMATED, details)


def measure_energy(
    model: nn.Module | Callable[[Any], Any],
    example_inputs: Any,
    *,
    weight_bits: int | None = None,
    estimate_from: nn.Module | None = None,
    min_seconds: float = 0.5,
    powercap_root: str | Path | None = None,
) -> Energy:
    """Energy per inference of ``model`` on ``example_inputs``, measured over a timed loop of forward
    passes (at least ``min_seconds``, after two warm-up passes) with the counter of the model's
    device; where none is usable, :func:`estimate_energy`, with the reason in ``details``.

    ``estimate_from``: the float module whose MACs and weights the estimate counts (needed when
    ``model`` is a plain callable, e.g. an onnxruntime model); ``weight_bits``: the width its weights
    are deployed in. A measurement is of the whole package or GPU (idle draw and other processes
    included) and also reports the estimate in ``details`` for comparison. ``powercap_root``
    replaces ``/sys/class/powercap``."""
    counted = estimate_from if estimate_from is not None else model
    if not isinstance(counted, nn.Module):
        raise TypeError("measure_energy needs estimate_from=<the float nn.Module> when model is a plain callable")
    estimate = estimate_energy(counted, example_inputs, weight_bits)
    runnable = model if isinstance(model, nn.Module) else CallableModule(model)
    device = model_device(runnable)
    try:
        counter = open_counter(device, powercap_root)
        joules, passes, seconds = _timed_loop(runnable, to_device(example_inputs, device), counter, device, min_seconds)
        if joules <= 0:
            raise EnergyCounterUnavailable(f"the {counter.method} counter did not advance in {seconds:.2f} s")
    except EnergyCounterUnavailable as error:
        return Energy(estimate.joules_per_inference, estimate.method, {**estimate.details, "not_measured": str(error)})
    batch = batch_size_of(example_inputs)
    details = {**counter.describe(), "joules": joules, "seconds": seconds, "forward_passes": passes, "batch_size": batch,
               "mean_watts": joules / seconds, "estimated_joules_per_inference": estimate.joules_per_inference,
               "estimate_weight_bits": estimate.details["weight_bits"]}
    return Energy(joules / (passes * batch), counter.method, details)


def _timed_loop(model: nn.Module, inputs: Any, counter, device: torch.device, min_seconds: float) -> tuple[float, int, float]:
    """Joules, forward passes and seconds of a loop of passes lasting at least ``min_seconds``."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with eval_mode(model), torch.inference_mode():
        for _ in range(2):
            call_model(model, inputs)
        sync()
        start_joules, start, passes = counter.joules(), time.perf_counter(), 0
        while passes == 0 or time.perf_counter() - start < min_seconds:
            call_model(model, inputs)
            passes += 1
            if device.type == "cuda" and passes % 16 == 0:
                sync()
        sync()
        seconds = time.perf_counter() - start
        return counter.joules() - start_joules, passes, seconds
