"""The six concerns of a :class:`~fewshot_kd.adapt.policy.Policy`, each a frozen, checked config."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from types import MappingProxyType

from fewshot_kd.augment import MIXES
from fewshot_kd.config_keys import check_known_keys
from fewshot_kd.errors import FewShotKDError

_EMPTY = MappingProxyType({})


def _number(value, name: str, low: float, high: float) -> float:
    """``value`` as a float, or a :class:`FewShotKDError` if it is not a number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= value <= high or math.isinf(value):
        raise FewShotKDError(f"policy {name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _whole(part, names: tuple[str, ...], low: int) -> None:
    for name in names:
        value = getattr(part, name)
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise FewShotKDError(f"policy {name} must be a whole number, got {value!r}")
        if value < low:
            raise FewShotKDError(f"policy {name} must be {'at least 1' if low else '0 or more'}, got {value}")


def _real(part, names: tuple[str, ...], positive: bool = False, negative_ok: bool = False) -> None:
    for name in names:
        value = getattr(part, name)
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise FewShotKDError(f"policy {name} must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise FewShotKDError(f"policy {name} must be positive, got {value}")
        if not positive and not negative_ok and value < 0:
            raise FewShotKDError(f"policy {name} must be 0 or more, got {value}")


def _frozen_map(part, name: str, low: float) -> None:
    """Replace the mapping ``name`` by a read-only copy, checking its values lie in ``[low, inf)``."""
    value = getattr(part, name)
    if not isinstance(value, Mapping):
        raise FewShotKDError(f"policy {name} must map layer names to values, got {value!r}")
    for layer, v in value.items():
        _number(v, f"{name}[{layer!r}]", low, math.inf)
    object.__setattr__(part, name, MappingProxyType(dict(value)))


class _Part:
    """``to_dict`` (plain dicts, JSON-ready) and ``from_dict`` (unknown keys rejected)."""

    def to_dict(self) -> dict:
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping):
        check_known_keys(cls, data, f"policy {cls.KEY}")
        return cls(**data)


@dataclass(frozen=True)
class DistillationConfig(_Part):
    """Loss: ``temperature``, ``alpha`` (weight of the soft targets; ``1 - alpha`` goes to
    cross-entropy on the shots), ``feature_weight`` and ``layer_weights`` of block-wise feature
    distillation between the layers ``feature_layers`` selects."""

    KEY = "distillation"
    temperature: float = 4.0
    alpha: float = 0.9
    feature_weight: float = 3.0
    feature_layers: str = "auto"
    layer_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _real(self, ("temperature",), positive=True)
        _real(self, ("alpha",), negative_ok=True)
        _real(self, ("feature_weight",))
        if not 0.0 <= self.alpha <= 1.0:
            raise FewShotKDError(f"policy alpha must lie in [0, 1], got {self.alpha}")
        if self.layer_weights is not None:
            object.__setattr__(self, "layer_weights", tuple(_number(w, "layer_weights", 0, math.inf) for w in self.layer_weights))


@dataclass(frozen=True)
class ViewsConfig(_Part):
    """Data: ``views_per_shot`` augmented views per shot (shifts of up to ``crop_padding`` pixels,
    mirror images if ``flip``, word dropout for text), ``unlabelled_views`` per unlabelled input,
    ``mix_views`` rounds of ``mix`` (``Beta(mix_alpha, mix_alpha)``) and ``synthetic_inputs``
    DeepInversion images optimised for ``synthetic_steps``."""

    KEY = "views"
    views_per_shot: int = 12
    crop_padding: int | None = None
    flip: bool = True
    text_word_dropout: float = 0.1
    unlabelled_views: int = 1
    mix_views: int = 0
    mix: str = "cutmix"
    mix_alpha: float = 1.0
    synthetic_inputs: int = 0
    synthetic_steps: int = 200

    def __post_init__(self) -> None:
        _whole(self, ("views_per_shot", "unlabelled_views"), 1)
        _whole(self, ("mix_views", "synthetic_inputs", "synthetic_steps"), 0)
        _real(self, ("text_word_dropout",), negative_ok=True)
        _real(self, ("mix_alpha",), positive=True)
        if not 0.0 <= self.text_word_dropout < 1.0:
            raise FewShotKDError(f"policy text_word_dropout must lie in [0, 1), got {self.text_word_dropout}")
        if self.crop_padding is not None and (isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, Integral)
                                              or self.crop_padding < 0):
            raise FewShotKDError(f"policy crop_padding must be None or a whole number >= 0, got {self.crop_padding!r}")
        if self.mix not in MIXES:
            raise FewShotKDError(f"policy mix must be one of {MIXES.names()}, got {self.mix!r}")


SCHEDULES = ("one_shot", "graft")
"""How a derived student is distilled: all at once, or grafted into the teacher block by block first."""


