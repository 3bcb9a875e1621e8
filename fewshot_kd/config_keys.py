"""One check for every typed config read from a file: unknown keys are an error, not ignored."""

from __future__ import annotations

from dataclasses import fields

from fewshot_kd.errors import FewShotKDError


def check_known_keys(cls, data: dict, what: str) -> None:
    """Raise naming the keys of ``data`` that ``cls`` (a dataclass) has no field for."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise FewShotKDError(f"{what} has unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
