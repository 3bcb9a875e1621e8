"""One model's measurements (:class:`ModelReport`) and teacher-vs-student ratios."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.model_io import call_model, eval_mode, model_device, to_device
from fewshot_kd.measure.latency import LatencyResult, latency_profile
from fewshot_kd.measure.macs import count_macs
from fewshot_kd.measure.memory import measure_peak_memory
from fewshot_kd.measure.metrics import evaluate
from fewshot_kd.measure.size import count_params, saved_size_bytes


@dataclass(frozen=True)
class ModelReport:
    """Measurements of one model. ``macs`` are per example (batch of 1), ``size_bytes`` the
    real saved file in ``size_format``, ``latency`` maps batch size to timings, ``metrics``
    holds :func:`~fewshot_kd.measure.metrics.evaluate`'s output, ``extra`` anything a
    method wants to add (sparsity, bit width, ...)."""

    name: str
    params: int
    macs: int | None = None
    size_bytes: int | None = None
    size_format: str = "safetensors"
    latency: Mapping[int, LatencyResult] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def latency_ms(self, batch_size: int) -> float | None:
        """Median latency at ``batch_size``, or ``None`` if it was not measured."""
        result = self.latency.get(batch_size)
        return None if result is None else result.median_ms

    @property
    def latency_b1_ms(self) -> float | None:
        return self.latency_ms(1)

    @property
    def latency_b64_ms(self) -> float | None:
        return self.latency_ms(64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (latency keys become strings)."""
        return {
            "name": self.name,
            "params": self.params,
            "macs": self.macs,
            "size_bytes": self.size_bytes,
            "size_format": self.size_format,
            "latency": {str(size): result.to_dict() for size, result in sorted(self.latency.items())},
            "metrics": dict(self.metrics),
            "peak_memory_bytes": self.peak_memory_bytes,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelReport":
        """Inverse of :meth:`to_dict`."""
        fields = set(LatencyResult.__dataclass_fields__)
        latency = {
            int(size): LatencyResult(**{k: v for k, v in result.items() if k in fields})
            for size, result in data.get("latency", {}).items()
        }
        return cls(
            name=data["name"],
            params=data["params"],
            macs=data.get("macs"),
            size_bytes=data.get("size_bytes"),
            size_format=data.get("size_format", "safetensors"),
            latency=latency,
            metrics=dict(data.get("metrics", {})),
            peak_memory_bytes=data.get("peak_memory_bytes"),
            extra=dict(data.get("extra", {})),
        )


@dataclass(frozen=True)
class Compression:
    """How much smaller and faster a student is: every ratio is teacher / student (2.0 means
    half the size); ``metric_deltas`` are student − teacher."""

    teacher: str
    student: str
    params_ratio: float | None
    macs_ratio: float | None
    size_ratio: float | None
    speedup: Mapping[int, float | None]
    metric_deltas: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "student": self.student,
            "params_ratio": self.params_ratio,
            "macs_ratio": self.macs_ratio,
            "size_ratio": self.size_ratio,
            "speedup": {str(size): value for size, value in sorted(self.speedup.items())},
            "metric_deltas": dict(self.metric_deltas),
        }


def compare(teacher: ModelReport, student: ModelReport) -> Compression:
    """Compression ratios (teacher / student) of params, MACs, bytes and latency, and the
    change in every numeric metric both reports share (except ``num_examples``)."""
    if teacher.size_bytes is not None and student.size_bytes is not None and teacher.size_format != student.size_format:
        raise ValueError(
            f"sizes were saved as {teacher.size_format!r} and {student.size_format!r}; "
            "measure both models with the same size_format to compare them"
        )
    shared = [size for size in teacher.latency if size in student.latency]
    return Compression(
        teacher=teacher.name,
        student=student.name,
        params_ratio=ratio(teacher.params, student.params),
        macs_ratio=ratio(teacher.macs, student.macs),
        size_ratio=ratio(teacher.size_bytes, student.size_bytes),
        speedup={size: ratio(teacher.latency_ms(size), student.latency_ms(size)) for size in sorted(shared)},
        metric_deltas={
            name: float(student.metrics[name]) - float(value)
            for name, value in teacher.metrics.items()
            if name != "num_examples" and _is_number(value) and _is_number(student.metrics.get(name))
        },
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; ``None`` when either is missing or both are zero,
    ``inf`` when only the denominator is zero."""
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return None if numerator == 0 else float("inf")
    return float(numerator) / float(denominator)


def measure_model(
    model: nn.Module,
    make_inputs: Callable[[int], Any],
    name: str = "model",
    dataset: LabelledDataset | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    size_format: str = "safetensors",
    warmup: int = 5,
    repeats: int = 30,
    eval_batch_size: int = 256,
    memory: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> ModelReport:
    """Measure everything a report holds, on the model's own device: params, MACs of one
    example, saved bytes, latency at ``batch_sizes``, peak memory of one forward at the
    largest batch size after one warm-up
    forward (if ``memory``) and, given a ``dataset``, its metrics."""
    device = model_device(model)
    peak = None
    if memory:
        inputs = to_device(make_inputs(max(batch_sizes)), device)

        def forward() -> None:
            with eval_mode(model), torch.inference_mode():
                call_model(model, inputs)

        forward()  # one-off initialisation (thread pools, kernels) is not the model's memory
        _, peak = measure_peak_memory(forward, device=device if device.type == "cuda" else "cpu")
    return ModelReport(
        name=name,
        params=count_params(model),
        macs=count_macs(model, make_inputs(1)),
        size_bytes=saved_size_bytes(model, format=size_format),
        size_format=size_format,
        latency=latency_profile(model, make_inputs, batch_sizes, warmup=warmup, repeats=repeats),
        metrics=evaluate(model, dataset, batch_size=eval_batch_size) if dataset is not None else {},
        peak_memory_bytes=peak,
        extra=dict(extra or {}),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
