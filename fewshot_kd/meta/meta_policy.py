"""A meta-learned policy as adapt() uses it: a trained :class:`PolicyNet` plus the record of
how it was made, saved as ``policy.safetensors`` + ``policy.json`` (no pickled code).

``MetaPolicy.decide(teacher, shots, target)`` describes the task (layer descriptors and
sensitivities measured on the shots) and turns the network's outputs into an ordinary
:class:`~fewshot_kd.adapt.Policy`: per-layer prune ratios and bit widths within the budget,
distilled-layer weights, temperature, alpha, feature weight, per-layer learning-rate scales,
the number of steps and the augmentation strength (crop padding, word-dropout rate).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn

from fewshot_kd._version import __version__
from fewshot_kd.adapt.policy import HAND_SET, HAND_SET_TEXT, Policy
from fewshot_kd.augment import default_padding
from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import load_tensors, read_json, save_tensors, write_json
from fewshot_kd.distill.loop import stopped_steps
from fewshot_kd.meta.descriptors import describe_model, task_features
from fewshot_kd.meta.policy_net import PolicyNet
from fewshot_kd.measure import count_macs
from fewshot_kd.model_io import model_device, to_device, trainable_copy
from fewshot_kd.meta.layer_choice import kept_names
from fewshot_kd.models.text import is_text_model, layer_count, truncate_layers

KIND = "fewshot_kd.meta_policy"
FORMAT_VERSION = 1


def allocate_bits(p8: list[float], params: list[float], average: float) -> list[int]:
    """8 or 4 bits per layer: layers the policy most wants at 8 bits get them while the
    parameter-weighted average stays within ``average``."""
    if average >= 8:
        return [8] * len(p8)
    total = sum(params)
    budget = (average - 4.0) / 4.0 * total  # parameters that may use 8 bits
    bits = [4] * len(p8)
    for i in sorted(range(len(p8)), key=lambda i: -p8[i]):
        if params[i] <= budget:
            bits[i] = 8
            budget -= params[i]
    return bits


STOP_HEAD_KEYS = {"stop_head.weight", "stop_head.bias"}
AUGMENT_HEAD_KEYS = {"augment_head.weight", "augment_head.bias"}
BLOCK_HEAD_KEYS = {"block_head.weight", "block_head.bias"}
OPTIONAL_HEADS = {"stop": STOP_HEAD_KEYS, "augment": AUGMENT_HEAD_KEYS, "blocks": BLOCK_HEAD_KEYS}
"""Heads added after the first policy files: a file may lack each one whole."""
MAX_WORD_DROPOUT = 0.9
"""The learned word-dropout rate's cap (adapt() needs a rate below 1)."""


def _load_weights(net: PolicyNet, state: dict) -> dict[str, bool]:
    """Load ``state`` into ``net``; only whole :data:`OPTIONAL_HEADS` may be missing (a file made
    before they existed). Returns, per optional head, whether the file has it."""
    result = net.load_state_dict(state, strict=False)
    absent = set(result.missing_keys)
    optional = [keys for keys in OPTIONAL_HEADS.values() if keys <= absent]
    missing = sorted(absent.difference(*optional))
    if missing or result.unexpected_keys:
        raise KeyError(f"missing {missing}, unexpected {sorted(result.unexpected_keys)}")
    return {name: not keys <= absent for name, keys in OPTIONAL_HEADS.items()}


def augmentation(base: Policy, strength: float, example, text: bool) -> dict:
    """The :class:`Policy` augmentation fields at ``strength`` (hand-set: 1): for text the word-dropout
    rate scaled (at most :data:`MAX_WORD_DROPOUT`), for images (``example``: a batch of them) the crop
    padding scaled and rounded (the hand-set ``None`` is :func:`~fewshot_kd.augment.default_padding`)."""
    if text:
        return {"text_word_dropout": round(min(base.text_word_dropout * strength, MAX_WORD_DROPOUT), 4)}
    if not isinstance(example, torch.Tensor) or example.dim() != 4:
        return {}  # not images: nothing to crop
    padding = default_padding(example) if base.crop_padding is None else base.crop_padding
    return {"crop_padding": math.floor(strength * padding + 0.5)}


