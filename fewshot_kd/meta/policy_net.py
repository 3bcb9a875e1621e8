"""The learnable policy: descriptors of a task in, adapt()'s decisions out (differentiably).

A shared MLP embeds every layer (its descriptor next to the task vector); per-layer heads give
a pruning preference, a Meta-SGD learning-rate scale and the probability of 8-bit weights; a
pair head weights every distilled layer pair; a global head on the mean layer embedding gives
temperature, alpha, feature weight and the inner learning-rate scale; a stop head gives the
fraction of the step budget after which the cosine schedule ends (the learned number of steps);
an augmentation head gives the augmentation strength (see :func:`augment_strength`); for a text
student told how many encoder layers to keep, a block head scores every transformer block (its
layers' mean embedding and its block descriptor) on top of a depth prior, and the top-scored
blocks are kept (:mod:`fewshot_kd.meta.layer_choice`).
The last layers start at zero with biases set so that an untrained policy reproduces the
hand-set recipe (its stop fraction starts at :data:`INITIAL_STOP`, its augmentation strength at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.adapt.policy import HAND_SET
from fewshot_kd.meta.descriptors import BLOCK_FEATURES, LAYER_FEATURES, PAIR_FEATURES, TASK_FEATURES, ModelDescription
from fewshot_kd.meta.layer_choice import HEAD_SCALE, check_block_prior, depth_prior, keep_gates, top_blocks
from fewshot_kd.meta.precision import fp32, full_precision
from fewshot_kd.meta.relax import BIT_CHOICES, expected_bits, project_ratios


STOP_RANGE = (0.25, 1.0)
"""The learned stop fraction's bounds: at least a quarter of the step budget, at most all of it."""
INITIAL_STOP = 0.98
AUGMENT_RANGE = (0.0, 2.0)
"""The augmentation strength's bounds: 0 is no augmentation, 1 the hand-set recipe (the head's
zero logit), 2 twice its crop padding / word-dropout rate."""


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _head(hidden: int, out: int, bias: list[float]) -> nn.Linear:
    layer = nn.Linear(hidden, out)
    nn.init.zeros_(layer.weight)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor(bias))
    return layer


@dataclass
class Decisions:
    """Differentiable decisions for one task. ``ratios[g]``: prune ratio of group ``g``;
    ``p8[l]``: probability that layer ``l`` keeps 8-bit weights; ``lr_scale[l]``: Meta-SGD
    scale of layer ``l``; ``pair_weights[p]``: weight of distilled pair ``p``."""

    ratios: torch.Tensor
    p8: torch.Tensor
    lr_scale: torch.Tensor
    pair_weights: torch.Tensor
    temperature: torch.Tensor
    alpha: torch.Tensor
    feature_weight: torch.Tensor
    inner_lr_scale: torch.Tensor
    macs_fraction: torch.Tensor
    avg_bits: torch.Tensor
    stop_fraction: torch.Tensor | None = None  # None: the full step budget (no stop head)
    augment_strength: torch.Tensor | None = None  # None: the hand-set augmentation (no augmentation head)
    block_gates: torch.Tensor | None = None  # per transformer block, 1 kept / 0 skipped (straight-through); None: no choice
    kept_blocks: list[int] | None = None  # the blocks kept, increasing
    block_scores: torch.Tensor | None = None  # per block: the block head's score plus the depth prior


def stop_fraction(logit: torch.Tensor) -> torch.Tensor:
    """The stop head's output mapped into :data:`STOP_RANGE`."""
    low, high = STOP_RANGE
    return low + (high - low) * torch.sigmoid(logit)


def augment_strength(logit: torch.Tensor) -> torch.Tensor:
    """The augmentation head's output mapped into :data:`AUGMENT_RANGE`: the factor on the
    hand-set crop padding (images) and word-dropout rate (text). A logit of 0 gives exactly 1,
    the hand-set recipe, strictly inside the range (a sigmoid reaches neither end). The
    meta-gradient reaches it on image episodes only (blended views, :mod:`fewshot_kd.meta.augment_views`):
    word dropout on text is discrete, so a text task's strength is what the shared layers learned."""
    low, high = AUGMENT_RANGE
    return low + (high - low) * torch.sigmoid(logit)


def project_p8(logits: torch.Tensor, layer_params: torch.Tensor, target_bits: float | None) -> torch.Tensor:
    """Per-layer probabilities of 8-bit weights whose parameter-weighted expected bits meet
    ``target_bits`` exactly below 8 (the logits are shifted together, as prune ratios are),
    and ``sigmoid(logits)`` with no budget or a budget of 8 bits or more."""
    if target_bits is None or target_bits >= 8 or logits.numel() == 0:
        return torch.sigmoid(logits)
    high = BIT_CHOICES[1]

    def bits_fraction(four_bit: torch.Tensor) -> torch.Tensor:
        return expected_bits(1 - four_bit, layer_params) / high

    four_bit = project_ratios(-logits, bits_fraction, float(target_bits) / high, max_ratio=1.0)
    return 1 - four_bit


