"""What adapt() returns: the compressed student, its artifact and a measured report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn
from rich.table import Table

from fewshot_kd.adapt.adapt_report import AdaptReport
from fewshot_kd.files import write_json
from fewshot_kd.measure.energy import Energy


@dataclass
class AdaptResult:
    """``adapt_report`` is the typed report; ``report`` is its JSON form (``adapt_report.to_dict()``,
    what report.json holds), a plain dict so callers index, copy and serialise it as JSON."""

    student: nn.Module
    adapt_report: AdaptReport
    artifact: Path | None = None
    history: list[dict] = field(default_factory=list)
    report: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = self.adapt_report.to_dict()

    def save_report(self, path: str | os.PathLike) -> Path:
        return write_json(path, {**self.report, "history": self.history})

    def table(self) -> Table:
        r = self.report
        table = Table(title=f"fewshot_kd.adapt — K={r['shots']} ({r['student_kind']} student)")
        table.add_column("", style="bold")
        table.add_column("teacher", justify="right")
        table.add_column("student", justify="right")
        table.add_column("ratio", justify="right")
        rows = [("params", "params", "{:,}"), ("MACs / example", "macs", "{:,}"), ("bytes on disk", "bytes", "{:,}")]
        for label, key, fmt in rows:
            t, s = r["teacher"][key], r["student"][key]
            table.add_row(label, fmt.format(t), fmt.format(s), f"{t / s:.2f}x" if s else "–")
        for split, metrics in r.get("eval", {}).items():
            t, s = metrics["teacher"], metrics["student"]
            table.add_row(f"accuracy [{split}]", f"{100 * t['accuracy']:.2f}%", f"{100 * s['accuracy']:.2f}%",
                          f"{100 * (s['accuracy'] - t['accuracy']):+.2f} pt")
            table.add_row(f"macro-F1 [{split}]", f"{100 * t['macro_f1']:.2f}%", f"{100 * s['macro_f1']:.2f}%", "")
        if "energy" in r:
            t, s = (Energy.from_dict(r["energy"][role]) for role in ("teacher", "student"))
            ratio = f"{t.joules_per_inference / s.joules_per_inference:.2f}x" if s.joules_per_inference else "–"
            table.add_row("energy / inference", f"{t.microjoules:,.2f} µJ {t.label}", f"{s.microjoules:,.2f} µJ {s.label}", ratio)
        table.add_row("adapt time", "", f"{r['adapt_seconds']:.1f} s", "")
        table.add_row("peak memory", "", f"{r['peak_memory_bytes'] / 2**20:,.0f} MiB" if r.get("peak_memory_bytes") else "–", "")
        table.add_row("weights", "fp32", r["student"]["weights"], "")
        if r["stages"].get("qat_steps") is not None:
            table.add_row("QAT steps", "", str(r["stages"]["qat_steps"]), "")
        return table

    def print(self) -> None:
        from rich.console import Console

        Console().print(self.table())

    def __repr__(self) -> str:
        return f"AdaptResult(artifact={self.artifact}, report keys={list(self.report)})"


def layer_decisions(student: nn.Module, decisions: dict, bits: int | None, per_layer_bits: dict | None = None) -> dict[str, Any]:
    """Per layer: channels before -> after (pruning) and weight bits (quantization)."""
    per_layer_bits = per_layer_bits or {}
    out: dict[str, Any] = {}
    channels = decisions.get("prune", {}).get("channels", {})
    for name, module in student.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)) or hasattr(module, "weight_quant"):
            entry: dict[str, Any] = {"bits": per_layer_bits.get(name, bits) if bits is not None else 32}
            if name in channels:
                entry["out_channels"] = channels[name]
            out[name] = entry
    return out
