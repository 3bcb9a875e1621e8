"""What adapt() returns for extractive question answering: the student, its files and a report
of exact match and F1 (teacher and student on one fixed set of questions), size and compression."""

from __future__ import annotations

from dataclasses import dataclass

from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.qa.policy import QAPolicy
from fewshot_kd.adapt.task_result import TaskAdaptResult, TaskReport
from fewshot_kd.adapt.target import Target


@dataclass(frozen=True, kw_only=True)
class QAReport(TaskReport):
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


class QAAdaptResult(TaskAdaptResult):
    """adapt()'s result for extractive QA, read as :class:`~fewshot_kd.adapt.report.AdaptResult`
    (``adapt_report`` a :class:`QAReport`)."""

    MACS_PER = "window"

    def title(self) -> str:
        r = self.report
        return f"fewshot_kd.adapt — extractive QA, K={r['shots']} questions (+{r['unlabelled_questions']} unlabelled)"

    def metric_rows(self) -> list[tuple[str, str, str, str]]:
        s = self.report["squad"]
        where = f"[{s['split']}, {s['questions']} questions]"
        return [(f"{label} {where}", f"{s['teacher'][key]:.1f}", f"{s['student'][key]:.1f}", "")
                for label, key in (("exact match", "exact_match"), ("F1", "f1"))]
