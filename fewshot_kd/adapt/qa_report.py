"""What adapt() returns for extractive question answering: the student, its files and a report
of exact match and F1 (teacher and student on one fixed set of questions), size and compression."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch.nn as nn
from rich.table import Table

from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.qa_policy import QAPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.files import write_json


@dataclass(frozen=True, kw_only=True)
class QAReport:
    """Everything adapt() measured on an extractive QA model; :meth:`to_dict` is the JSON of
    report.json. ``shots`` labelled questions (``shot_windows`` windows) and
    ``unlabelled_questions`` were distilled on; ``squad`` holds both models' EM and F1 on the
    same ``questions`` of one split and ``f1_gap`` (teacher's F1 minus the student's)."""

    task: str = "extractive_qa"
    shots: int
    shot_windows: int
    unlabelled_questions: int
    seed: int
    student_kind: str
    teacher: ModelSize
    student: StudentSize
    compression: Compression
    squad: dict
    decisions: dict
    stages: dict
    adapt_seconds: float
    target: Target
    policy: QAPolicy
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("teacher", "student", "compression", "target", "policy"):
            out[name] = out[name].to_dict()
        out["warnings"] = list(self.warnings)
        return out


@dataclass
class QAAdaptResult:
    """adapt()'s result for extractive QA, read as :class:`~fewshot_kd.adapt.report.AdaptResult`:
    ``report`` is ``adapt_report.to_dict()``."""

    student: nn.Module
    adapt_report: QAReport
    artifact: Path | None = None
    history: list[dict] = field(default_factory=list)
    report: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.report = self.adapt_report.to_dict()

    def save_report(self, path: str | os.PathLike) -> Path:
        return write_json(path, {**self.report, "history": self.history})

    def table(self) -> Table:
        r = self.report
        s = r["squad"]
        table = Table(title=f"fewshot_kd.adapt — extractive QA, K={r['shots']} questions "
                            f"(+{r['unlabelled_questions']} unlabelled)")
        for column, justify in (("", "left"), ("teacher", "right"), ("student", "right"), ("ratio", "right")):
            table.add_column(column, justify=justify, style="bold" if not column else None)
        for label, key in (("params", "params"), ("MACs / window", "macs"), ("bytes on disk", "bytes")):
            t, st = r["teacher"][key], r["student"][key]
            table.add_row(label, f"{t:,}", f"{st:,}", f"{t / st:.2f}x" if st else "–")
        where = f"[{s['split']}, {s['questions']} questions]"
        for label, key in (("exact match", "exact_match"), ("F1", "f1")):
            table.add_row(f"{label} {where}", f"{s['teacher'][key]:.1f}", f"{s['student'][key]:.1f}", "")
        table.add_row("weights", "fp32", r["student"]["weights"], "")
        table.add_row("adapt time", "", f"{r['adapt_seconds']:.1f} s", "")
        return table

    def print(self) -> None:
        from rich.console import Console

        Console().print(self.table())

    def __repr__(self) -> str:
        return f"QAAdaptResult(artifact={self.artifact}, report keys={list(self.report)})"
