"""The decisions adapt() takes, as one typed config: hand-set today, meta-learned later."""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fewshot_kd.augment import MIXES
from fewshot_kd.config_keys import check_known_keys
from fewshot_kd.errors import CorruptFileError, FewShotKDError

POLICY_VERSION = 1
_WHOLE = ("views_per_shot", "unlabelled_views", "mix_views", "synthetic_inputs", "synthetic_steps", "batch_size",
          "steps", "new_arch_steps", "reconstruct_inputs", "qat_steps", "version")
_REAL = ("temperature", "alpha", "feature_weight", "text_word_dropout", "mix_alpha", "lr", "new_arch_lr",
         "weight_decay", "reconstruct_ridge", "qat_lr")


def _number(value, name: str, low: float, high: float) -> float:
    """``value`` as a float, or a :class:`FewShotKDError` if it is not a number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= value <= high or math.isinf(value):
        raise FewShotKDError(f"policy {name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Policy:
    """Hyperparameters of the adapt() recipe.

    Distillation: ``temperature``, ``alpha`` (weight of the soft targets; ``1 - alpha`` goes
    to cross-entropy on the shots), ``feature_weight`` and ``layer_weights`` (block-wise
    feature distillation between the layers ``feature_layers`` selects). Data: every shot
    is expanded to ``views_per_shot`` augmented views (random shifts of up to ``crop_padding``
    pixels, default an eighth of the side, and mirror images if ``flip``; word dropout for
    text) whose teacher outputs are computed once and cached; unlabelled inputs, when adapt()
    gets them, add ``unlabelled_views`` views each, distilled on soft targets only. Images also
    get ``mix_views`` rounds of ``mix`` (``"mixup"`` or ``"cutmix"``, ``Beta(mix_alpha, mix_alpha)``)
    pairs of shot views, and ``synthetic_inputs`` DeepInversion images optimised for
    ``synthetic_steps`` against the teacher's BatchNorm statistics; both on soft targets only. Optimisation: ``steps`` Adam steps at ``lr`` for a student derived from
    the teacher, ``new_arch_steps`` at ``new_arch_lr`` for a new architecture. Compression:
    ``structure`` is ``"channels"`` (physical channel / head pruning with
    ``prune_importance`` and optional ``per_layer_prune`` ratios) or ``"blocks"`` (drop whole
    residual blocks, least harmful on the shots first, then prune channels for any
    remaining budget); ``qat_steps`` of quantization-aware finishing at ``qat_lr`` (0: the
    weights are quantized after distillation, which loses nothing measurable at 8 bits).
    Per-layer decisions (what a meta-learned policy fills in): ``per_layer_prune`` ratios
    (rescaled together to meet the MACs / params target), ``per_layer_bits`` (the target's
    bits then bound their parameter-weighted average) and ``layer_lr_scale`` multipliers of
    the learning rate per layer. Repair: a derived image student first has every layer that
    lost input channels re-solved by least squares against the teacher on
    ``reconstruct_inputs`` views (default 0: off; ``reconstruct_ridge`` pulls towards the pruned weights).
    """

    name: str = "hand-set"
    temperature: float = 4.0
    alpha: float = 0.9
    feature_weight: float = 3.0
    feature_layers: str = "auto"
    layer_weights: tuple[float, ...] | None = None
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
    batch_size: int = 32
    steps: int = 300
    lr: float = 1e-3
    new_arch_steps: int = 1500
    new_arch_lr: float = 2e-3
    weight_decay: float = 5e-4
    structure: str = "channels"
    prune_importance: str = "l1"
    per_layer_prune: dict = field(default_factory=dict)
    per_layer_bits: dict = field(default_factory=dict)
    layer_lr_scale: dict = field(default_factory=dict)
    reconstruct_inputs: int = 0
    reconstruct_ridge: float = 1e-3
    bn_recalibrate: bool = True
    qat_steps: int = 0
    qat_lr: float = 1e-4
    version: int = POLICY_VERSION

    def __post_init__(self) -> None:
        for name in _WHOLE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise FewShotKDError(f"policy {name} must be a whole number, got {value!r}")
        for name in _REAL:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise FewShotKDError(f"policy {name} must be a finite number, got {value!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise FewShotKDError(f"policy alpha must lie in [0, 1], got {self.alpha}")
        if not 0.0 <= self.text_word_dropout < 1.0:
            raise FewShotKDError(f"policy text_word_dropout must lie in [0, 1), got {self.text_word_dropout}")
        for name in ("temperature", "lr", "new_arch_lr", "qat_lr"):
            if getattr(self, name) <= 0:
                raise FewShotKDError(f"policy {name} must be positive, got {getattr(self, name)}")
        for name in ("views_per_shot", "unlabelled_views", "batch_size", "steps", "new_arch_steps", "version"):
            if getattr(self, name) < 1:
                raise FewShotKDError(f"policy {name} must be at least 1, got {getattr(self, name)}")
        for name in ("mix_views", "synthetic_inputs", "synthetic_steps", "reconstruct_inputs", "qat_steps",
                     "feature_weight", "weight_decay", "reconstruct_ridge"):
            if getattr(self, name) < 0:
                raise FewShotKDError(f"policy {name} must be 0 or more, got {getattr(self, name)}")
        if self.crop_padding is not None and (isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, Integral)
                                              or self.crop_padding < 0):
            raise FewShotKDError(f"policy crop_padding must be None or a whole number >= 0, got {self.crop_padding!r}")
        if self.mix not in MIXES:
            raise FewShotKDError(f"policy mix must be one of {MIXES.names()}, got {self.mix!r}")
        if self.mix_alpha <= 0:
            raise FewShotKDError(f"policy mix_alpha (the Beta distribution's parameter) must be positive, got {self.mix_alpha}")
        if self.structure not in ("channels", "blocks"):
            raise FewShotKDError(f"policy structure must be 'channels' or 'blocks', got {self.structure!r}")
        if self.layer_weights is not None:
            object.__setattr__(self, "layer_weights", tuple(_number(w, "layer_weights", 0, math.inf) for w in self.layer_weights))
        for name in ("per_layer_prune", "per_layer_bits", "layer_lr_scale"):
            if not isinstance(getattr(self, name), dict):
                raise FewShotKDError(f"policy {name} must map layer names to values, got {getattr(self, name)!r}")
        for name, low, high in (("per_layer_prune", 0, math.inf), ("layer_lr_scale", 1e-12, math.inf)):  # prune: relative, rescaled
            for layer, value in getattr(self, name).items():
                _number(value, f"{name}[{layer!r}]", low, high)
        for layer, bits in self.per_layer_bits.items():
            if isinstance(bits, bool) or not isinstance(bits, Integral) or not 2 <= bits <= 8:
                raise FewShotKDError(f"policy per_layer_bits[{layer!r}] must be a whole number in 2..8, got {bits!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        check_known_keys(cls, data, "policy")
        version = data.get("version", POLICY_VERSION)
        if isinstance(version, int) and version > POLICY_VERSION:
            raise FewShotKDError(f"policy version {data['version']} is newer than this fewshot_kd understands; upgrade")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> Path:
        from fewshot_kd.files import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Policy":
        """A policy JSON file; a corrupted file or a bad value is a :class:`FewShotKDError` naming it."""
        from fewshot_kd.files import read_json

        data = read_json(path)
        if not isinstance(data, dict):
            raise CorruptFileError(f"{path} should hold a JSON object of policy settings, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except FewShotKDError as error:
            raise type(error)(f"{path}: {error}") from None


HAND_SET = Policy()
HAND_SET_TEXT = Policy(name="hand-set (text)", lr=3.5e-4)
"""The hand-set policy for text: pretrained transformer layers want a smaller Adam step than
conv nets (1e-3 overshoots them; random search on AG News picked 3.5e-4 to 3.9e-4)."""


def hand_set_for(is_text: bool) -> Policy:
    """The hand-set default for the data's modality."""
    return HAND_SET_TEXT if is_text else HAND_SET
