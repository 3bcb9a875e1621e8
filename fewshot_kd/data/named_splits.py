"""A dataset's named splits: a read-only mapping in which ``train`` and ``test`` always exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Mapping, TypeVar

from fewshot_kd.errors import FewShotKDError

Split = TypeVar("Split")


@dataclass
class NamedSplits(Mapping[str, Split], Generic[Split]):
    """``splits`` by name (``train``, ``test``, any extra evaluation sets) of dataset ``name``."""

    name: str
    splits: dict[str, Split] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = {"train", "test"} - set(self.splits)
        if missing:
            raise FewShotKDError(f"{self.name}: splits {sorted(missing)} are missing")

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def __getitem__(self, key: str) -> Split:
        if key not in self.splits:
            raise KeyError(f"{self.name} has no split {key!r}; it has {sorted(self.splits)}")
        return self.splits[key]

    def __iter__(self):
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)
