"""Quantization-aware Conv2d/Linear/Embedding (and transformers' GPT-2 ``Conv1D``) and
``quantize_model_``, which swaps them in place.

``QuantConv2d``/``QuantLinear``/``QuantEmbedding`` subclass the float layers and keep their
parameters (``weight``, ``bias``) under the same names, so a float state dict still loads (the
quantizers add ``weight_quant.*`` and ``input_quant.*`` entries). The weight is
fake-quantized per output channel (per token row for an embedding); the layer's input per
tensor (never for an embedding, whose inputs are token ids). ``QuantConv1D`` wraps GPT-2's
``Conv1D``, whose weight is stored ``[in, out]``: its steps are per output column.
"""

from __future__ import annotations

import copy
import sys
from typing import Callable, Mapping, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import UnknownNameError, UnsupportedLayerError
from fewshot_kd.quant.fake import ActivationQuantizer, WeightQuantizer, check_bits

BitsSpec = Union[int, None, Mapping[str, Union[int, None]], Callable[[str, nn.Module], Union[int, None]]]


def _shell(cls: type, module: nn.Module) -> nn.Module:
    """A ``cls`` instance with the attributes of ``module`` and the very same Parameter and
    buffer objects (so optimizers and references to them keep working); containers are copied."""
    new = cls.__new__(cls)
    new.__dict__.update({k: copy.copy(v) if isinstance(v, (dict, set)) else v for k, v in module.__dict__.items()})
    return new


class _QuantMixin:
    weight_quant: WeightQuantizer
    input_quant: ActivationQuantizer | None

    @classmethod
    def from_float(cls, layer: nn.Module, weight_bits: int, act_bits: int | None = 8,
                   act_symmetric: bool = False, learnable: bool = True):
        """The quant-aware version of a float ``layer``, sharing its Parameter objects."""
        new = _shell(cls, layer)
        new._attach(weight_bits, act_bits, act_symmetric, learnable)
        return new

    def _attach(self, weight_bits: int, act_bits: int | None, act_symmetric: bool, learnable: bool) -> None:
        self.weight_quant = WeightQuantizer(weight_bits, self.weight_by_output().shape[0], learnable)
        self.input_quant = ActivationQuantizer(act_bits, act_symmetric, learnable) if act_bits else None
        self.to(self.weight.device)

    @property
    def weight_bits(self) -> int:
        return self.weight_quant.bits

    @property
    def act_bits(self) -> int | None:
        return None if self.input_quant is None else self.input_quant.bits

    def weight_by_output(self) -> torch.Tensor:
        """The weight with output channels first (what the per-channel steps index)."""
        return self.weight

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight (what the forward pass uses, output channels first), detached."""
        with torch.no_grad():
            return self.weight_quant(self.weight_by_output()).detach()

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_quant is None else self.input_quant(x)


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with a per-channel weight fake quantizer and an optional input quantizer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self._quant_input(x), self.weight_quant(self.weight), self.bias)

    def to_float(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` holding the fake-quantized weight."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups, self.bias is not None, self.padding_mode,
                         device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.quantized_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` with a per-channel weight fake quantizer and an optional input quantizer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._quant_input(x), self.weight_quant(self.weight), self.bias)

    def to_float(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the fake-quantized weight."""
        linear = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.quantized_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