class MetaPolicy:
    def __init__(self, net: PolicyNet, config: dict | None = None, trained_on: list | None = None,
                 history: list | None = None, command: str | None = None, seconds: float | None = None,
                 finished: bool = True, base: Policy = HAND_SET, validation: dict | None = None,
                 learned_stop: bool = True, learned_augment: bool = True, learned_blocks: bool = True) -> None:
        self.net = net.eval()
        self.config = config or {}
        self.trained_on = trained_on or []
        self.history = history or []
        self.command = command
        self.seconds = seconds
        self.finished = finished
        self.base = base
        self.validation = validation  # meta-validation on held-out families (see fewshot_kd.meta.validation)
        self.learned_stop = learned_stop  # False for files made before the stop head: adapt() runs every step
        self.learned_augment = learned_augment  # False for files made before the augmentation head: hand-set views
        self.learned_blocks = learned_blocks  # False for files made before the block head: a text student keeps the last layers

    # ---- files -------------------------------------------------------------------------
    def save(self, out_dir: str | os.PathLike) -> Path:
        from fewshot_kd.measure.environment import environment_info

        out_dir = Path(out_dir)
        save_tensors(out_dir / "policy.safetensors", self.net.state_dict())
        return write_json(out_dir / "policy.json", {
            "kind": KIND, "format_version": FORMAT_VERSION, "fewshot_kd": __version__, "hidden": self.net.hidden,
            "block_prior": self.net.block_prior,
            "command": self.command, "config": self.config, "trained_on": self.trained_on,
            "finished": self.finished, "seconds": self.seconds, "environment": environment_info(),
            "history": self.history, "base": self.base.to_dict(), "validation": self.validation,
        })

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MetaPolicy":
        path = Path(path)
        meta_path = path / "policy.json" if path.is_dir() else path
        if not meta_path.is_file():
            raise FewShotKDError(f"no meta-learned policy at {path}; run `python -m fewshot_kd.meta_train --out DIR` first")
        meta = read_json(meta_path)
        if meta.get("kind") != KIND:
            raise FewShotKDError(f"{meta_path} is not a meta-learned policy file (kind {meta.get('kind')!r})")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise FewShotKDError(f"{meta_path} needs a newer fewshot_kd (format {meta['format_version']}); upgrade")
        weights = meta_path.with_name("policy.safetensors")
        try:
            net = PolicyNet(int(meta["hidden"]), meta.get("block_prior", "last"))  # older files: "last"
            heads = _load_weights(net, load_tensors(weights))
            base = Policy.from_dict(meta["base"]) if "base" in meta else HAND_SET  # older files lack it
        except FewShotKDError as error:
            raise type(error)(f"{meta_path}: {error}") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CorruptFileError(f"{meta_path} / {weights.name} do not hold a meta-learned policy that "
                                   f"this fewshot_kd can read ({type(error).__name__}: {error}); run meta_train again") from None
        return cls(net, meta.get("config"), meta.get("trained_on"), meta.get("history"), meta.get("command"),
                   meta.get("seconds"), meta.get("finished", True), base, meta.get("validation"),
                   heads["stop"], heads["augment"], heads["blocks"])

    @staticmethod
    def is_policy_file(path: str | os.PathLike) -> bool:
        path = Path(path)
        path = path / "policy.json" if path.is_dir() else path
        try:
            return path.is_file() and read_json(path).get("kind") == KIND
        except ValueError:
            return False

    # ---- decisions ---------------------------------------------------------------------
    def _steps(self, decisions, budget: int) -> int:
        """The steps adapt() runs: the learned stop fraction of ``budget`` (all of it for a
        policy file made before the stop head)."""
        return stopped_steps(float(decisions.stop_fraction), budget) if self.learned_stop else budget

    def _augmentation(self, decisions, example, text: bool) -> dict:
        """The learned augmentation's Policy fields (none: the base's, for a file made before the head)."""
        return augmentation(self.base, float(decisions.augment_strength), example, text) if self.learned_augment else {}

    @torch.no_grad()
    def decide(self, teacher: nn.Module, shots, target, student: nn.Module | None = None) -> tuple[Policy, dict]:
        """The :class:`Policy` for compressing ``teacher`` (into ``student``, or a student
        derived from it when ``None``) at ``target`` from the labelled ``shots``."""
        from fewshot_kd.distill import map_layers

        text = is_text_model(teacher)
        subject = trainable_copy(teacher if student is None else student)
        # a count of layers (target layers=3): the block head picks which, on the full encoder (a file made
        # before the block head decides, as it was trained, for the last layers)
        choose = layer_count(target.layers) if student is None and text and self.learned_blocks else None
        if student is None and text and target.layers and choose is None:
            subject = truncate_layers(subject, target.layers)  # what adapt() derives, then prunes
        device = model_device(teacher)  # the shots are on the CPU; the teacher may be on a GPU
        example = to_device(shots.input_batch(slice(0, 1)), device)
        pairs = [] if text or (student is not None and is_text_model(student)) else \
            map_layers(teacher, subject, self.base.feature_layers, example_inputs=example)
        with torch.enable_grad():
            # sensitivities cost one forward per layer: fewer sentences keep that cheap for text encoders
            desc = describe_model(subject, example, to_device(shots.all_inputs(), device), pairs,
                                  max_examples=16 if text else 64)
        k = len(shots) // shots.num_classes
        derived_macs = target.macs if student is None else None
        task = task_features(k, shots.num_classes, derived_macs, target.bits, text)
        # the budget is a fraction of the teacher's MACs; the network prunes the described model
        budget = None if derived_macs is None else \
            min(1.0, derived_macs * count_macs(teacher, example) / count_macs(subject, example))
        here = model_device(self.net)
        decisions = self.net(desc.to(here), task.to(here), budget, target.bits, keep_blocks=choose)
        rename = (lambda name: name) if decisions.kept_blocks is None else kept_names(subject, decisions.kept_blocks)
        ratios = {rename(g.root): round(float(r), 4) for g, r in zip(desc.groups, decisions.ratios)
                  if rename(g.root) is not None}
        kept = [i for i, name in enumerate(desc.layers) if rename(name) is not None]
        # the inner loop steps text students from the text hand-set rate (InnerConfig.text_lr)
        base_lr = HAND_SET_TEXT.lr if text else self.base.lr
        bits = allocate_bits([float(decisions.p8[i]) for i in kept], [float(desc.layer_params[i]) for i in kept],
                             target.bits) if target.bits else []
        layers = [rename(desc.layers[i]) for i in kept]
        # the inner loop steps every layer at base lr x inner_lr_scale x layer scale: so does adapt()
        policy = replace(
            self.base,
            name="meta-learned",
            temperature=round(float(decisions.temperature), 4),
            alpha=round(float(decisions.alpha), 4),
            feature_weight=round(float(decisions.feature_weight), 4),
            layer_weights=tuple(round(float(w), 4) for w in decisions.pair_weights) if pairs else None,
            per_layer_prune=ratios if derived_macs is not None else {},
            lr=float(base_lr * decisions.inner_lr_scale),
            steps=self._steps(decisions, self.base.steps),
            new_arch_steps=self._steps(decisions, self.base.new_arch_steps),
            layer_lr_scale={n: round(float(decisions.lr_scale[i]), 4) for n, i in zip(layers, kept)},
            per_layer_bits={n: b for n, b in zip(layers, bits)} if bits and min(bits) < target.bits else {},
            text_layers=None if decisions.kept_blocks is None else tuple(decisions.kept_blocks),
            **self._augmentation(decisions, example, text),
        )
        info = {"predicted_macs_fraction": float(decisions.macs_fraction), "expected_bits": float(decisions.avg_bits),
                "inner_lr_scale": float(decisions.inner_lr_scale), "trained_on": self.trained_on,
                "stop_fraction": float(decisions.stop_fraction) if self.learned_stop else None,
                "augment_strength": float(decisions.augment_strength) if self.learned_augment else None,
                "layers": len(desc.layers), "groups": len(desc.groups), "pairs": [list(p) for p in pairs],
                "kept_blocks": decisions.kept_blocks,
                "block_scores": None if decisions.block_scores is None else
                [round(float(s), 4) for s in decisions.block_scores]}
        return policy, info
