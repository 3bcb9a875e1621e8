"""Stretch the few shots: augmented views whose teacher outputs are computed once and cached."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.augment import random_crop_flip
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.distill import FeatureCapture


@dataclass
class ViewBank:
    """``inputs[i]`` (a tensor row or a string) with ``labels[i]``, the teacher's logits and,
    for every distilled teacher layer, its feature. Everything stays on the inputs' device."""

    inputs: torch.Tensor | list
    labels: torch.Tensor
    teacher_logits: torch.Tensor
    teacher_features: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor):
        inputs = self.inputs[index] if isinstance(self.inputs, torch.Tensor) else [self.inputs[i] for i in index.tolist()]
        return inputs, self.labels[index], self.teacher_logits[index], [f[index] for f in self.teacher_features]


def word_dropout(text: str, rate: float, rng: random.Random) -> str:
    """Token-level noise for text: drop each word with probability ``rate`` (never all)."""
    words = text.split()
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or words[:1])


def make_views(shots: LabelledDataset, views_per_shot: int, crop_padding: int | None, flip: bool,
               word_rate: float, seed: int):
    """The shots themselves plus ``views_per_shot - 1`` augmented copies of each."""
    generator = torch.Generator().manual_seed(seed)
    inputs = shots.all_inputs()
    labels = shots.labels.repeat(views_per_shot)
    if isinstance(inputs, torch.Tensor):
        copies = [inputs] + [random_crop_flip(inputs, crop_padding, generator, flip=flip) for _ in range(views_per_shot - 1)]
        return torch.cat(copies), labels
    rng = random.Random(seed)
    texts = list(inputs) + [word_dropout(t, word_rate, rng) for _ in range(views_per_shot - 1) for t in inputs]
    return texts, labels


@torch.no_grad()
def build_bank(teacher: nn.Module, inputs, labels: torch.Tensor, layers: list[str], batch_size: int = 128) -> ViewBank:
    """Run the frozen teacher once over every view, keeping logits and the named features."""
    teacher.eval()
    logits, features = [], [[] for _ in layers]
    with FeatureCapture(teacher, layers, detach=True) as capture:
        for start in range(0, len(labels), batch_size):
            chunk = inputs[start : start + batch_size]
            logits.append(teacher(chunk).float())
            for i, name in enumerate(layers):
                features[i].append(capture.outputs[name].float())
    return ViewBank(inputs, labels, torch.cat(logits), [torch.cat(f) for f in features])
