"""What the task-type policies (:class:`~fewshot_kd.adapt.lm.policy.LMPolicy`,
:class:`~fewshot_kd.adapt.qa.policy.QAPolicy`) share: reading one from a dict or an adapt() argument."""

from __future__ import annotations

from dataclasses import asdict
from numbers import Integral, Real
from os import PathLike
from typing import ClassVar

from fewshot_kd.config_keys import check_known_keys
from fewshot_kd.errors import BadInputError


class ParsedPolicy:
    """``from_dict`` (unknown keys refused), ``parse``, ``to_dict`` and the field checks for a frozen
    policy dataclass; ``LABEL``
    names it in errors ("LM policy"), ``TASK`` says what it is for ("a causal language model") and
    ``ONE`` how an error names an instance ("an LMPolicy")."""

    LABEL: ClassVar[str]
    TASK: ClassVar[str]
    ONE: ClassVar[str]

    @classmethod
    def from_dict(cls, data: dict):
        check_known_keys(cls, data, cls.LABEL)
        return cls(**data)

    @classmethod
    def parse(cls, policy):
        """The policy from ``None`` (the hand-set one), an instance, or a dict of its fields."""
        if policy is None:
            return cls()
        if isinstance(policy, cls):
            return policy
        if isinstance(policy, dict):
            return cls.from_dict(policy)
        raise BadInputError(f"for {cls.TASK}, policy must be None, {cls.ONE} or a dict of its "
                            f"fields, got {type(policy).__name__}")

    @classmethod
    def with_meta(cls, policy) -> tuple[object | None, "ParsedPolicy"]:
        """``(meta-learned policy or None, the policy)`` from what :meth:`parse` takes (a
        ``meta_policy`` field names a meta-learned policy's folder), or a ``MetaPolicy`` or its
        folder, which decides on the hand-set policy."""
        from fewshot_kd.meta.meta_policy import MetaPolicy

        if isinstance(policy, (str, PathLike)):
            policy = MetaPolicy.load(policy)
        if isinstance(policy, MetaPolicy):
            return policy, cls()
        policy = cls.parse(policy)
        folder = getattr(policy, "meta_policy", None)
        return (None if folder is None else MetaPolicy.load(folder)), policy

    def check_meta_policy(self) -> None:
        """``meta_policy`` is None or a folder (a string)."""
        if self.meta_policy is not None and not isinstance(self.meta_policy, str):
            raise BadInputError(f"{self.LABEL} meta_policy must be the folder of a meta-learned policy (a string), "
                                f"got {self.meta_policy!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def check_whole_numbers(self, names: tuple[str, ...]) -> None:
        """Each named field a whole number >= 0."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise BadInputError(f"{self.LABEL} {name} must be a whole number >= 0, got {value!r}")

    def check_numbers(self, names: tuple[str, ...]) -> None:
        """Each named field a number >= 0."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
                raise BadInputError(f"{self.LABEL} {name} must be a number >= 0, got {value!r}")
