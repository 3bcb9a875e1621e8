"""Differentiable channel masks for the inner loop, and hardening them into real pruning.

:func:`attach_soft_masks` puts one :class:`SoftChannelMask` on every prunable channel
group (found with the same dependency graph as :func:`~fewshot_kd.prune.prune_`). The
gate ``sigmoid(logits / temperature)`` multiplies, through forward hooks, the output of
each module that emits the group's channels (the BatchNorm after a conv, else the
conv/linear itself; every branch of a residual stream shares one mask), so module types
and state-dict keys are unchanged and the mask logits train with any optimizer.

:func:`harden_` then decides which channels stay (a gate threshold or a keep ratio; the
others' gates become exactly 0), folds the gates into the weights of the gated modules
and physically removes the zero channels: the hardened model gives the same outputs as
the masked model with those decisions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
import torch.nn as nn

from fewshot_kd.prune import _graph
from fewshot_kd.prune._util import count_params, resolve_modules
from fewshot_kd.prune.report import PruneReport, output_widths, pair_widths
from fewshot_kd.prune.targets import count_macs

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)
_FOLDABLE = _graph.PRODUCERS + _NORMS


class SoftChannelMask(nn.Module):
    """One differentiable gate per channel: ``sigmoid(logits / temperature) * keep``.

    ``keep`` is a 0/1 buffer (all ones until :meth:`SoftMasks.decide_`); ``forward(x, dim)``
    multiplies ``x`` by the gates along ``dim``."""

    def __init__(self, num_channels: int, init_logit: float = 3.0, temperature: float = 1.0) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.logits = nn.Parameter(torch.full((num_channels,), float(init_logit)))
        self.register_buffer("keep", torch.ones(num_channels))
        self.temperature = float(temperature)

    @property
    def num_channels(self) -> int:
        return self.logits.numel()

    def soft_gate(self) -> torch.Tensor:
        return torch.sigmoid(self.logits / self.temperature)

    def gate(self) -> torch.Tensor:
        return self.soft_gate() * self.keep

    def forward(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[dim] = self.num_channels
        return x * self.gate().to(x.dtype).view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, temperature={self.temperature}"


@dataclass(frozen=True)
class MaskedGroup:
    """A prunable channel group: its root layer and the modules whose outputs it gates
    (``(module name, channel dim)``)."""

    root: str
    channels: int
    gated: tuple[tuple[str, int], ...]


def _key(name: str) -> str:
    return name.replace(".", "__")


class SoftMasks(nn.Module):
    """The masks attached to a model, by group root name. Train ``masks.parameters()``."""

    def __init__(self, groups: list[MaskedGroup], example_inputs: Any, barriers: list[str],
                 init_logit: float, temperature: float) -> None:
        super().__init__()
        self.groups = {g.root: g for g in groups}
        self.masks = nn.ModuleDict({_key(g.root): SoftChannelMask(g.channels, init_logit, temperature) for g in groups})
        self.example_inputs = example_inputs
        self.barriers = list(barriers)  # modules the dependency graph must treat as opaque
        self.decided = False
        self._handles: list[Any] = []

    def __getitem__(self, root: str) -> SoftChannelMask:
        return self.masks[_key(root)]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[str]:
        return iter(self.groups)

    def items(self) -> Iterator[tuple[str, SoftChannelMask]]:
        return ((root, self[root]) for root in self.groups)

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def gates(self) -> dict[str, torch.Tensor]:
        return {root: mask.gate() for root, mask in self.items()}

    def penalty(self) -> torch.Tensor:
        """Mean gate over all channels (an L1 sparsity term to add to the loss)."""
        gates = torch.cat([mask.gate() for _, mask in self.items()])
        return gates.mean()

    def set_temperature_(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        for _, mask in self.items():
            mask.temperature = float(temperature)

    @torch.no_grad()
    def decide_(self, threshold: float | None = None, keep_ratio: float | None = None) -> dict[str, int]:
        """Set each mask's ``keep``: gates ``>= threshold``, or the ``keep_ratio`` largest
        gates of each group; at least one channel per group. Returns channels kept per group."""
        if (threshold is None) == (keep_ratio is None):
            raise ValueError("give exactly one of threshold or keep_ratio")
        if keep_ratio is not None and not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        kept = {}
        for root, mask in self.items():
            soft = mask.soft_gate() * mask.keep
            if threshold is not None:
                keep = soft >= threshold
            else:
                k = max(1, int(mask.num_channels * keep_ratio + 1e-9))
                keep = torch.zeros_like(soft, dtype=torch.bool)
                keep[torch.argsort(soft, descending=True, stable=True)[:k]] = True
            if not keep.any():
                keep[torch.argmax(soft)] = True
            mask.keep.copy_(keep.to(mask.keep.dtype))
            kept[root] = int(keep.sum())
        self.decided = True
        return kept

    def attach_(self, model: nn.Module) -> None:
        """Register the forward hooks on ``model`` (done by :func:`attach_soft_masks`)."""
        if self._handles:
            raise RuntimeError("the masks are already attached")
        modules = dict(model.named_modules())
        for root, group in self.groups.items():
            for name, dim in group.gated:
                self._handles.append(modules[name].register_forward_hook(_gate_hook(self[root], dim)))

    def remove(self) -> None:
        """Remove the hooks (the model computes without the gates again)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _gate_hook(mask: SoftChannelMask, dim: int):
    def hook(module: nn.Module, inputs: tuple, output: Any) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"cannot gate a {type(output).__name__} output of {type(module).__name__}")
        return mask(output, dim)

    return hook


