"""Structured pruning of BERT-family encoders: whole attention heads and FFN neurons.

A layer is recognised by its structure (Hugging Face BERT naming, also RoBERTa, MiniLM,
ELECTRA): ``attention.self.{query,key,value}``, ``attention.output.dense``,
``intermediate.dense`` and ``output.dense``. Removing head ``h`` removes its rows of the
query/key/value projections and its columns of the attention output projection, and sets
that layer's ``num_attention_heads`` / ``all_head_size`` (layers may differ; the shared
``config`` is left alone). Removing FFN neuron ``j`` removes row ``j`` of
``intermediate.dense`` and column ``j`` of ``output.dense``. GPT-2 blocks (transformers'
``Conv1D`` projections, fused query/key/value) are pruned the same way by
:mod:`fewshot_kd.prune.gpt2`; :func:`prune_transformer_` takes either kind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.prune._util import LossFn, count_params, resolve_modules
from fewshot_kd.prune.gpt2 import GPT2Layer, find_gpt2_layers
from fewshot_kd.prune.importance import (
    Importance, accumulate_gradients_, resolve_importance, slice_importance_names)
from fewshot_kd.prune.report import PruneReport, output_widths, pair_widths
from fewshot_kd.prune.targets import PerLayer, check_ratio, count_macs, n_keep


@dataclass(frozen=True)
class TransformerLayer:
    """The prunable parts of one encoder layer, named as in the model."""

    name: str
    attention_name: str
    attention: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attention_output: nn.Linear
    ffn_name: str
    ffn_in: nn.Linear
    ffn_out: nn.Linear

    @property
    def num_heads(self) -> int:
        return int(self.attention.num_attention_heads)

    @property
    def head_size(self) -> int:
        return int(self.attention.attention_head_size)

    @property
    def ffn_width(self) -> int:
        return int(self.ffn_in.out_features)

    def prune_heads_(self, keep: Sequence[int]) -> None:
        prune_heads_(self, keep)

    def prune_ffn_(self, keep: Sequence[int]) -> None:
        prune_ffn_(self, keep)

    def head_scores(self, importance: str | Importance) -> torch.Tensor:
        return head_scores(self, importance)

    def ffn_scores(self, importance: str | Importance) -> torch.Tensor:
        return ffn_scores(self, importance)


def _linear(module: Any, attr: str) -> nn.Linear | None:
    child = getattr(module, attr, None)
    return child if isinstance(child, nn.Linear) else None


def find_transformer_layers(model: nn.Module) -> list[TransformerLayer]:
    """Every BERT-style encoder layer in ``model`` (empty for other models)."""
    layers = []
    for name, module in model.named_modules():
        attention = getattr(module, "attention", None)
        sa = getattr(attention, "self", None)
        ao = getattr(attention, "output", None)
        if sa is None or ao is None or not hasattr(sa, "num_attention_heads") or not hasattr(sa, "attention_head_size"):
            continue
        q, k, v, o = _linear(sa, "query"), _linear(sa, "key"), _linear(sa, "value"), _linear(ao, "dense")
        fi = _linear(getattr(module, "intermediate", None), "dense")
        fo = _linear(getattr(module, "output", None), "dense")
        if None in (q, k, v, o, fi, fo):
            continue
        prefix = f"{name}." if name else ""
        layers.append(
            TransformerLayer(name, f"{prefix}attention.self", sa, q, k, v, o, f"{prefix}intermediate.dense", fi, fo)
        )
    return layers


def prunable_layers(model: nn.Module) -> list[TransformerLayer | GPT2Layer]:
    """Every BERT-style encoder layer and GPT-2 block of ``model``."""
    return find_transformer_layers(model) + find_gpt2_layers(model)


def head_counts(model: nn.Module) -> dict[str, int]:
    """Attention heads per self-attention module, by name."""
    return {layer.attention_name: layer.num_heads for layer in prunable_layers(model)}


@torch.no_grad()
def _select_(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep the output rows (``dim=0``) or input columns (``dim=1``) of ``linear`` at ``index``."""
    index = index.to(linear.weight.device)
    weight = linear.weight.index_select(dim, index).clone()
    linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.index_select(0, index).clone(), requires_grad=linear.bias.requires_grad)
        linear.out_features = len(index)
    else:
        linear.in_features = len(index)


