"""What adapt()'s task-type results (causal LM, extractive QA) share: the report's JSON, the fields of
:class:`~fewshot_kd.adapt.report.AdaptResult`, the saved report and the size rows of the summary table."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch.nn as nn
from rich.markup import escape
from rich.table import Table

from fewshot_kd.files import write_json


class TaskReport:
    """What the task-type reports share: :meth:`to_dict`, the JSON of report.json (sizes, target and
    policy as dicts, warnings as a list)."""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("teacher", "student", "compression", "target", "policy"):
            out[name] = out[name].to_dict()
        out["warnings"] = list(self.warnings)
        return out


@dataclass
class TaskAdaptResult:
    """``report`` is ``adapt_report.to_dict()``. A subclass gives the table's ``title``, what
    ``MACS_PER`` example counts ("sequence", "window") and its ``metric_rows``."""

    student: nn.Module
    adapt_report: Any
    artifact: Path | None = None
    history: list[dict] = field(default_factory=list)
    report: dict = field(init=False, repr=False)
    MACS_PER: ClassVar[str] = "example"

    def __post_init__(self) -> None:
        self.report = self.adapt_report.to_dict()

    def save_report(self, path: str | os.PathLike) -> Path:
        return write_json(path, {**self.report, "history": self.history})

    def title(self) -> str:
        raise NotImplementedError

    def metric_rows(self) -> list[tuple[str, str, str, str]]:
        raise NotImplementedError

    def table(self) -> Table:
        r = self.report
        table = Table(title=self.title())
        for column, justify in (("", "left"), ("teacher", "right"), ("student", "right"), ("ratio", "right")):
            table.add_column(column, justify=justify, style="bold" if not column else None)
        for label, key in (("params", "params"), (f"MACs / {self.MACS_PER}", "macs"), ("bytes on disk", "bytes")):
            t, s = r["teacher"][key], r["student"][key]
            table.add_row(label, f"{t:,}", f"{s:,}", f"{t / s:.2f}x" if s else "–")
        for label, *values in self.metric_rows():  # labels name splits in [brackets]: not rich markup
            table.add_row(escape(label), *values)
        table.add_row("weights", "fp32", r["student"]["weights"], "")
        table.add_row("adapt time", "", f"{r['adapt_seconds']:.1f} s", "")
        return table

    def print(self) -> None:
        from rich.console import Console

        Console().print(self.table())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(artifact={self.artifact}, report keys={list(self.report)})"