def _foldable(module: nn.Module) -> bool:
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups == module.out_channels == module.in_channels
        return not module.transposed and (module.groups == 1 or depthwise)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.affine
    if isinstance(module, nn.LayerNorm):
        return module.elementwise_affine and len(module.normalized_shape) == 1
    return isinstance(module, nn.Linear)


def _channel_dim(module: nn.Module) -> int:
    return -1 if isinstance(module, (nn.Linear, nn.LayerNorm)) else 1


def find_mask_groups(model: nn.Module, example_inputs: Any, ignored_layers: Iterable[str | nn.Module] | None = None):
    """The channel groups that can carry a mask and be hardened exactly (a group is skipped
    if it holds a layer whose gate cannot be folded, e.g. a grouped or transposed conv, or
    if its channels are re-indexed by concatenation or reshaping), and the names of the
    barrier modules: ``(groups, barriers)``."""
    found = _graph.inspect_model(model, example_inputs)
    if ignored_layers is None:
        ignored = [dict(model.named_modules())[found.last_layer]] if found.last_layer is not None else []
    else:
        ignored = resolve_modules(model, ignored_layers, "ignored_layers")
    barriers = _graph.frozen_layers(model, found, ignored)
    graph = _graph.build_graph(model, example_inputs, barriers)
    names = {id(m): n for n, m in model.named_modules()}
    skip = [m for layer in ignored + barriers for m in layer.modules()]
    groups = []
    for group in graph.get_all_groups(ignored_layers=skip, root_module_types=_graph.PRODUCERS):
        root = group[0].dep.target.module
        channels = graph.get_out_channels(root)
        emitters, ok = [], True
        for item in group:
            module, handler = item.dep.target.module, item.dep.handler
            if id(module) not in names or not graph.is_out_channel_pruning_fn(handler):
                continue
            if not isinstance(module, _FOLDABLE) or not _foldable(module):
                ok = False
            elif sorted(item.idxs) != list(range(channels)) or list(item.root_idxs) != list(item.idxs):
                ok = False
            emitters.append(module)
        if not ok or not emitters:
            continue
        emitter_ids = {id(m) for m in emitters}
        gated = []
        for module in emitters:
            if isinstance(module, _graph.PRODUCERS):
                after = [n.module for n in graph.module2node[module].outputs]
                if any(isinstance(m, _NORMS) and id(m) in emitter_ids for m in after):
                    continue  # its norm carries the gate
            gated.append((names[id(module)], _channel_dim(module)))
        groups.append(MaskedGroup(names[id(root)], int(channels), tuple(gated)))
    order = {n: i for i, n in enumerate(names.values())}
    groups.sort(key=lambda g: order[g.root])
    return groups, [names[id(m)] for m in barriers]


