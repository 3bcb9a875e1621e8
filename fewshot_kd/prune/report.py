"""What a pruning step did: sizes before and after, and the channels each layer kept."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch.nn as nn


@dataclass(frozen=True)
class PruneReport:
    """Parameters and MACs before/after, ``channels[name] = (before, after)`` output
    channels (features) of every Conv/Linear layer, ``heads[name] = (before, after)`` attention
    heads per self-attention module, and ``frozen``: modules whose coupled channels were kept
    because the dependency graph cannot see through them (e.g. option-A padding shortcuts)."""

    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    heads: dict[str, tuple[int, int]] = field(default_factory=dict)
    frozen: tuple[str, ...] = ()
    ratio: float = 0.0
    importance: str = ""
    seconds: float = 0.0

    @property
    def params_ratio(self) -> float:
        """Fraction of the parameters left."""
        return self.params_after / self.params_before if self.params_before else 1.0

    @property
    def macs_ratio(self) -> float:
        """Fraction of the MACs left."""
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def pruned_layers(self) -> dict[str, tuple[int, int]]:
        """The layers (and attention modules) that lost units."""
        changed = {k: v for k, v in self.channels.items() if v[1] != v[0]}
        changed.update({k: v for k, v in self.heads.items() if v[1] != v[0]})
        return changed

    def to_dict(self) -> dict:
        out = asdict(self)
        out["channels"] = {k: list(v) for k, v in self.channels.items()}
        out["heads"] = {k: list(v) for k, v in self.heads.items()}
        out["frozen"] = list(self.frozen)
        return out

    def summary(self) -> str:
        return (
            f"params {self.params_before:,} -> {self.params_after:,} ({self.params_ratio:.1%}), "
            f"MACs {self.macs_before:,} -> {self.macs_after:,} ({self.macs_ratio:.1%}), "
            f"{len(self.pruned_layers)} layers pruned, {self.seconds:.2f} s"
        )


def output_widths(model: nn.Module) -> dict[str, int]:
    """Output channels / features of every Conv and Linear layer, by name."""
    widths = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            widths[name] = module.out_channels
        elif isinstance(module, nn.Linear):
            widths[name] = module.out_features
        elif hasattr(module, "nf") and hasattr(module, "nx"):  # transformers' Conv1D (GPT-2)
            widths[name] = module.nf
    return widths


def pair_widths(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {name: (width, after.get(name, width)) for name, width in before.items()}
