"""adapt()'s measured report as typed, frozen parts; ``to_dict()`` gives the JSON of report.json."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fewshot_kd.adapt.policy import Policy
from fewshot_kd.adapt.target import Target


class _Part:
    def to_dict(self) -> dict[str, Any]:
        """The fields in declaration order, leaving out the ones that are ``None`` (did not run)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ModelSize(_Part):
    """Parameters, MACs per example (batch of 1) and bytes on disk of one model."""

    params: int
    macs: int
    bytes: int


@dataclass(frozen=True)
class StudentSize(ModelSize):
    """:class:`ModelSize` plus how the weights are stored (``"fp32"`` or ``"int8 (...)"``)."""

    weights: str


@dataclass(frozen=True)
class Compression(_Part):
    """Teacher / student ratios (``4.0``: four times smaller)."""

    bytes: float
    macs: float
    params: float

    @classmethod
    def of(cls, teacher: ModelSize, student: ModelSize) -> "Compression":
        return cls(bytes=teacher.bytes / student.bytes, macs=teacher.macs / student.macs,
                   params=teacher.params / student.params)


@dataclass(frozen=True, kw_only=True)
class Stages(_Part):
    """What each stage did and took; the optional entries appear only when their stage ran."""

    derive_seconds: float
    unlabelled_inputs: int | None = None
    image_only_views_skipped: str | None = None
    mixed_views: int | None = None
    synthetic_inputs: int | None = None
    synthetic_seconds: float | None = None
    synthetic_teacher_agreement: float | None = None
    synthetic_bn_loss: list[float] | None = None
    teacher_cache_seconds: float
    views: int
    distilled_layers: list[list[str]]
    reconstruction: dict | None = None
    distill_seconds: float
    batchnorms_recalibrated: int | None = None
    teacher_agreement_on_views: float
    quantize_seconds: float | None = None
    qat_steps: int | None = None


@dataclass(frozen=True, kw_only=True)
class Decisions(_Part):
    """What the derive stage cut (absent for a given student), what was grafted (``schedule="graft"``) or cut
    round by round (``prune_rounds``)
    and, per layer, channels and bits."""

    derived_from_teacher: bool
    kept_layers: str | list[int] | None = None  # as the target gave them, or the indices kept
    dropped_blocks: dict | None = None
    per_layer_prune: dict | None = None
    prune: dict | None = None
    macs_fraction: float | None = None
    params_fraction: float | None = None
    size_fit: dict | None = None
    latency_fit: dict | None = None
    graft: dict | None = None
    ramp: dict | None = None
    layers: dict


@dataclass(frozen=True, kw_only=True)
class AdaptReport:
    """Everything adapt() measured; :meth:`to_dict` is the JSON written to report.json."""

    shots: int
    seed: int
    student_kind: str
    teacher: ModelSize
    student: StudentSize
    compression: Compression
    adapt_seconds: float
    peak_memory_bytes: int | None
    stages: Stages
    decisions: Decisions
    target: Target
    policy: Policy
    simulated_quantization: bool = False
    integer_arithmetic: bool = False
    meta_policy: dict | None = None
    heldout_agreement: dict
    warnings: tuple[str, ...] = ()
    eval: dict
    energy: dict
    integer: dict | None = None
    multi_teacher: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("teacher", "student", "compression", "stages", "decisions", "target"):
            out[name] = out[name].to_dict()
        out["policy"] = self.policy.to_flat_dict()  # the flat layout readers of report.json index
        out["warnings"] = list(self.warnings)
        for name in ("meta_policy", "integer", "multi_teacher"):
            if out[name] is None:
                del out[name]
        return out