def attach_soft_masks(
    model: nn.Module,
    example_inputs: Any,
    *,
    ignored_layers: Iterable[str | nn.Module] | None = None,
    layers: Iterable[str] | None = None,
    init_logit: float = 3.0,
    temperature: float = 1.0,
) -> SoftMasks:
    """Attach a :class:`SoftChannelMask` to every prunable channel group of ``model``
    (``layers``: only the groups rooted at these layer names). ``ignored_layers`` as in
    :func:`~fewshot_kd.prune.prune_` (default: the classifier). Returns the masks; their
    hooks stay until :meth:`SoftMasks.remove` or :func:`harden_`."""
    groups, barriers = find_mask_groups(model, example_inputs, ignored_layers)
    if layers is not None:
        wanted = set(layers)
        unknown = wanted - {g.root for g in groups}
        if unknown:
            raise ValueError(
                f"no maskable channel group is rooted at {sorted(unknown)}; maskable: {[g.root for g in groups]}"
            )
        groups = [g for g in groups if g.root in wanted]
    masks = SoftMasks(groups, example_inputs, barriers, init_logit, temperature)
    param = next(iter(model.parameters()), None)
    if param is not None:
        masks.to(param.device)
    masks.attach_(model)
    return masks


@torch.no_grad()
def _fold_(module: nn.Module, gate: torch.Tensor) -> None:
    gate = gate.to(module.weight.dtype)
    if isinstance(module, _NORMS):
        module.weight.mul_(gate)
    else:
        module.weight.mul_(gate.view(-1, *([1] * (module.weight.dim() - 1))))
    if module.bias is not None:
        module.bias.mul_(gate)


def harden_(
    model: nn.Module,
    masks: SoftMasks,
    *,
    threshold: float | None = None,
    keep_ratio: float | None = None,
) -> PruneReport:
    """Turn the soft masks into physical pruning, in place: keep the channels whose gate is
    ``>= threshold`` or the ``keep_ratio`` largest per group (neither: the decision of an
    earlier :meth:`SoftMasks.decide_`, else threshold 0.5), fold every gate into the weights
    of the module it multiplies, remove the hooks, then remove the zero channels with the
    dependency graph. The result computes what the masked model computed with that
    decision (up to float rounding), with ordinary, smaller modules."""
    if not masks.attached:
        raise RuntimeError("the masks are not attached to a model (already hardened or removed)")
    if threshold is None and keep_ratio is None and not masks.decided:
        threshold = 0.5
    start = time.perf_counter()
    inputs = masks.example_inputs
    macs_before, params_before, widths_before = count_macs(model, inputs), count_params(model), output_widths(model)
    if threshold is not None or keep_ratio is not None:
        masks.decide_(threshold=threshold, keep_ratio=keep_ratio)
    modules = dict(model.named_modules())
    for root, group in masks.groups.items():
        gate = masks[root].gate().detach()
        for name, _ in group.gated:
            _fold_(modules[name], gate)
    masks.remove()
    barriers = resolve_modules(model, masks.barriers, "barriers")
    graph = _graph.build_graph(model, inputs, barriers)
    for root, mask in masks.items():
        drop = torch.nonzero(mask.keep == 0).flatten().tolist()
        if drop:
            layer = modules[root]
            pruner = graph.get_pruner_of_module(layer)
            graph.get_pruning_group(layer, pruner.prune_out_channels, drop).prune()
    return PruneReport(
        params_before=params_before,
        params_after=count_params(model),
        macs_before=macs_before,
        macs_after=count_macs(model, inputs),
        channels=pair_widths(widths_before, output_widths(model)),
        frozen=tuple(masks.barriers),
        ratio=1.0 - sum(int(m.keep.sum()) for _, m in masks.items()) / max(1, sum(g.channels for g in masks.groups.values())),
        importance="soft_mask",
        seconds=time.perf_counter() - start,
    )