class PolicyNet(nn.Module):
    def __init__(self, hidden: int = 32, block_prior: str = "last") -> None:
        super().__init__()
        self.hidden = hidden
        self.block_prior = check_block_prior(block_prior)  # refused now, not at the first text episode
        self.layer = nn.Sequential(nn.Linear(LAYER_FEATURES + TASK_FEATURES, hidden), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh())
        self.layer_head = _head(hidden, 3, [0.0, 0.0, 4.0])  # prune preference, lr log-scale, 8-bit logit
        self.pair = nn.Sequential(nn.Linear(PAIR_FEATURES + TASK_FEATURES, hidden), nn.Tanh())
        self.pair_head = _head(hidden, 1, [_inverse_softplus(1.0)])
        self.global_ = nn.Sequential(nn.Linear(hidden + TASK_FEATURES, hidden), nn.Tanh())
        self.global_head = _head(hidden, 4, [
            _logit((HAND_SET.temperature - 1.0) / 9.0),  # T = 1 + 9 sigmoid
            _logit(HAND_SET.alpha),
            _inverse_softplus(HAND_SET.feature_weight),
            0.0,  # inner lr log-scale
        ])
        low, high = STOP_RANGE
        with torch.random.fork_rng(devices=[]):  # it starts at zero: draws made after it stay as they were without it
            self.stop_head = _head(hidden, 1, [_logit((INITIAL_STOP - low) / (high - low))])
            self.augment_head = _head(hidden, 1, [0.0])  # strength 1: the hand-set augmentation
            self.block_head = _head(hidden + BLOCK_FEATURES, 1, [0.0])  # 0: the block prior alone (what adapt() keeps)

    def forward(self, desc: ModelDescription, task: torch.Tensor, target_macs: float | None,
                target_bits: float | None = None, max_ratio: float = 0.9, keep_blocks: int | None = None) -> Decisions:
        """The decisions for ``desc`` under ``task``, computed in fp32 even inside autocast.
        ``keep_blocks``: how many transformer blocks a text student keeps (the block head
        chooses which); ``None`` keeps every block of ``desc``."""
        device = self.layer[0].weight.device
        with full_precision(device):
            return self._decide(desc, fp32(task.to(device)), target_macs, target_bits, max_ratio, keep_blocks)

    def block_scores(self, desc: ModelDescription, h: torch.Tensor) -> torch.Tensor:
        """Per transformer block: the block head on its layers' mean embedding and its
        descriptor, plus the block prior (:func:`~fewshot_kd.meta.layer_choice.depth_prior`)."""
        rows = torch.stack([h[r].mean(0) for r in desc.blocks])
        learned = HEAD_SCALE * self.block_head(torch.cat([rows, fp32(desc.block_features)], 1)).squeeze(1)
        return learned + depth_prior(len(desc.blocks), learned, self.block_prior)

    def _decide(self, desc: ModelDescription, task: torch.Tensor, target_macs: float | None,
                target_bits: float | None, max_ratio: float, keep_blocks: int | None = None) -> Decisions:
        L = desc.layer_features.shape[0]
        h = self.layer(torch.cat([fp32(desc.layer_features), task.expand(L, -1)], 1))
        per_layer = self.layer_head(h)
        block_gates = kept = scores = None
        if keep_blocks is not None and desc.blocks:
            scores = self.block_scores(desc, h)
            block_gates, kept = keep_gates(scores, keep_blocks), top_blocks(scores.detach(), keep_blocks)
        hard = None if block_gates is None else block_gates.detach()

        def macs_fraction(ratios: torch.Tensor) -> torch.Tensor:  # every block costs the same: the hard choice counts
            return desc.macs_fraction(ratios, hard)

        preferences = per_layer[desc.group_layer_index, 0] if desc.groups else per_layer.new_zeros(0)
        if target_macs is None or not desc.groups:
            ratios = torch.zeros_like(preferences)
        else:
            ratios = project_ratios(preferences, macs_fraction, target_macs, max_ratio)
        P = desc.pair_features.shape[0]
        if P:
            pair_weights = F.softplus(self.pair_head(self.pair(torch.cat([fp32(desc.pair_features), task.expand(P, -1)], 1)))).squeeze(1)
        else:
            pair_weights = per_layer.new_zeros(0)
        summary = self.global_(torch.cat([h.mean(0), task]))
        g = self.global_head(summary)
        layer_params = desc.layer_params * desc.layer_keep(hard, desc.layer_params)  # skipped blocks store nothing
        p8 = project_p8(per_layer[:, 2], layer_params, target_bits)
        return Decisions(
            ratios=ratios,
            p8=p8,
            lr_scale=torch.exp(2.0 * torch.tanh(per_layer[:, 1] / 2.0)),
            pair_weights=pair_weights,
            temperature=1.0 + 9.0 * torch.sigmoid(g[0]),
            alpha=torch.sigmoid(g[1]),
            feature_weight=F.softplus(g[2]),
            inner_lr_scale=torch.exp(2.0 * torch.tanh(g[3] / 2.0)),
            macs_fraction=macs_fraction(ratios) if desc.groups else per_layer.new_tensor(1.0),
            avg_bits=expected_bits(p8, layer_params),
            stop_fraction=stop_fraction(self.stop_head(summary)[0]),
            augment_strength=augment_strength(self.augment_head(summary)[0]),
            block_gates=block_gates,
            kept_blocks=kept,
            block_scores=scores,
        )
