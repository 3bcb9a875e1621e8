"""Wall-clock inference latency: warm-up runs, then robust statistics over timed repeats.

The one latency measurer of fewshot_kd (:func:`measure_latency`, and :func:`time_calls`
for timing several runtimes round-robin, as :func:`fewshot_kd.quant.compare_latency` does)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from fewshot_kd.model_io import CallableModule, batch_size_of, call_model, eval_mode, model_device, placed, to_device


@dataclass(frozen=True)
class LatencyResult:
    """Timings of one forward pass on a batch, in milliseconds."""

    median_ms: float
    mean_ms: float
    p90_ms: float
    min_ms: float
    batch_size: int
    repeats: int
    warmup: int
    threads: int
    device: str

    @property
    def per_example_ms(self) -> float:
        return self.median_ms / self.batch_size

    @property
    def throughput_per_s(self) -> float:
        """Examples per second at the median latency."""
        return 1000.0 * self.batch_size / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_example_ms": self.per_example_ms, "throughput_per_s": self.throughput_per_s}


def time_calls(calls: Mapping[str, Callable[[], Any]], warmup: int, repeats: int,
               sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Wall times in ms of each zero-argument call: ``warmup`` untimed runs of each, then
    ``repeats`` rounds of one timed run of each (round-robin, so a change in machine load
    hits all of them alike), ``sync()`` after every run (e.g. a CUDA synchronise)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            sync()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def measure_latency(
    model: nn.Module | Callable[[Any], Any],
    example_inputs: Any,
    warmup: int = 5,
    repeats: int = 30,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
) -> LatencyResult:
    """Time ``model`` on ``example_inputs`` under ``torch.inference_mode`` in eval mode.

    ``warmup`` untimed runs come first, then ``repeats`` timed ones (each synchronised on
    CUDA). ``device=None`` measures where the model is; another device measures a copy
    moved there. Inputs are moved to that device before timing (strings stay as they are,
    so a text model's tokenisation is part of the time). The batch size is read from the
    inputs unless given. A plain callable (e.g. an onnxruntime model) is timed on the CPU.
    """
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    batch = batch_size if batch_size is not None else batch_size_of(example_inputs)
    if not isinstance(model, nn.Module):
        model = CallableModule(model)
    model, device = placed(model, device)
    inputs = to_device(example_inputs, device)
    with eval_mode(model), torch.inference_mode():
        times = time_calls({"model": lambda: call_model(model, inputs)}, warmup, repeats, _synchronizer(device))
    times = np.asarray(times["model"])
    return LatencyResult(
        median_ms=float(np.median(times)),
        mean_ms=float(times.mean()),
        p90_ms=float(np.percentile(times, 90)),
        min_ms=float(times.min()),
        batch_size=int(batch),
        repeats=repeats,
        warmup=warmup,
        threads=torch.get_num_threads(),
        device=str(device),
    )


def paired_latency_ms(models: Mapping[str, nn.Module], example_inputs: Any, warmup: int = 3,
                      repeats: int = 10) -> dict[str, float]:
    """Median milliseconds of one forward pass of each model on ``example_inputs``, timed
    round-robin (:func:`time_calls`), so that a slow spell of a shared machine slows them all
    alike and their ratios hold. The models must share a device."""
    devices = {model_device(model) for model in models.values()}
    if len(devices) != 1:
        raise ValueError(f"paired_latency_ms needs the models on one device, got {sorted(map(str, devices))}")
    device = devices.pop()
    inputs = to_device(example_inputs, device)
    calls = {name: (lambda m=model: call_model(m, inputs)) for name, model in models.items()}
    with ExitStack() as stack, torch.inference_mode():
        for model in models.values():
            stack.enter_context(eval_mode(model))
        times = time_calls(calls, warmup, repeats, _synchronizer(device))
    return {name: float(np.median(t)) for name, t in times.items()}


def latency_profile(
    model: nn.Module,
    make_inputs: Callable[[int], Any],
    batch_sizes: Sequence[int] = (1, 64),
    **kwargs,
) -> dict[int, LatencyResult]:
    """:func:`measure_latency` at each batch size, with inputs from ``make_inputs(batch_size)``;
    keyword arguments go to :func:`measure_latency`."""
    results = {}
    for size in map(int, batch_sizes):
        inputs = make_inputs(size)
        try:
            found = batch_size_of(inputs)
        except ValueError:
            found = size
        if found != size:
            raise ValueError(f"make_inputs({size}) returned a batch of {found} examples; it must return {size}")
        results[size] = measure_latency(model, inputs, batch_size=size, **kwargs)
    return results


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
