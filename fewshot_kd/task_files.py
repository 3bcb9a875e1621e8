"""Registers every shipped ``tasks/<name>.yaml`` in :data:`~fewshot_kd.task_family.TASK_FAMILIES`
(imported by the registry on first use)."""

from __future__ import annotations

from pathlib import Path

import yaml

from fewshot_kd.task_family import TASK_FAMILIES, tasks_dir


def _description(path: Path) -> str:
    """The file's ``description`` line, or its file name if it has none (or does not parse)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        data = None
    text = data.get("description") if isinstance(data, dict) else None
    return str(text).strip().split("\n")[0] if text else f"tasks/{path.name}"


for _path in sorted(tasks_dir().glob("*.yaml")):
    TASK_FAMILIES.register(_path.stem, _description(_path))(_path)
