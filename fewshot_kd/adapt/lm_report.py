"""What adapt() returns for a causal language model: the student, its files and a report of
perplexity (teacher and student, window and stride stated), size, compression and greedy
generations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch.nn as nn
from rich.table import Table

from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.lm_policy import LMPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.files import write_json


@dataclass(frozen=True, kw_only=True)
class LMReport:
    """Everything adapt() measured on a causal LM; :meth:`to_dict` is the JSON of report.json.
    ``shots`` sequences of ``sequence_length`` tokens (``shot_tokens`` in all) were the labelled
    documents; ``perplexity`` holds both models' sliding-window perplexity on one split."""

    task: str = "causal_lm"
    shots: int
    sequence_length: int
    shot_tokens: int
    unlabelled_sequences: int
    seed: int
    student_kind: str
    teacher: ModelSize
    student: StudentSize
    compression: Compression
    perplexity: dict
    generations: dict
    decisions: dict
    stages: dict
    adapt_seconds: float
    target: Target
    policy: LMPolicy
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("teacher", "student", "compression", "target", "policy"):
            out[name] = out[name].to_dict()
        out["warnings"] = list(self.warnings)
        return out


@dataclass
class LMAdaptResult:
    """adapt()'s result for a causal LM, read as :class:`~fewshot_kd.adapt.report.AdaptResult`:
    ``report`` is ``adapt_report.to_dict()``."""

    student: nn.Module
    adapt_report: LMReport
    artifact: Path | None = None
    history: list[dict] = field(default_factory=list)
    report: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = self.adapt_report.to_dict()

    def save_report(self, path: str | os.PathLike) -> Path:
        return write_json(path, {**self.report, "history": self.history})

    def table(self) -> Table:
        r = self.report
        p = r["perplexity"]
        table = Table(title=f"fewshot_kd.adapt — causal LM, K={r['shots']} sequences of {r['sequence_length']} tokens")
        for column, justify in (("", "left"), ("teacher", "right"), ("student", "right"), ("ratio", "right")):
            table.add_column(column, justify=justify, style="bold" if not column else None)
        for label, key in (("params", "params"), ("MACs / sequence", "macs"), ("bytes on disk", "bytes")):
            t, s = r["teacher"][key], r["student"][key]
            table.add_row(label, f"{t:,}", f"{s:,}", f"{t / s:.2f}x" if s else "–")
        table.add_row(f"perplexity [{p['split']}, window {p['window']}, stride {p['stride']}]",
                      f"{p['teacher']:.3f}", f"{p['student']:.3f}", f"{p['ratio']:.3f}x")
        table.add_row("weights", "fp32", r["student"]["weights"], "")
        table.add_row("adapt time", "", f"{r['adapt_seconds']:.1f} s", "")
        return table

    def print(self) -> None:
        from rich.console import Console

        console = Console()
        console.print(self.table())
        g = self.report["generations"]
        for prompt, teacher, student in zip(g["prompts"], g["teacher"], g["student"]):
            console.print(f"prompt {prompt!r}\n  teacher {teacher!r}\n  student {student!r}", markup=False,
                          highlight=False)

    def __repr__(self) -> str:
        return f"LMAdaptResult(artifact={self.artifact}, report keys={list(self.report)})"
