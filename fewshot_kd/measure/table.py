"""Rich tables of :class:`~fewshot_kd.measure.report.ModelReport` objects."""

from __future__ import annotations

from typing import Sequence, Union

from rich.table import Table

from fewshot_kd.measure import _format
from fewshot_kd.measure.metrics import METRIC_NAMES
from fewshot_kd.measure.report import ModelReport, ratio


def render_table(
    reports: Union[ModelReport, Sequence[ModelReport]],
    baseline: ModelReport | None = None,
    title: str | None = None,
) -> Table:
    """One row per report: params, MACs per example, saved size, median latency at every
    measured batch size, peak memory and every numeric metric. With a ``baseline`` (the
    teacher) it adds compression columns, baseline / row (``2.00×`` = half)."""
    reports = [reports] if isinstance(reports, ModelReport) else list(reports)
    batch_sizes = sorted({size for report in reports for size in report.latency})
    metrics = _metric_columns(reports)
    table = Table(title=title)
    table.add_column("model", style="bold")
    for heading in ("params", "MACs", "size"):
        table.add_column(heading, justify="right")
    for size in batch_sizes:
        table.add_column(f"ms b{size}", justify="right")
    table.add_column("peak mem", justify="right")
    for name in metrics:
        table.add_column(name.replace("macro_", "macro "), justify="right")
    if baseline is not None:
        for heading in ("×params", "×MACs", "×size"):
            table.add_column(heading, justify="right")
    for report in reports:
        row = [
            report.name,
            _format.count(report.params),
            _format.count(report.macs),
            _format.size(report.size_bytes),
            *(_format.millis(report.latency_ms(size)) for size in batch_sizes),
            _format.size(report.peak_memory_bytes),
            *(_format.metric(report.metrics.get(name), percent=name in METRIC_NAMES) for name in metrics),
        ]
        if baseline is not None:
            row += [
                _format.ratio(ratio(baseline.params, report.params)),
                _format.ratio(ratio(baseline.macs, report.macs)),
                _format.ratio(ratio(baseline.size_bytes, report.size_bytes)),
            ]
        table.add_row(*row)
    return table


def _metric_columns(reports: list[ModelReport]) -> list[str]:
    """Numeric metrics present in any report, the standard ones first."""
    names = []
    for report in reports:
        for name, value in report.metrics.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and name != "num_examples" and name not in names:
                names.append(name)
    return [n for n in METRIC_NAMES if n in names] + [n for n in names if n not in METRIC_NAMES]
