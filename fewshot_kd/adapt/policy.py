"""The decisions adapt() takes, as one typed config: hand-set today, meta-learned later."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from numbers import Integral
from pathlib import Path

from fewshot_kd.adapt.policy_parts import (PARTS, DistillationConfig, OptimisationConfig, PruningConfig,
                                           QuantizationConfig, RepairConfig, ViewsConfig)
from fewshot_kd.errors import CorruptFileError, FewShotKDError

POLICY_VERSION = 2
"""1: one flat object of 33 settings. 2: nested by concern (:mod:`fewshot_kd.adapt.policy_parts`);
version-1 files and flat dicts still load."""

FLAT_FIELDS = ("temperature", "alpha", "feature_weight", "feature_layers", "layer_weights", "views_per_shot",
               "crop_padding", "flip", "text_word_dropout", "unlabelled_views", "mix_views", "mix", "mix_alpha",
               "synthetic_inputs", "synthetic_steps", "batch_size", "steps", "lr", "new_arch_steps", "new_arch_lr",
               "weight_decay", "structure", "prune_importance", "per_layer_prune", "per_layer_bits", "layer_lr_scale",
               "reconstruct_inputs", "reconstruct_ridge", "bn_recalibrate", "qat_steps", "qat_lr", "channels_last",
               "prune_round_to", "schedule", "graft_stages", "graft_share",
               "prune_rounds", "mixed_bits", "text_layers")
"""Every setting by its flat name, in the order of version 1 (and of report.json's ``policy``), then
the settings added since."""
_SECTION = {f.name: key for key, part in PARTS.items() for f in fields(part)}


@dataclass(frozen=True, init=False)
class Policy:
    """Hyperparameters of the adapt() recipe, one frozen config per concern: ``distillation``
    (:class:`DistillationConfig`), ``views`` (:class:`ViewsConfig`), ``optimisation``,
    ``pruning``, ``quantization`` and ``repair`` (see their docstrings for every setting).

    Every setting also reads by its flat name (``policy.steps``) and is set by it:
    ``Policy(steps=10, flip=False)`` and ``dataclasses.replace(policy, lr=1e-4)`` route it into
    its section (a flat key wins over the section given with it, which may be a dict). ``per_layer_prune``,
    ``per_layer_bits`` and ``layer_lr_scale`` are read-only mappings. ``to_dict`` writes the
    nested version-2 form, ``to_flat_dict`` the version-1 layout; ``from_dict`` reads both."""

    name: str
    distillation: DistillationConfig
    views: ViewsConfig
    optimisation: OptimisationConfig
    pruning: PruningConfig
    quantization: QuantizationConfig
    repair: RepairConfig
    version: int

    def __init__(self, name: str = "hand-set", *, version: int = POLICY_VERSION, **settings) -> None:
        flat: dict[str, dict] = {key: {} for key in PARTS}
        for key, value in settings.items():
            if key in PARTS:
                continue
            if key not in _SECTION:
                raise TypeError(f"Policy got an unexpected setting {key!r}; known: {', '.join(FLAT_FIELDS)}")
            flat[_SECTION[key]][key] = value
        for key, part in PARTS.items():
            given = settings.get(key, part())
            if isinstance(given, Mapping):  # a section as to_dict() writes it
                given = part.from_dict(given)
            if not isinstance(given, part):
                raise FewShotKDError(f"policy {key} must be a {part.__name__}, got {type(given).__name__}")
            object.__setattr__(self, key, replace(given, **flat[key]) if flat[key] else given)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", _version(version))

    def to_dict(self) -> dict:
        """The nested version-2 form (plain dicts, JSON-ready)."""
        return {"name": self.name, **{key: getattr(self, key).to_dict() for key in PARTS}, "version": self.version}

    def to_flat_dict(self) -> dict:
        """Every setting by its flat name, in version 1's order (with this policy's version)."""
        return {"name": self.name, **{k: _plain(getattr(self, k)) for k in FLAT_FIELDS}, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict) -> "Policy":
        """A nested (version 2) or flat (version 1, or any flat settings) dict; unknown keys are errors."""
        unknown = set(data) - set(FLAT_FIELDS) - set(PARTS) - {"name", "version"}
        if unknown:
            raise FewShotKDError(f"policy has unknown keys {sorted(unknown)}; known keys: "
                                 f"{sorted(['name', 'version', *PARTS, *FLAT_FIELDS])}")
        if _version(data.get("version", POLICY_VERSION)) > POLICY_VERSION:
            raise FewShotKDError(f"policy version {data['version']} is newer than this fewshot_kd understands; upgrade")
        return cls(**{k: v for k, v in data.items() if k != "version"})  # version 1 migrates: flat keys go to sections

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


def _version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, Integral) or version < 1:
        raise FewShotKDError(f"policy version must be a whole number of at least 1, got {version!r}")
    return version


def _plain(value):
    return dict(value) if isinstance(value, Mapping) else value


def _flat_reader(section: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, section), name), doc=f"``{section}.{name}``")


for _name, _section in _SECTION.items():
    setattr(Policy, _name, _flat_reader(_section, _name))


HAND_SET = Policy()
HAND_SET_TEXT = Policy(name="hand-set (text)", lr=3.5e-4)
"""The hand-set policy for text: pretrained transformer layers want a smaller Adam step than
conv nets (1e-3 overshoots them; random search on AG News picked 3.5e-4 to 3.9e-4)."""


def hand_set_for(is_text: bool) -> Policy:
    """The hand-set default for the data's modality."""
    return HAND_SET_TEXT if is_text else HAND_SET