def prune_heads_(layer: TransformerLayer, keep: Sequence[int]) -> None:
    """Keep only the attention heads ``keep`` (indices into the current heads) of ``layer``."""
    keep = sorted(set(int(h) for h in keep))
    if not keep or keep[0] < 0 or keep[-1] >= layer.num_heads:
        raise ValueError(f"{layer.attention_name}: keep must name 1..{layer.num_heads} existing heads, got {keep}")
    d = layer.head_size
    index = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    for linear in (layer.query, layer.key, layer.value):
        _select_(linear, index, 0)
    _select_(layer.attention_output, index, 1)
    layer.attention.num_attention_heads = len(keep)
    layer.attention.all_head_size = len(keep) * d


def prune_ffn_(layer: TransformerLayer, keep: Sequence[int]) -> None:
    """Keep only the FFN neurons ``keep`` of ``layer``."""
    keep = sorted(set(int(j) for j in keep))
    if not keep or keep[0] < 0 or keep[-1] >= layer.ffn_in.out_features:
        raise ValueError(f"{layer.ffn_name}: keep must name existing neurons, got {len(keep)} indices")
    index = torch.tensor(keep)
    _select_(layer.ffn_in, index, 0)
    _select_(layer.ffn_out, index, 1)


def head_scores(layer: TransformerLayer, importance: str | Importance) -> torch.Tensor:
    """One score per head from its query/key/value rows and attention-output columns."""
    h = layer.num_heads
    tensors = [layer.query.weight, layer.key.weight, layer.value.weight, layer.attention_output.weight.t()]
    weights = [t.reshape(h, -1) for t in tensors]
    criterion = resolve_importance(importance)
    grads = None
    if criterion.needs_gradients:
        gs = [layer.query.weight.grad, layer.key.weight.grad, layer.value.weight.grad, layer.attention_output.weight.grad]
        gs[3] = None if gs[3] is None else gs[3].t()
        grads = [None if g is None else g.reshape(h, -1) for g in gs]
    return criterion.slice_scores(weights, grads)


def ffn_scores(layer: TransformerLayer, importance: str | Importance) -> torch.Tensor:
    """One score per FFN neuron from its input row and output column."""
    weights = [layer.ffn_in.weight, layer.ffn_out.weight.t()]
    criterion = resolve_importance(importance)
    grads = None
    if criterion.needs_gradients:
        g_out = layer.ffn_out.weight.grad
        grads = [layer.ffn_in.weight.grad, None if g_out is None else g_out.t()]
    return criterion.slice_scores(weights, grads)


def _layer_ratios(
    model: nn.Module, layers: list[TransformerLayer | GPT2Layer], per_layer: PerLayer, head_ratio: float, ffn_ratio: float
) -> tuple[dict[str, float], dict[str, float]]:
    heads = {layer.name: head_ratio for layer in layers}
    ffn = {layer.name: ffn_ratio for layer in layers}
    if per_layer is None:
        return heads, ffn
    if callable(per_layer) and not isinstance(per_layer, Mapping):
        for layer in layers:
            r = per_layer(layer.attention_name, layer.attention)
            if r is not None:
                heads[layer.name] = check_ratio(r, f"per_layer({layer.attention_name!r})")
            r = per_layer(layer.ffn_name, layer.ffn_in)
            if r is not None:
                ffn[layer.name] = check_ratio(r, f"per_layer({layer.ffn_name!r})")
        return heads, ffn
    modules = resolve_modules(model, per_layer.keys(), "per_layer")
    for module, (key, r) in zip(modules, per_layer.items()):
        r = check_ratio(r, f"per_layer[{key!r}]")
        hit = False
        for layer in layers:
            inside = any(module is container for container in _containers(model, layer))
            if inside or module is layer.attention:
                heads[layer.name], hit = r, True
            if inside or module is layer.ffn_in:
                ffn[layer.name], hit = r, True
        if not hit:
            raise ValueError(
                f"per_layer[{key!r}]: for transformers use an encoder layer (or a container of "
                "layers), its 'attention.self' (heads) or its 'intermediate.dense' (FFN neurons); for "
                "GPT-2 a block, its 'attn' (heads) or its 'mlp.c_fc' (FFN neurons)"
            )
    return heads, ffn


