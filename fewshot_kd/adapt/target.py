"""What the compressed student must fit: a MACs or params budget, bit widths, a file size."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

from fewshot_kd.errors import FewShotKDError


@dataclass(frozen=True)
class Target:
    """``macs`` / ``params``: a fraction of the teacher's (e.g. ``0.5``) for a derived
    student. ``bits``: weight bit width of every conv/linear layer (2-8), or ``None`` for a
    float student. ``size_bytes``: the exported file must not exceed it; a derived student is
    pruned further until it fits (``macs`` / ``params`` stay upper bounds), a given student is
    checked. ``size_ratio``: the same as a budget of the fp32 teacher's saved bytes
    divided by it (``8``: at least 8x smaller); with both, the smaller budget holds. ``layers``: for text teachers, keep these encoder layers (``"last 3"``, ``[1, 3, 5]``), or
    only their number (``3``: the policy's ``text_layers`` choose which, the hand-set policy the last 3).
    ``latency``: a derived student's forward pass on a batch of ``latency_batch`` must take at
    most this fraction of the teacher's, both measured on the CPU that derives it (``macs`` stays
    an upper bound; the student is pruned further until its measured time fits)."""

    macs: float | None = 0.5
    params: float | None = None
    bits: int | None = 8
    size_bytes: int | None = None
    size_ratio: float | None = None
    layers: str | int | list | None = None
    latency: float | None = None
    latency_batch: int = 1

    def __post_init__(self) -> None:
        for name in ("macs", "params", "size_bytes", "size_ratio", "latency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise FewShotKDError(f"target {name} must be a number or None, got {value!r}")
        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(self.bits, numbers.Integral)):
            raise FewShotKDError(f"target bits must be a whole number 2..8 (or None for float), got {self.bits!r}")
        for name in ("macs", "params", "latency"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise FewShotKDError(f"target {name} is a fraction of the teacher's, in (0, 1]; got {value}")
        if self.macs is not None and self.params is not None:
            raise FewShotKDError("give a target in MACs or in params, not both")
        if self.size_bytes is not None and self.size_bytes <= 0:
            raise FewShotKDError(f"target size_bytes must be a positive number of bytes, got {self.size_bytes}")
        if self.size_ratio is not None and self.size_ratio < 1:
            raise FewShotKDError(f"target size_ratio is how many times smaller than the teacher's file, >= 1; got {self.size_ratio}")
        if isinstance(self.latency_batch, bool) or not isinstance(self.latency_batch, numbers.Integral) or self.latency_batch < 1:
            raise FewShotKDError(f"target latency_batch must be a positive whole number, got {self.latency_batch!r}")
        if isinstance(self.layers, bool) or (isinstance(self.layers, numbers.Integral) and self.layers < 1):
            raise FewShotKDError(f"target layers must be 'last N', 'first N', a list of indices or a count >= 1, got {self.layers!r}")
        if self.bits is not None and not 2 <= self.bits <= 8:
            raise FewShotKDError(f"target bits must be 2..8 or None for float, got {self.bits}")

    def size_budget(self, teacher_bytes: int) -> int | None:
        """The most bytes the exported student may take, or ``None`` for no limit."""
        budgets = [b for b in (self.size_bytes, None if self.size_ratio is None else int(teacher_bytes / self.size_ratio))
                   if b is not None]
        return min(budgets) if budgets else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, target) -> "Target":
        """A Target from ``None`` (defaults), a Target, or a dict of its fields."""
        if target is None:
            return cls()
        if isinstance(target, cls):
            return target
        if isinstance(target, dict):
            unknown = set(target) - set(cls.__dataclass_fields__)
            if unknown:
                raise FewShotKDError(f"unknown target keys {sorted(unknown)}; use macs, params, bits, size_bytes, size_ratio, layers, latency, latency_batch")
            return cls(**target)
        raise FewShotKDError(f"target must be a Target or a dict like {{'macs': 0.5, 'bits': 8}}, got {type(target).__name__}")
