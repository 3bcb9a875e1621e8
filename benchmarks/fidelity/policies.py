"""Policies for the fidelity benchmark, and their fixed decisions for a meta objective.

Works against both the current ``fewshot_kd`` and the one at an older commit (the old inner
loop is scored by importing that version): only names both versions share are used.
"""

from __future__ import annotations

import math
import random
import torch


def draw_policies(count: int, groups: list[str], seed: int = 0, base=None) -> list:
    """``count`` policies from adapt_random_search's distribution around ``base`` (default the
    hand-set policy; the first policy is ``base`` itself)."""
    from fewshot_kd.adapt.policy import HAND_SET
    from benchmarks.methods.adapt_random_search import _draw

    rng = random.Random(f"fewshot_kd.fidelity:{seed}")
    base = base or HAND_SET
    return [base] + [_draw(base, rng, groups, base.steps) for _ in range(count - 1)]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def policy_decisions(policy: dict, desc, target_macs: float, base_lr: float, max_ratio: float = 0.9,
                     keep_blocks: int | None = None):
    """The ``Decisions`` a policy stands for: its per-group prune preferences projected onto the
    MACs budget (as adapt() rescales them), 8-bit weights, uniform layer learning-rate scales,
    its loss knobs, and ``inner_lr_scale = policy lr / base lr``. ``keep_blocks`` (text students
    that keep that many encoder layers): the last ones, as adapt() derives without a choice."""
    from fewshot_kd.meta.policy_net import Decisions
    from fewshot_kd.meta.relax import expected_bits, project_ratios

    kept = {}
    macs_fraction = desc.macs_fraction
    if keep_blocks is not None and getattr(desc, "blocks", None):
        from fewshot_kd.meta.layer_choice import last_gates

        count = len(desc.blocks)
        hard = last_gates(count, keep_blocks)
        kept = {"block_gates": hard, "kept_blocks": list(range(count - keep_blocks, count))}

        def macs_fraction(ratios):
            return desc.macs_fraction(ratios, hard)
    prune = policy.get("per_layer_prune") or {}
    preferences = torch.tensor([_logit(prune.get(g.root, 0.5) / max_ratio) for g in desc.groups])
    ratios = project_ratios(preferences, macs_fraction, target_macs, max_ratio) if desc.groups else preferences
    layers = len(desc.layers)
    p8 = torch.ones(layers)
    pairs = desc.pair_features.shape[0]
    weights = policy.get("layer_weights")
    return Decisions(
        ratios=ratios,
        p8=p8,
        lr_scale=torch.ones(layers),
        pair_weights=torch.tensor(list(weights) if weights else [1.0] * pairs, dtype=torch.float32),
        temperature=torch.tensor(float(policy["temperature"])),
        alpha=torch.tensor(float(policy["alpha"])),
        feature_weight=torch.tensor(float(policy["feature_weight"])),
        inner_lr_scale=torch.tensor(float(policy["lr"]) / base_lr),
        macs_fraction=macs_fraction(ratios) if desc.groups else torch.tensor(1.0),
        avg_bits=expected_bits(p8, desc.layer_params),
        **kept,
    )


class FixedPolicy:
    """Answers a policy network's call with a fixed policy's decisions (any call signature)."""

    def __init__(self, policy: dict, base_lr: float) -> None:
        self.policy, self.base_lr = policy, base_lr

    def __call__(self, desc, task, target_macs, *rest, keep_blocks=None, **kwargs):
        return policy_decisions(self.policy, desc, target_macs, self.base_lr, keep_blocks=keep_blocks)


def as_dict(policy) -> dict:
    return policy.to_flat_dict() if hasattr(policy, "to_flat_dict") else dict(policy)
