"""Structured pruning of GPT-2 blocks: whole attention heads and FFN neurons.

GPT-2 (transformers' ``GPT2Block``) projects with ``Conv1D``, whose weight is ``[in, out]``,
and fuses query, key and value into one ``attn.c_attn`` (output columns ``[q | k | v]``,
``split_size`` each). Removing head ``h`` removes its ``head_dim`` columns from each third of
``c_attn`` (and their biases) and its rows of ``attn.c_proj``, then sets the attention's
``num_heads`` and ``split_size``. Removing FFN neuron ``j`` removes column ``j`` of ``mlp.c_fc``
(and its bias) and row ``j`` of ``mlp.c_proj``. The weights shrink physically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from fewshot_kd.prune.importance import Importance, resolve_importance


def is_conv1d(module) -> bool:
    """transformers' ``Conv1D`` by its shape contract (``weight [nx, nf]``, ``bias [nf]``)."""
    weight = getattr(module, "weight", None)
    return (isinstance(module, nn.Module) and hasattr(module, "nf") and hasattr(module, "nx")
            and isinstance(weight, torch.Tensor) and tuple(weight.shape) == (module.nx, module.nf))


@torch.no_grad()
def _keep_(conv: nn.Module, index: torch.Tensor, outputs: bool) -> None:
    """Keep the output columns (``outputs=True``, bias too) or the input rows of a ``Conv1D``."""
    index = index.to(conv.weight.device)
    grad = conv.weight.requires_grad
    conv.weight = nn.Parameter(conv.weight.index_select(1 if outputs else 0, index).clone(), requires_grad=grad)
    if outputs:
        conv.bias = nn.Parameter(conv.bias.index_select(0, index).clone(), requires_grad=conv.bias.requires_grad)
        conv.nf = len(index)
    else:
        conv.nx = len(index)


@dataclass(frozen=True)
class GPT2Layer:
    """The prunable parts of one GPT-2 block, named as in the model."""

    name: str
    attention_name: str
    attention: nn.Module
    qkv: nn.Module
    attention_output: nn.Module
    ffn_name: str
    ffn_in: nn.Module
    ffn_out: nn.Module

    @property
    def num_heads(self) -> int:
        return int(self.attention.num_heads)

    @property
    def head_size(self) -> int:
        return int(self.attention.head_dim)

    @property
    def ffn_width(self) -> int:
        return int(self.ffn_in.nf)

    def _head_columns(self, heads: Sequence[int]) -> list[torch.Tensor]:
        """Per third of ``c_attn`` (q, k, v), the columns of ``heads``."""
        d, split = self.head_size, int(self.attention.split_size)
        return [torch.cat([torch.arange(part * split + h * d, part * split + (h + 1) * d) for h in heads])
                for part in range(3)]

    def prune_heads_(self, keep: Sequence[int]) -> None:
        """Keep only the attention heads ``keep`` (indices into the current heads)."""
        keep = sorted(set(int(h) for h in keep))
        if not keep or keep[0] < 0 or keep[-1] >= self.num_heads:
            raise ValueError(f"{self.attention_name}: keep must name 1..{self.num_heads} existing heads, got {keep}")
        d = self.head_size
        _keep_(self.qkv, torch.cat(self._head_columns(keep)), outputs=True)
        _keep_(self.attention_output, torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep]), outputs=False)
        self.attention.num_heads = len(keep)
        self.attention.split_size = len(keep) * d

    def prune_ffn_(self, keep: Sequence[int]) -> None:
        """Keep only the FFN neurons ``keep``."""
        keep = sorted(set(int(j) for j in keep))
        if not keep or keep[0] < 0 or keep[-1] >= self.ffn_width:
            raise ValueError(f"{self.ffn_name}: keep must name existing neurons, got {len(keep)} indices")
        index = torch.tensor(keep)
        _keep_(self.ffn_in, index, outputs=True)
        _keep_(self.ffn_out, index, outputs=False)

    def _head_slices(self, weight, bias, out_weight) -> list[torch.Tensor]:
        """``[heads, ...]`` slices: q, k and v columns (bias appended), then ``c_proj`` rows."""
        h = self.num_heads
        parts = [torch.cat([weight[:, c].t(), bias[c, None]], 1).reshape(h, -1) for c in self._head_columns(range(h))]
        return parts + [out_weight.reshape(h, -1)]

    def head_scores(self, importance: str | Importance) -> torch.Tensor:
        """One score per head from its q/k/v columns (with biases) and its ``c_proj`` rows."""
        criterion = resolve_importance(importance)
        weights = self._head_slices(self.qkv.weight, self.qkv.bias, self.attention_output.weight)
        grads = None
        if criterion.needs_gradients:
            g_w, g_b, g_o = self.qkv.weight.grad, self.qkv.bias.grad, self.attention_output.weight.grad
            grads = [None] * len(weights) if g_w is None or g_o is None else self._head_slices(
                g_w, torch.zeros_like(self.qkv.bias) if g_b is None else g_b, g_o)
        return criterion.slice_scores(weights, grads)

    def ffn_scores(self, importance: str | Importance) -> torch.Tensor:
        """One score per FFN neuron from its ``c_fc`` column and its ``c_proj`` row."""
        criterion = resolve_importance(importance)
        weights = [self.ffn_in.weight.t(), self.ffn_out.weight]
        grads = None
        if criterion.needs_gradients:
            g_in, g_out = self.ffn_in.weight.grad, self.ffn_out.weight.grad
            grads = [None if g_in is None else g_in.t(), g_out]
        return criterion.slice_scores(weights, grads)


def find_gpt2_layers(model: nn.Module) -> list[GPT2Layer]:
    """Every GPT-2 block in ``model`` (``attn.c_attn`` / ``attn.c_proj`` / ``mlp.c_fc`` /
    ``mlp.c_proj`` Conv1D layers, ``num_heads``, ``head_dim``, ``split_size``); empty for others."""
    layers = []
    for name, module in model.named_modules():
        attention, mlp = getattr(module, "attn", None), getattr(module, "mlp", None)
        if attention is None or mlp is None:
            continue
        parts = [getattr(attention, "c_attn", None), getattr(attention, "c_proj", None),
                 getattr(mlp, "c_fc", None), getattr(mlp, "c_proj", None)]
        if not all(is_conv1d(p) for p in parts):
            continue
        if not all(hasattr(attention, a) for a in ("num_heads", "head_dim", "split_size")):
            continue
        if getattr(attention, "is_cross_attention", False) or parts[0].nf != 3 * attention.split_size:
            continue
        prefix = f"{name}." if name else ""
        layers.append(GPT2Layer(name, f"{prefix}attn", attention, parts[0], parts[1], f"{prefix}mlp.c_fc",
                                parts[2], parts[3]))
    return layers