def _containers(model: nn.Module, layer: TransformerLayer | GPT2Layer) -> list[nn.Module]:
    """The encoder-layer module and every module that contains it."""
    modules = dict(model.named_modules())
    parts = layer.name.split(".") if layer.name else []
    return [modules[".".join(parts[:i])] for i in range(len(parts) + 1)]


def prune_transformer_(
    model: nn.Module,
    example_inputs: Any = None,
    *,
    head_ratio: float = 0.5,
    ffn_ratio: float = 0.5,
    per_layer: PerLayer = None,
    importance: str = "l1",
    data: Any = None,
    loss_fn: LossFn | None = None,
    round_to: int | None = None,
) -> PruneReport:
    """Remove ``head_ratio`` of the attention heads and ``ffn_ratio`` of the FFN neurons of
    every BERT-style layer and GPT-2 block of ``model`` in place (at least one of each is kept).

    ``per_layer`` maps an encoder layer's name (both), its ``attention.self`` (heads) or its
    ``intermediate.dense`` (FFN) to a ratio, or is a callable ``(name, module) -> ratio | None``
    asked for those two modules of each layer. ``importance``: ``"l1"``, ``"l2"`` or
    ``"taylor"`` (needs ``data``, ``(inputs, labels)`` batches, and ``loss_fn(output, labels)``
    if the output has no logits). ``round_to`` rounds the FFN width down to a multiple.
    MACs in the report are measured on ``example_inputs`` (0 if it is ``None``)."""
    start = time.perf_counter()
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("no BERT-style encoder layer (attention.self.query/key/value, intermediate.dense) "
                         "or GPT-2 block (attn.c_attn, mlp.c_fc) found")
    head_ratio, ffn_ratio = check_ratio(head_ratio, "head_ratio"), check_ratio(ffn_ratio, "ffn_ratio")
    if not isinstance(importance, str):
        raise TypeError(f"transformer pruning takes importance as one of {slice_importance_names()}")
    heads, ffn = _layer_ratios(model, layers, per_layer, head_ratio, ffn_ratio)

    def macs() -> int:
        return count_macs(model, example_inputs) if example_inputs is not None else 0

    macs_before, params_before = macs(), count_params(model)
    widths_before, heads_before = output_widths(model), head_counts(model)
    if resolve_importance(importance).needs_gradients:
        accumulate_gradients_(model, data, loss_fn)
    for layer in layers:
        h_keep = n_keep(layer.num_heads, heads[layer.name])
        f_keep = n_keep(layer.ffn_width, ffn[layer.name], round_to)
        head_order = torch.argsort(layer.head_scores(importance), descending=True, stable=True)
        ffn_order = torch.argsort(layer.ffn_scores(importance), descending=True, stable=True)
        if h_keep < layer.num_heads:
            layer.prune_heads_(head_order[:h_keep].tolist())
        if f_keep < layer.ffn_width:
            layer.prune_ffn_(ffn_order[:f_keep].tolist())
    model.zero_grad(set_to_none=True)
    return PruneReport(
        params_before=params_before,
        params_after=count_params(model),
        macs_before=macs_before,
        macs_after=macs(),
        channels=pair_widths(widths_before, output_widths(model)),
        heads=pair_widths(heads_before, head_counts(model)),
        ratio=head_ratio,
        importance=importance,
        seconds=time.perf_counter() - start,
    )
