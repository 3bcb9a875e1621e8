"""What the meta-learned policy reads: per-layer descriptors of the model being compressed
and a task vector, so one policy applies to architectures it never saw.

Per Conv2d / Linear layer (and GPT-2's ``Conv1D``, a linear layer stored ``[in, out]``): type,
widths, kernel, depth position, share of params and MACs, whether it roots a prunable channel
group, and two sensitivities measured on the support shots (teacher-student KL when the half of the group's channels that the deployed pruner
ranks lowest are gated off, and when the weights are rounded to 4 bits). Per distilled
layer pair: depth, channels, spatial size. Per transformer block of a text encoder: depth, and
the teacher-student KL when the block is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_layer_weight
from fewshot_kd.models._text_layers import block_names, encoder_layers
from fewshot_kd.prune.gpt2 import is_conv1d

LAYER_FEATURES = 12
TASK_FEATURES = 5
PAIR_FEATURES = 4
BLOCK_FEATURES = 2


@dataclass
class MaskGroup:
    """A prunable group: ``root``, the name the deployed pruner's ``per_layer`` takes (a
    conv's output channels, a transformer layer's ``attention.self`` heads or its
    ``intermediate.dense`` FFN neurons); ``channels`` units of ``block`` outputs each (a
    head is ``head_size`` outputs); the ``(module, dim)`` whose outputs it gates (``dim``: the
    channel axis of its output); the indices of the layers whose MACs scale with its width;
    ``row``: the layer whose descriptor carries the group (default ``root``); ``offset``: where
    the gated outputs start among the module's (GPT-2's value heads sit after the query and key
    columns of the fused ``c_attn``); ``transposed``: the gated modules store their weight
    ``[in, out]`` (GPT-2's ``Conv1D``)."""

    root: str
    channels: int
    gated: tuple[tuple[str, int], ...]
    layers: tuple[int, ...] = ()
    block: int = 1
    row: str | None = None
    offset: int = 0
    transposed: bool = False

    @property
    def layer(self) -> str:
        return self.row or self.root


@dataclass
class ModelDescription:
    layers: list[str]
    layer_features: torch.Tensor  # [L, LAYER_FEATURES]
    groups: list[MaskGroup]
    group_layer_index: list[int]  # index into ``layers`` of each group's root
    pairs: list[tuple[str, str]]
    pair_features: torch.Tensor  # [P, PAIR_FEATURES]
    layer_params: torch.Tensor  # [L] parameter count of every layer's weight
    layer_macs: torch.Tensor  # [L] MACs per input of every layer
    blocks: list[list[int]] = field(default_factory=list)  # per transformer block, its rows of ``layers``
    block_features: torch.Tensor | None = None  # [B, BLOCK_FEATURES] per transformer block (None: no blocks)
    transposed: frozenset[str] = frozenset()  # layers whose weight is stored [in, out] (GPT-2's Conv1D)

    def to(self, device) -> "ModelDescription":
        for name in ("layer_features", "pair_features", "layer_params", "layer_macs", "block_features"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def layer_keep(self, keep_blocks: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Per layer, the gate of the transformer block it sits in (1 outside blocks, or
        without ``keep_blocks``), in ``like``'s dtype and device."""
        kept = torch.ones(len(self.layers), dtype=like.dtype, device=like.device)
        if keep_blocks is not None:
            for rows, gate in zip(self.blocks, keep_blocks):
                kept[rows] = gate.to(like.dtype)
        return kept

    def macs_fraction(self, ratios: torch.Tensor, keep_blocks: torch.Tensor | None = None) -> torch.Tensor:
        """MACs left after pruning group ``g`` by ``ratios[g]``, as a fraction of the unpruned
        model's: every layer's MACs scale with the kept share of each group it touches
        (its input and its output channels), which is exact up to channel rounding; with
        ``keep_blocks`` (one 0/1 gate per transformer block), a skipped block's layers cost nothing."""
        kept = self.layer_keep(keep_blocks, ratios)
        for g, r in zip(self.groups, ratios):
            scale = torch.ones(len(self.layers), dtype=ratios.dtype, device=ratios.device)
            scale[list(g.layers)] = 1 - r
            kept = kept * scale
        macs = self.layer_macs.to(ratios)
        return (macs * kept).sum() / macs.sum()


def task_features(shots: int, num_classes: int, target_macs: float | None, target_bits: int | None,
                  text: bool) -> torch.Tensor:
    return torch.tensor([
        math.log(shots) / math.log(20.0),
        math.log(max(num_classes, 2)) / math.log(1000.0),
        1.0 if target_macs is None else float(target_macs),
        (8.0 if target_bits is None else float(target_bits)) / 8.0,
        1.0 if text else 0.0,
    ])


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.Linear)) or is_conv1d(module)


def _widths(module: nn.Module) -> tuple[int, int]:
    """``(out, in)`` features of a Conv2d, Linear or ``Conv1D``."""
    if isinstance(module, nn.Conv2d):
        return module.out_channels, module.in_channels
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    return module.nf, module.nx


def _layer_shapes(model: nn.Module, example) -> dict[str, int]:
    """MACs per input of every Conv2d / Linear / ``Conv1D`` layer whose weight is its own (a
    head tied to the token embedding is left out, as its weight is the embedding's), from
    forward hooks on ``example``."""
    owner = {id(p): n for n, p in model.named_parameters()}  # a shared weight goes by its first name
    macs: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if _is_layer(module) and owner.get(id(module.weight)) == f"{name}.weight":
            def hook(m, inputs, output, name=name):
                batch = output.shape[0] if output.dim() > 1 else 1
                per_out = m.weight[0].numel() if isinstance(m, nn.Conv2d) else _widths(m)[1]
                macs[name] = macs.get(name, 0) + output.numel() // max(batch, 1) * per_out
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return macs


def find_groups(model: nn.Module, example) -> list[MaskGroup]:
    """Prunable groups: for BERT-style encoders and GPT-2s the attention heads and the FFN
    neurons of every layer (:mod:`fewshot_kd.prune.transformer`, :mod:`fewshot_kd.prune.gpt2`),
    else the channel groups of the project's dependency graph; none for models it cannot trace."""
    from fewshot_kd.prune.gpt2 import find_gpt2_layers
    from fewshot_kd.prune.transformer import find_transformer_layers

    names = {id(m): n for n, m in model.named_modules()}
    layers = find_transformer_layers(model)
    if layers:
        groups = []
        for layer in layers:
            value, ffn = names[id(layer.value)], names[id(layer.ffn_in)]
            groups.append(MaskGroup(layer.attention_name, layer.num_heads, ((value, 0),), block=layer.head_size,
                                    row=value))
            groups.append(MaskGroup(layer.ffn_name, layer.ffn_in.out_features, ((ffn, 0),)))
        return groups
    blocks = find_gpt2_layers(model)
    if blocks:  # Conv1D weights are [in, out]; a head is gated on its value columns of the fused c_attn
        groups = []
        for layer in blocks:
            qkv = names[id(layer.qkv)]
            groups.append(MaskGroup(layer.attention_name, layer.num_heads, ((qkv, -1),), block=layer.head_size,
                                    row=qkv, offset=2 * int(layer.attention.split_size), transposed=True))
            groups.append(MaskGroup(layer.ffn_name, layer.ffn_width, ((layer.ffn_name, -1),), transposed=True))
        return groups
    if not isinstance(example, torch.Tensor):
        return []
    from fewshot_kd.prune.masks import find_mask_groups

    groups, _ = find_mask_groups(model, example)
    return [MaskGroup(g.root, g.channels, tuple(g.gated)) for g in groups]


def _group_layers(model: nn.Module, example, groups: list[MaskGroup], macs: dict[str, int]) -> None:
    """Which layers' MACs scale with each group's width: found by physically pruning half of
    that group alone on a copy and seeing whose MACs shrink."""
    import copy

    from fewshot_kd.prune import prune_
    from fewshot_kd.prune.transformer import prunable_layers

    names = list(macs)
    for g in groups:
        trial = copy.deepcopy(model)
        layers = prunable_layers(trial)
        heads, ffns = {l.attention_name: l for l in layers}, {l.ffn_name: l for l in layers}
        if g.root in heads:
            heads[g.root].prune_heads_(range(g.channels - g.channels // 2))
        elif g.root in ffns:
            ffns[g.root].prune_ffn_(range(g.channels - g.channels // 2))
        else:
            prune_(trial, example, ratio=0.0, per_layer={g.root: 0.5})
        after = _layer_shapes(trial, example)
        g.layers = tuple(i for i, n in enumerate(names) if after.get(n, 0) < macs[n])


@torch.no_grad()
def _kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    return F.kl_div(F.log_softmax(student_logits, -1), F.softmax(teacher_logits, -1), reduction="batchmean").item()


@torch.no_grad()
def _sensitivities(model: nn.Module, layers: list[str], groups: list[MaskGroup], inputs,
                   scores: dict[str, torch.Tensor] | None = None, transposed: frozenset[str] = frozenset()
                   ) -> tuple[list[float], list[float]]:
    params = dict(model.named_parameters())
    reference = model(inputs)
    prune_sens, quant_sens = [], []
    for g in groups:
        half = torch.full((1,), 0.5)
        gated = gate_params(params, [g], half, channel_quantiles(params, [g], scores), sharpness=1e-2)
        prune_sens.append(_kl(functional_call(model, gated, (inputs,)), reference))
    for name in layers:
        key = f"{name}.weight"
        changed = {**params, key: quantize_layer_weight(params[key], 4, name in transposed)}
        quant_sens.append(_kl(functional_call(model, changed, (inputs,)), reference))
    return prune_sens, quant_sens


def _squash(values: list[float]) -> list[float]:
    return [math.log1p(100.0 * max(v, 0.0)) / 5.0 for v in values]


@dataclass
class ModelStructure:
    """The support-independent part of a description (computed once per model); ``scores``:
    the deployed pruner's channel scores per group root (:func:`fewshot_kd.prune.channel_scores`),
    for :func:`~fewshot_kd.meta.relax.channel_quantiles`."""

    layers: list[str]
    macs: dict[str, int]
    groups: list[MaskGroup]
    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    transposed: frozenset[str] = frozenset()  # layers stored [in, out] (GPT-2's Conv1D)


def group_scores(model: nn.Module, example) -> dict[str, torch.Tensor]:
    """The deployed pruner's scores per group root: head and FFN-neuron scores of BERT-style
    layers and GPT-2 blocks (their ``head_scores`` / ``ffn_scores``, ``"l1"``), else
    :func:`fewshot_kd.prune.channel_scores`."""
    from fewshot_kd.prune.transformer import prunable_layers

    layers = prunable_layers(model)
    if not layers:
        from fewshot_kd.prune import channel_scores

        return channel_scores(model, example)
    with torch.no_grad():
        return {**{l.attention_name: l.head_scores("l1").float().cpu() for l in layers},
                **{l.ffn_name: l.ffn_scores("l1").float().cpu() for l in layers}}


def model_structure(model: nn.Module, example) -> ModelStructure:
    macs = _layer_shapes(model, example)
    groups = find_groups(model, example)
    scores = {}
    if groups:
        scores = group_scores(model, example)
        _group_layers(model, example, groups, macs)
    modules = dict(model.named_modules())
    transposed = frozenset(n for n in macs if is_conv1d(modules[n]))
    return ModelStructure(list(macs), macs, groups, scores, transposed)


def describe_model(model: nn.Module, example, sample_inputs, pairs: list[tuple[str, str]] | None = None,
                   max_examples: int = 64, structure: ModelStructure | None = None) -> ModelDescription:
    """Descriptors of ``model`` (the teacher, or a student derived from it) on the support
    inputs ``sample_inputs`` (at most ``max_examples`` are used for the sensitivities)."""
    model.eval()
    structure = structure or model_structure(model, example)
    macs, layers, groups = structure.macs, structure.layers, structure.groups
    modules = dict(model.named_modules())
    total_macs = max(sum(macs.values()), 1)
    total_params = max(sum(modules[n].weight.numel() for n in layers), 1)
    roots = {g.layer: i for i, g in enumerate(groups)}
    sample = first_examples(sample_inputs, max_examples)
    prune_sens, quant_sens = _sensitivities(model, layers, groups, sample, structure.scores or None,
                                            structure.transposed)
    prune_sens, quant_sens = _squash(prune_sens), _squash(quant_sens)
    rows = []
    for i, name in enumerate(layers):
        m = modules[name]
        conv = isinstance(m, nn.Conv2d)
        out_f, in_f = _widths(m)
        g = roots.get(name)
        rows.append([
            1.0 if conv else 0.0,
            0.0 if conv else 1.0,
            math.log2(out_f) / 10.0,
            math.log2(in_f) / 10.0,
            (m.kernel_size[0] if conv else 1) / 7.0,
            i / max(len(layers) - 1, 1),
            m.weight.numel() / total_params,
            macs[name] / total_macs,
            0.0 if g is None else 1.0,
            0.0 if g is None else prune_sens[g],
            quant_sens[i],
            1.0 if i == len(layers) - 1 else 0.0,
        ])
    pairs = list(pairs or [])
    blocks = block_rows(model, layers)
    return ModelDescription(
        blocks=blocks,
        block_features=_block_features(model, sample) if blocks else None,
        layers=layers,
        layer_features=torch.tensor(rows, dtype=torch.float32).reshape(len(layers), LAYER_FEATURES),
        groups=groups,
        group_layer_index=[layers.index(g.layer) for g in groups],
        pairs=pairs,
        pair_features=_pair_features(model, example, [s for _, s in pairs]),
        layer_params=torch.tensor([float(modules[n].weight.numel()) for n in layers]),
        layer_macs=torch.tensor([float(macs[n]) for n in layers]),
        transposed=structure.transposed,
    )


def first_examples(inputs, count: int):
    """The first ``count`` examples of a batch: a tensor, a list of sentences, or a dict of
    ``[N, L]`` tensors (question windows)."""
    if isinstance(inputs, dict):
        return {name: tensor[:count] for name, tensor in inputs.items()}
    return inputs[:count] if isinstance(inputs, torch.Tensor) else list(inputs)[:count]


def has_encoder_blocks(model: nn.Module) -> bool:
    """Whether ``model.encoder`` holds BERT-family transformer blocks (a text classifier, or a QA
    model's span rows in :mod:`fewshot_kd.meta.span_episodes`)."""
    if getattr(model, "encoder", None) is None:
        return False
    try:
        encoder_layers(model.encoder)
    except UnsupportedLayerError:
        return False
    return True


def block_rows(model: nn.Module, layers: list[str]) -> list[list[int]]:
    """Per transformer block of a text model's encoder, the indices in ``layers`` of the
    Conv2d / Linear layers inside it; ``[]`` for a model without such blocks."""
    if not has_encoder_blocks(model):
        return []
    return [[i for i, name in enumerate(layers) if name.startswith(prefix + ".")] for prefix in block_names(model)]


@torch.no_grad()
def _block_features(model: nn.Module, inputs) -> torch.Tensor:
    """Per transformer block: depth in [0, 1] and the squashed KL to the full model's outputs
    when that block alone is skipped."""
    from fewshot_kd.meta.layer_choice import gated_blocks

    blocks = list(encoder_layers(model.encoder))
    reference = model(inputs)
    rows = []
    for b in range(len(blocks)):
        gates = torch.ones(len(blocks))
        gates[b] = 0.0
        with gated_blocks(blocks, gates):
            skipped = _kl(model(inputs), reference)
        rows.append([b / max(len(blocks) - 1, 1), _squash([skipped])[0]])
    return torch.tensor(rows, dtype=torch.float32)


def _pair_features(model: nn.Module, example, names: list[str]) -> torch.Tensor:
    if not names:
        return torch.zeros(0, PAIR_FEATURES)
    from fewshot_kd.distill import FeatureCapture

    order = [n for n, _ in model.named_modules()]
    with torch.no_grad(), FeatureCapture(model, names, detach=True) as capture:
        model.eval()(example)
        shapes = {n: capture.outputs[n].shape for n in names}
    rows = []
    for i, name in enumerate(names):
        shape = shapes[name]
        channels = shape[1] if len(shape) > 1 else 1
        spatial = int(torch.tensor(shape[2:]).prod()) if len(shape) > 2 else 1
        rows.append([order.index(name) / max(len(order) - 1, 1), math.log2(channels) / 10.0,
                     math.log2(spatial) / 10.0, (i + 1) / len(names)])
    return torch.tensor(rows, dtype=torch.float32)
