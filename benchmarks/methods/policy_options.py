"""Options of the methods that run ``fewshot_kd.adapt``: any :class:`Policy` field, set over
the hand-set policy for the data's modality (the policy checks the values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fewshot_kd.adapt.policy import FLAT_FIELDS, Policy, hand_set_for

from benchmarks.methods.options import MethodOptions, parse_options

POLICY_FIELDS = frozenset(FLAT_FIELDS)


@dataclass(frozen=True)
class PolicyOptions(MethodOptions):
    """``overrides``: the options that name a :class:`Policy` field (``steps``, ``mix``, ...)."""

    overrides: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping, method: str) -> "PolicyOptions":
        """Keys naming a Policy field go to ``overrides``; the others are ``cls``'s own fields."""
        if not isinstance(data, Mapping):
            return parse_options(cls, data, method)  # raises: not a mapping
        overrides = {k: v for k, v in data.items() if k in POLICY_FIELDS}
        own = {k: v for k, v in data.items() if k not in POLICY_FIELDS}
        return parse_options(cls, own, method, also="any Policy field", overrides=overrides)

    def hand_set_policy(self, modality: str, augment: str) -> Policy:
        """The hand-set policy for ``modality`` (mirror images only with ``crop_flip``
        augmentation) with ``overrides`` set over it."""
        base = hand_set_for(modality == "text").to_flat_dict()
        return Policy.from_dict({**base, "flip": augment == "crop_flip", **self.overrides})
