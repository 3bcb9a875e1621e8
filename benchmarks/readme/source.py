"""Load a suite's results for the README, refusing dirty ones unless listed as legacy."""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import read_json

from benchmarks.harness.records import dirty_reasons, migrate
from benchmarks.harness.tables import aggregate

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
LEGACY_FILE = "LEGACY_DIRTY.txt"


class DirtyResults(FewShotKDError):
    """Results made from an uncommitted tree, and not listed in ``LEGACY_DIRTY.txt``."""


def legacy_suites(results_dir: Path = RESULTS_DIR) -> dict[str, str]:
    """``suite: reason`` lines of ``LEGACY_DIRTY.txt`` (``#`` starts a comment)."""
    path = results_dir / LEGACY_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    pairs = [line.split("#", 1)[0].split(":", 1) for line in lines]
    return {p[0].strip(): p[1].strip() if len(p) > 1 else "" for p in pairs if p[0].strip()}


@dataclass
class SuiteResults:
    name: str
    data: dict
    legacy: str | None = None  # the reason it is rendered although dirty
    rows: list[dict] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = aggregate(self.data["cells"])

    def cells(self, method: str | None = None, k: int | None = None, task: str | None = None) -> list[dict]:
        return [c for c in self.data["cells"] if (method is None or c["method"] == method)
                and (k is None or c["k"] == k) and (task is None or c["task"] == task)]

    def row(self, method: str, k: int, split: str, task: str | None = None) -> dict:
        found = [r for r in self.rows if r["method"] == method and r["k"] == k and r["split"] == split
                 and (task is None or r["task"] == task)]
        if len(found) != 1:
            raise FewShotKDError(f"{self.name}: {len(found)} rows for {method} K={k} {split} {task or ''}")
        return found[0]

    def acc(self, method: str, k: int, split: str, task: str | None = None, metric: str = "accuracy") -> tuple[float, float]:
        """Mean and std over seeds, in percent."""
        mean, std = self.row(method, k, split, task)[metric]
        return 100 * mean, 100 * std

    def mean(self, key: str, method: str, k: int | None = None, task: str | None = None) -> float:
        return statistics.fmean(c[key] for c in self.cells(method, k, task))

    def note(self) -> str:
        """The visible caveat for a legacy-dirty suite, else nothing."""
        if self.legacy is None:
            return ""
        return (f"*`{self.name}` was made from an uncommitted tree before run records existed ({self.legacy}); "
                f"rerun with `python -m benchmarks.run --suite {self.name} --fresh` to refresh.*\n\n")


@functools.lru_cache(maxsize=None)
def load(name: str, results_dir: Path = RESULTS_DIR) -> SuiteResults:
    """A suite's results; raises ``DirtyResults`` when they are not clean and the suite is not legacy."""
    data = migrate(read_json(results_dir / name / "results.json"))
    reasons = dirty_reasons(data)
    legacy = legacy_suites(results_dir)
    if reasons and name not in legacy:
        raise DirtyResults(f"{name}: refusing to render results from an uncommitted tree: {'; '.join(reasons)}. "
                           f"Commit, then rerun with `python -m benchmarks.run --suite {name} --fresh`.")
    return SuiteResults(name, data, legacy[name] if reasons else None)