@dataclass(frozen=True)
class OptimisationConfig(_Part):
    """``steps`` Adam steps at ``lr`` for a student derived from the teacher, ``new_arch_steps``
    at ``new_arch_lr`` for a new architecture; ``layer_lr_scale`` multiplies the rate per layer.
    ``channels_last``: a convolutional student trains in channels-last memory format and is handed
    back in the default one (off by default: in adapt()'s distillation step of a half-MACs ResNet-56
    student on 2 CPU threads it measured 0.157 s against 0.159 s, benchmarks/results/cpu_speed;
    a bare training step at 1 thread was about 20 % faster).
    ``schedule``: ``"one_shot"`` distils the whole derived student at once; ``"graft"`` first grafts
    its blocks into the teacher in ``graft_stages`` stages (:mod:`fewshot_kd.distill.graft`), which
    take ``graft_share`` of ``steps``, then finishes end to end with the rest."""

    KEY = "optimisation"
    batch_size: int = 32
    steps: int = 300
    lr: float = 1e-3
    new_arch_steps: int = 1500
    new_arch_lr: float = 2e-3
    weight_decay: float = 5e-4
    layer_lr_scale: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    channels_last: bool = False
    schedule: str = "one_shot"
    graft_stages: int = 3
    graft_share: float = 0.5

    def __post_init__(self) -> None:
        _whole(self, ("batch_size", "steps", "new_arch_steps", "graft_stages"), 1)
        if self.schedule not in SCHEDULES:
            raise FewShotKDError(f"policy schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {self.schedule!r}")
        if _number(self.graft_share, "graft_share", 0.0, 1.0) in (0.0, 1.0):
            raise FewShotKDError(f"policy graft_share must lie strictly between 0 and 1, got {self.graft_share}")
        _real(self, ("lr", "new_arch_lr"), positive=True)
        _real(self, ("weight_decay",))
        _frozen_map(self, "layer_lr_scale", 1e-12)


STRUCTURES = ("channels", "width", "blocks")


@dataclass(frozen=True)
class PruningConfig(_Part):
    """``structure`` ``"channels"`` (physical channel / head pruning by ``prune_importance``,
    optional relative ``per_layer_prune`` ratios rescaled to the target; the residual streams of
    option-A ResNets keep their widths), ``"width"`` (channel pruning that narrows those residual
    streams too: every convolution loses input and output channels, a faster student at the same
    MACs, best with ``prune_round_to=8``) or ``"blocks"`` (drop whole residual blocks first).
    ``prune_round_to``: pruned channel counts kept at multiples of it (Torch-Pruning's ``round_to``;
    8 suits SIMD and tensor-core kernels), or ``None``. ``prune_rounds``: 1 derives the student in
    one cut; ``R > 1`` cuts a copy of the teacher in ``R`` rounds, MACs falling linearly to the
    target (a text student also loses its dropped encoder layers a few per round), with
    ``steps / R`` distillation steps after each
    (:mod:`fewshot_kd.adapt.stages.ramp`). ``text_layers``: the encoder layers a text
    student keeps when the target gives only their number (``layers=3``), e.g. ``(1, 3, 5)`` as a
    meta-learned policy picks them; ``None`` keeps the last ones."""

    KEY = "pruning"
    structure: str = "channels"
    prune_importance: str = "l1"
    per_layer_prune: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    prune_round_to: int | None = None
    prune_rounds: int = 1
    text_layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _whole(self, ("prune_rounds",), 1)
        if self.text_layers is not None:
            object.__setattr__(self, "text_layers", _layer_list(self.text_layers))
        if self.structure not in STRUCTURES:
            raise FewShotKDError(f"policy structure must be one of {', '.join(map(repr, STRUCTURES))}, "
                                 f"got {self.structure!r}")
        if self.prune_round_to is not None and (isinstance(self.prune_round_to, bool) or
                                                not isinstance(self.prune_round_to, int) or self.prune_round_to < 1):
            raise FewShotKDError(f"prune_round_to must be a positive int or None, got {self.prune_round_to!r}")
        _frozen_map(self, "per_layer_prune", 0)


