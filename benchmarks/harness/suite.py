"""Suite files: which task families, methods, shots and seeds a benchmark run covers."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from fewshot_kd.errors import FewShotKDError

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


@dataclass(frozen=True)
class Suite:
    """``tasks`` are task-family names (``tasks/<name>.yaml``) or file paths.
    ``method_options`` maps a method name to keyword options it receives (e.g. ``steps``);
    ``method@tag`` (e.g. ``adapt@cutmix``) runs that method again under its own options.
    ``eval_limit`` caps each evaluation split to a stratified, seeded subset (recorded)."""

    name: str
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    shots: tuple[int, ...] = (5, 10, 20)
    seeds: tuple[int, ...] = (0, 1, 2)
    method_options: dict = field(default_factory=dict)
    eval_limit: dict = field(default_factory=dict)
    latency_repeats: int = 20
    description: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        for key in ("tasks", "methods", "shots", "seeds"):
            value = tuple(getattr(self, key))
            if not value:
                raise FewShotKDError(f"suite {self.name}: '{key}' is empty")
            object.__setattr__(self, key, value)

    def to_dict(self) -> dict:
        return asdict(self)

    def cells(self):
        """Every (task, method, shots, seed) of the grid, in run order."""
        for task in self.tasks:
            for k in self.shots:
                for seed in self.seeds:
                    for method in self.methods:
                        yield task, method, k, seed


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise FewShotKDError(f"no suite {name_or_path!r}: known suites {known}, or pass a suite file path")
    data = yaml.safe_load(path.read_text())
    data.setdefault("name", path.stem)
    unknown = set(data) - set(Suite.__dataclass_fields__)
    if unknown:
        raise FewShotKDError(f"suite file {path} has unknown keys {sorted(unknown)}")
    return Suite(**data)


def single_task_suite(task_path: str, base: Suite) -> Suite:
    """The methods, shots and seeds of ``base`` applied to one task file."""
    return Suite(**{**base.to_dict(), "name": f"task-{Path(task_path).stem}", "tasks": (str(task_path),)})
