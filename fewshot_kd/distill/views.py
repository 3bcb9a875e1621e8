"""Stretch the few shots: augmented views whose teacher outputs are computed once and cached."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.augment import MIXES, random_crop_flip
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.distill import FeatureCapture
from fewshot_kd.distill.objective import UNLABELLED  # the label of views that get soft targets only
from fewshot_kd.errors import FewShotKDError


FEATURE_CACHE_BYTES = 2 * 2**30
"""Teacher features over every view are cached up to this size; beyond it (many classes, large
images: 242-way Omniglot at 105x105 would need tens of GB) the bank runs the teacher per batch."""


@dataclass
class ViewBank:
    """``inputs[i]`` (a tensor row or a string) with ``labels[i]``, the teacher's logits and,
    for every distilled teacher layer, its feature. Everything stays on the inputs' device.
    With ``teacher`` set, the features are not cached: :meth:`batch` runs the frozen
    teacher on the batch's inputs and captures ``layers`` (the same values, computed again)."""

    inputs: torch.Tensor | list
    labels: torch.Tensor
    teacher_logits: torch.Tensor
    teacher_features: list[torch.Tensor]
    teacher: nn.Module | None = None
    layers: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor):
        inputs = self.inputs[index] if isinstance(self.inputs, torch.Tensor) else [self.inputs[i] for i in index.tolist()]
        if self.teacher is not None:
            return inputs, self.labels[index], self.teacher_logits[index], _teacher_outputs(self.teacher, self.layers, inputs)[1]
        return inputs, self.labels[index], self.teacher_logits[index], [f[index] for f in self.teacher_features]


@torch.no_grad()
def _teacher_outputs(teacher: nn.Module, layers, inputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The frozen teacher's float logits and the named features on ``inputs``."""
    teacher.eval()
    with FeatureCapture(teacher, list(layers), detach=True) as capture:
        logits = teacher(inputs).float()
        return logits, [capture.outputs[name].float() for name in layers]


def word_dropout(text: str, rate: float, rng: random.Random) -> str:
    """Token-level noise for text: drop each word with probability ``rate`` (never all)."""
    words = text.split()
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or words[:1])


def augmented_copies(inputs, views: int, crop_padding: int | None, flip: bool, word_rate: float, seed: int):
    """``inputs`` (a tensor batch or a list of strings) followed by ``views - 1`` augmented
    copies: random shifts / mirror images for images, word dropout for text."""
    if isinstance(inputs, torch.Tensor):
        generator = torch.Generator().manual_seed(seed)
        return torch.cat([inputs] + [random_crop_flip(inputs, crop_padding, generator, flip=flip) for _ in range(views - 1)])
    rng = random.Random(seed)
    return list(inputs) + [word_dropout(t, word_rate, rng) for _ in range(views - 1) for t in inputs]


def make_views(shots: LabelledDataset, views_per_shot: int, crop_padding: int | None, flip: bool,
               word_rate: float, seed: int):
    """The shots themselves plus ``views_per_shot - 1`` augmented copies of each."""
    inputs = augmented_copies(shots.all_inputs(), views_per_shot, crop_padding, flip, word_rate, seed)
    return inputs, shots.labels.repeat(views_per_shot)




def append_soft_only(inputs, labels: torch.Tensor, extra):
    """Append ``extra`` inputs labelled :data:`UNLABELLED` (distilled on soft targets only)."""
    if isinstance(inputs, torch.Tensor) != isinstance(extra, torch.Tensor):
        raise FewShotKDError("unlabelled inputs must be of the shots' kind: a tensor of images / features, or strings for text")
    merged = torch.cat([inputs, extra.to(inputs.device, inputs.dtype)]) if isinstance(inputs, torch.Tensor) else inputs + extra
    return merged, torch.cat([labels, torch.full((len(extra),), UNLABELLED, dtype=labels.dtype)])


def add_unlabelled(inputs, labels: torch.Tensor, unlabelled, views: int, crop_padding: int | None, flip: bool,
                   word_rate: float, seed: int):
    """Append ``views`` views of every unlabelled input, labelled :data:`UNLABELLED`."""
    return append_soft_only(inputs, labels, augmented_copies(unlabelled, views, crop_padding, flip, word_rate, seed + 1))


def mixed_views(views: torch.Tensor, count: int, per_round: int, kind: str, alpha: float, seed: int) -> torch.Tensor:
    """``count`` rounds of ``per_round`` images drawn from ``views`` and mixed in pairs
    (:func:`~fewshot_kd.augment.mixup` or :func:`~fewshot_kd.augment.cutmix`)."""
    generator = torch.Generator().manual_seed(seed + 2)
    rounds = []
    for r in range(count):
        chosen = views[torch.randint(len(views), (per_round,), generator=generator).to(views.device)]
        rounds.append(MIXES[kind](chosen, alpha=alpha, seed=seed + 100 + r))
    return torch.cat(rounds)


@torch.no_grad()
def build_bank(teacher: nn.Module, inputs, labels: torch.Tensor, layers: list[str], batch_size: int = 128,
               cache_bytes: int | None = FEATURE_CACHE_BYTES) -> ViewBank:
    """Run the frozen teacher once over every view, keeping logits and the named features;
    when the features of all views would exceed ``cache_bytes`` (None: no limit), keep the
    logits only and let the bank compute features per batch."""
    logits, features = [], [[] for _ in layers]
    for start in range(0, len(labels), batch_size):
        chunk_logits, chunk_features = _teacher_outputs(teacher, layers, inputs[start : start + batch_size])
        logits.append(chunk_logits)
        if start == 0 and cache_bytes is not None and layers:
            per_row = sum(f[0].numel() * f.element_size() for f in chunk_features)
            if per_row * len(labels) > cache_bytes:
                features = None
        if features is not None:
            for i, f in enumerate(chunk_features):
                features[i].append(f)
    if features is None:
        return ViewBank(inputs, labels, torch.cat(logits), [], teacher=teacher, layers=tuple(layers))
    return ViewBank(inputs, labels, torch.cat(logits), [torch.cat(f) for f in features])
