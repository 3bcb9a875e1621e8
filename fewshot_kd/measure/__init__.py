"""Measurement of models: size, MACs, latency, memory, energy, classification metrics, reports.

Everything that reports numbers in fewshot_kd goes through this package, so teacher and
student are measured the same way.
"""

from fewshot_kd.measure.energy import Energy, estimate_energy, measure_energy
from fewshot_kd.measure.environment import cpu_model, environment_info
from fewshot_kd.measure.latency import LatencyResult, latency_profile, measure_latency, paired_latency_ms
from fewshot_kd.measure.macs import count_macs
from fewshot_kd.measure.memory import cpu_peak_method, measure_peak_memory, rss_counter_slack_bytes
from fewshot_kd.measure.metrics import (
    METRIC_NAMES,
    accuracy,
    classification_metrics,
    confusion_matrix,
    evaluate,
    macro_f1,
    predict,
)
from fewshot_kd.measure.report import Compression, ModelReport, compare, measure_model
from fewshot_kd.measure.size import count_params, saved_size_bytes
from fewshot_kd.measure.table import render_table

__all__ = [
    "METRIC_NAMES",
    "Compression",
    "Energy",
    "LatencyResult",
    "ModelReport",
    "accuracy",
    "classification_metrics",
    "compare",
    "confusion_matrix",
    "count_macs",
    "count_params",
    "cpu_model",
    "cpu_peak_method",
    "environment_info",
    "estimate_energy",
    "evaluate",
    "latency_profile",
    "macro_f1",
    "measure_energy",
    "measure_latency",
    "paired_latency_ms",
    "measure_model",
    "measure_peak_memory",
    "predict",
    "render_table",
    "rss_counter_slack_bytes",
    "saved_size_bytes",
]
