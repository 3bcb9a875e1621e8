"""What adapt() returns for a causal language model: the student, its files and a report of
perplexity (teacher and student, window and stride stated), size, compression and greedy
generations."""

from __future__ import annotations

from dataclasses import dataclass

from fewshot_kd.adapt.adapt_report import Compression, ModelSize, StudentSize
from fewshot_kd.adapt.lm.policy import LMPolicy
from fewshot_kd.adapt.target import Target
from fewshot_kd.adapt.task_result import TaskAdaptResult, TaskReport


@dataclass(frozen=True, kw_only=True)
class LMReport(TaskReport):
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


class LMAdaptResult(TaskAdaptResult):
    """adapt()'s result for a causal LM, read as :class:`~fewshot_kd.adapt.report.AdaptResult`
    (``adapt_report`` an :class:`LMReport`); printing adds the greedy generations."""

    MACS_PER = "sequence"

    def title(self) -> str:
        r = self.report
        return f"fewshot_kd.adapt — causal LM, K={r['shots']} sequences of {r['sequence_length']} tokens"

    def metric_rows(self) -> list[tuple[str, str, str, str]]:
        p = self.report["perplexity"]
        return [(f"perplexity [{p['split']}, window {p['window']}, stride {p['stride']}]",
                 f"{p['teacher']:.3f}", f"{p['student']:.3f}", f"{p['ratio']:.3f}x")]

    def print(self) -> None:
        from rich.console import Console

        console = Console()
        console.print(self.table())
        g = self.report["generations"]
        for prompt, teacher, student in zip(g["prompts"], g["teacher"], g["student"]):
            console.print(f"prompt {prompt!r}\n  teacher {teacher!r}\n  student {student!r}", markup=False,
                          highlight=False)