def _layer_list(value) -> tuple[int, ...]:
    """``text_layers`` as a strictly increasing tuple of non-negative layer indices (at least one)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise FewShotKDError(f"policy text_layers must be None or a list of layer indices, got {value!r}")
    indices = tuple(value)
    if not indices or any(isinstance(i, bool) or not isinstance(i, Integral) or i < 0 for i in indices) \
            or any(b <= a for a, b in zip(indices, indices[1:])):
        raise FewShotKDError(f"policy text_layers must be distinct, increasing, non-negative layer indices, got {value!r}")
    return tuple(int(i) for i in indices)


LOW_BITS_QAT_STEPS = 100
"""Quantization-aware steps adapt() finishes with below 8 bits when the policy leaves ``qat_steps`` unset.
Measured at 4 bits, K=10, derived student at 0.5 MACs, mean test accuracy % over seeds 0-3 on 8x8 digits /
on digits upscaled to 28x28 with a width-16 teacher: float student 97.87 / 99.39; no QAT 97.03 / 97.35;
50, 100, 200 steps at qat_lr 1e-4: 97.40 / 99.35, 97.63 / 99.25, 97.54 / 99.40; at 5e-4: 96.89 / 99.21,
97.91 / 99.30, 97.31 / 99.44; at 1e-3: 96.80 / 99.21, 97.50 / 99.35, 97.49 / 99.53. 100 steps at 5e-4
recover the float accuracy for a third of the distillation's 300 steps (at 3 bits: 97.17 / 99.07; 8x8
digits without QAT: 94.2). At 8 bits they do not help (97.68 / 99.53 against 97.82 / 99.39 without)."""


@dataclass(frozen=True)
class QuantizationConfig(_Part):
    """``per_layer_bits`` (the target's bits bound their parameter-weighted average) and
    ``qat_steps`` of quantization-aware finishing at ``qat_lr`` (0: quantize after distillation;
    ``None``, the default: :data:`LOW_BITS_QAT_STEPS` when any layer has fewer than 8 bits, else 0).
    ``mixed_bits``: the weight widths (e.g. ``(4, 8)``, none above ``target.bits``) a size fit may
    give each layer of a derived student: under a file budget it lowers the least sensitive layers
    before it prunes further (:mod:`fewshot_kd.adapt.mixed_bits`; layers in ``per_layer_bits`` keep
    theirs). ``None``, the default: every layer at ``target.bits``."""

    KEY = "quantization"
    per_layer_bits: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    qat_steps: int | None = None
    qat_lr: float = 5e-4
    mixed_bits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.qat_steps is not None:
            _whole(self, ("qat_steps",), 0)
        _real(self, ("qat_lr",), positive=True)
        if not isinstance(self.per_layer_bits, Mapping):
            raise FewShotKDError(f"policy per_layer_bits must map layer names to values, got {self.per_layer_bits!r}")
        for layer, bits in self.per_layer_bits.items():
            if isinstance(bits, bool) or not isinstance(bits, Integral) or not 2 <= bits <= 8:
                raise FewShotKDError(f"policy per_layer_bits[{layer!r}] must be a whole number in 2..8, got {bits!r}")
        object.__setattr__(self, "per_layer_bits", MappingProxyType(dict(self.per_layer_bits)))
        if self.mixed_bits is not None:
            object.__setattr__(self, "mixed_bits", _widths(self.mixed_bits))

    def qat_steps_for(self, bits: int | None) -> int:
        """The quantization-aware steps to run for a target of ``bits`` (``None``: float, none).
        Quantizing after distillation alone loses accuracy below 8 bits (on digits at 4 bits: 1-3
        points; a held-out 28x28 digit task fell from 95.5 % to 54.5 %), so there an unset
        ``qat_steps`` means :data:`LOW_BITS_QAT_STEPS`."""
        if bits is None:
            return 0
        if self.qat_steps is not None:
            return self.qat_steps
        return LOW_BITS_QAT_STEPS if min([bits, *self.per_layer_bits.values()]) < 8 else 0


def _widths(value) -> tuple[int, ...]:
    """``mixed_bits`` as sorted distinct whole numbers in 2..8 (at least one)."""
    widths = value if isinstance(value, (list, tuple)) else None
    if not widths or any(isinstance(b, bool) or not isinstance(b, Integral) or not 2 <= b <= 8 for b in widths):
        raise FewShotKDError(f"policy mixed_bits must be None or a list of whole-number bit widths in 2..8 "
                             f"(e.g. [4, 8]), got {value!r}")
    return tuple(sorted({int(b) for b in widths}))


@dataclass(frozen=True)
class RepairConfig(_Part):
    """A derived image student first has every layer that lost input channels re-solved by
    least squares on ``reconstruct_inputs`` views (0: off; ``reconstruct_ridge`` pulls towards
    the pruned weights); ``bn_recalibrate`` re-estimates BatchNorm statistics after distillation."""

    KEY = "repair"
    reconstruct_inputs: int = 0
    reconstruct_ridge: float = 1e-3
    bn_recalibrate: bool = True

    def __post_init__(self) -> None:
        _whole(self, ("reconstruct_inputs",), 0)
        _real(self, ("reconstruct_ridge",))


PARTS = {cls.KEY: cls for cls in (DistillationConfig, ViewsConfig, OptimisationConfig, PruningConfig,
                                  QuantizationConfig, RepairConfig)}
"""The sections of a version-2 policy, by key."""
