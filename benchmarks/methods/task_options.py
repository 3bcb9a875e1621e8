"""Options of the QA and causal-LM suites' methods: policy fields, ``unlabelled`` and ``target``.

A method's options are its registered defaults, then the suite's ``method_options`` entry. Each
key is a field of the suite's policy class, ``unlabelled`` (a count of unlabelled examples) or
``target`` (keys that override the task's target, for example ``{"layers": [0, 2, 4]}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from fewshot_kd.errors import FewShotKDError

EXTRA_KEYS = ("unlabelled", "target")


@dataclass(frozen=True)
class TaskMethodOptions:
    """One method's options, split: ``policy`` (policy fields), ``unlabelled``, ``target`` overrides."""

    policy: dict
    unlabelled: int | None
    target: dict

    def target_for(self, task_target: Mapping) -> dict:
        """The task's target with this method's overrides applied."""
        return {**task_target, **self.target}


def split_task_options(what: str, method: str, defaults: Mapping, options: Mapping,
                       policy_class: type) -> TaskMethodOptions:
    """``defaults`` then ``options``, split into policy fields, ``unlabelled`` and ``target``;
    an unknown key or a ``target`` that is not a mapping is an error naming the method."""
    merged = {**defaults, **options}
    unknown = set(merged) - {f.name for f in fields(policy_class)} - set(EXTRA_KEYS)
    if unknown:
        raise FewShotKDError(f"{what} method {method!r}: unknown options {sorted(unknown)}; "
                             f"use {policy_class.__name__} fields, unlabelled or target")
    target = merged.pop("target", None) or {}
    if not isinstance(target, Mapping):
        raise FewShotKDError(f"{what} method {method!r}: target must map target keys to values "
                             f"(for example {{layers: [0, 2, 4]}}), got {target!r}")
    unlabelled = merged.pop("unlabelled", None)
    return TaskMethodOptions(merged, unlabelled, dict(target))