class QuantEmbedding(_QuantMixin, nn.Embedding):
    """``nn.Embedding`` with a per-row weight fake quantizer (one step per token)."""

    def _attach(self, weight_bits: int, act_bits: int | None, act_symmetric: bool, learnable: bool) -> None:
        super()._attach(weight_bits, None, act_symmetric, learnable)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight_quant(self.weight), self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def to_float(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` holding the fake-quantized weight."""
        embedding = nn.Embedding(self.num_embeddings, self.embedding_dim, self.padding_idx, self.max_norm,
                                 self.norm_type, self.scale_grad_by_freq, self.sparse,
                                 device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            embedding.weight.copy_(self.quantized_weight())
        return embedding


class QuantConv1D(_QuantMixin, nn.Module):
    """transformers' ``Conv1D`` (GPT-2's projections: ``x @ weight + bias``, weight ``[in, out]``)
    with a per-output-column weight fake quantizer and an optional input quantizer."""

    def weight_by_output(self) -> torch.Tensor:
        return self.weight.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self._quant_input(x), self.weight_quant(self.weight.t()), self.bias)

    def to_float(self) -> nn.Module:
        """A plain ``Conv1D`` holding the fake-quantized weight."""
        conv = conv1d_type()(self.nf, self.nx).to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.quantized_weight().t())
            conv.bias.copy_(self.bias)
        return conv


def conv1d_type() -> type | None:
    """transformers' ``Conv1D`` class when transformers is loaded (a model holding one has
    loaded it), else ``None``; transformers is never imported here."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


QUANT_LAYERS = (QuantConv2d, QuantLinear, QuantEmbedding, QuantConv1D)
_SWAPS: dict[type, type] = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear, nn.Embedding: QuantEmbedding}


def _swap_class(module: nn.Module) -> type | None:
    """The quant class for exact ``nn.Conv2d``/``nn.Linear``/``nn.Embedding`` and transformers'
    ``Conv1D`` (subclasses such as the ``out_proj`` of ``nn.MultiheadAttention`` read their
    weight directly and cannot be wrapped)."""
    if type(module) is conv1d_type():
        return QuantConv1D
    return _SWAPS.get(type(module))


def _bits_for(spec: BitsSpec, name: str, module: nn.Module, what: str) -> int | None:
    if callable(spec) and not isinstance(spec, Mapping):
        bits = spec(name, module)
    elif isinstance(spec, Mapping):
        bits = spec.get(name)
    else:
        bits = spec
    return None if bits in (None, 0) else check_bits(bits, f"{what} of {name!r}")


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_model_(
    model: nn.Module,
    weight_bits: BitsSpec = 8,
    act_bits: BitsSpec = 8,
    *,
    act_symmetric: bool = False,
    layers: list[str] | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    weight_init: str = "minmax",
    learnable: bool = True,
    embeddings: bool = False,
) -> nn.Module:
    """Swap every ``nn.Conv2d``/``nn.Linear`` of ``model`` for its quant-aware version, in place.
    ``nn.Embedding`` tables are quantized too (weights per row, never their id inputs) when
    ``embeddings=True`` or when a ``weight_bits`` dict names them.

    ``weight_bits``/``act_bits``: one int (2..8), a dict ``{layer name: bits}`` (a missing
    name or ``None``/0 leaves the layer float / its input unquantized), or a callable
    ``(name, module) -> bits | None``. ``act_bits=None`` quantizes weights only.
    ``layers`` restricts the swap to these names; naming a layer that is not a plain
    Conv2d/Linear raises :class:`UnsupportedLayerError` (so does a dict key that names one).
    transformers' ``Conv1D`` (GPT-2) counts as a linear layer. Weight steps are initialised
    with ``weight_init`` ("minmax", "mse", "lsq"); activation
    steps by :func:`calibrate_` (or lazily from the first batch). Returns ``model``.
    """
    named = dict(model.named_modules())
    requested = set(layers or ())
    for spec, what in ((weight_bits, "weight_bits"), (act_bits, "act_bits")):
        if isinstance(spec, Mapping):
            requested |= {k for k, v in spec.items() if v not in (None, 0)}
    for name in sorted(requested):
        if name not in named:
            raise UnknownNameError(f"quantize_model_: no layer named {name!r} in the model; "
                                   f"layer names look like {[n for n in named if n][:5]}")
        module = named[name]
        if _swap_class(module) is None and not isinstance(module, QUANT_LAYERS):
            raise UnsupportedLayerError(
                f"quantize_model_: layer {name!r} is a {type(module).__name__}; only nn.Conv2d, nn.Linear, "
                f"nn.Embedding and transformers' Conv1D can be quantized. Remove it from the requested layers/bit widths.")
    for name, module in list(named.items()):
        cls = _swap_class(module)
        if cls is None or (layers is not None and name not in requested) or name in exclude:
            continue
        if cls is QuantEmbedding and not (embeddings or name in requested):
            continue
        wbits = _bits_for(weight_bits, name, module, "weight_bits")
        if wbits is None:
            continue
        abits = _bits_for(act_bits, name, module, "act_bits") if act_bits is not None else None
        new = cls.from_float(module, wbits, abits, act_symmetric, learnable)
        new.weight_quant.init_from_(new.weight_by_output(), weight_init)
        _set_submodule(model, name, new)
    return model


def quantized_layers(model: nn.Module) -> dict[str, QuantConv2d | QuantLinear | QuantEmbedding | QuantConv1D]:
    """Name → quant-aware layer, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_LAYERS)}


def set_quantization_(model: nn.Module, weights: bool = True, activations: bool = True) -> nn.Module:
    """Switch weight/activation fake quantization on or off for every quant layer (in place)."""
    for layer in quantized_layers(model).values():
        layer.weight_quant.enabled = weights
        if layer.input_quant is not None:
            layer.input_quant.enabled = activations
    return model


def dequantize_model_(model: nn.Module) -> nn.Module:
    """Replace each quant layer by a plain float layer holding its fake-quantized weight, in
    place (activation quantization is dropped). The result has the original float names."""
    for name, layer in list(quantized_layers(model).items()):
        _set_submodule(model, name, layer.to_float())
    return model
