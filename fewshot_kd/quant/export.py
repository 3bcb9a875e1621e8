"""A packed quantized-weights file (safetensors, no code) and its loader.

For each quantized layer the file holds ``<layer>.weight.codes`` (int8, or uint8 with two
4-bit / four 2-bit codes per byte) and ``<layer>.weight.scale`` (one step per output
channel, float32 by default so that the round trip is exact). Everything else in the
state dict (biases, BatchNorm, activation steps and zero points) is stored as is.
The safetensors metadata holds JSON: the format tag, and per layer the bits, the
container width, the weight shape and the activation quantizer settings. With
``fold_batchnorm=True`` each BatchNorm that directly follows a quantized convolution is
folded into its steps (same codes, see :mod:`fewshot_kd.quant.bn_fold`); the file then keeps
only the BatchNorm's folded bias and the metadata lists the folded pairs. A GPT-2 ``Conv1D``
(weight ``[in, out]``) is stored output-major like a linear layer, marked ``"transposed"``. A
layer whose weight is the very Parameter of an earlier one quantized by the same quantizer
(a language model's head tied to its token embedding) is stored once, marked ``"tied_to"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

from fewshot_kd.errors import CorruptFileError, FewShotKDError
from fewshot_kd.files import reading, save_tensors
from fewshot_kd.quant._packing import container_bits, pack_signed, unpack_signed
from fewshot_kd.quant.bn_fold import conv_bn_pairs, fold_into_codes, folded_bias, folded_bn_keys, identity_bn_state
from fewshot_kd.quant.modules import QuantConv1D, quantize_model_, quantized_layers

FORMAT = "fewshot_kd.quant/1"
_CODES, _SCALE = ".weight.codes", ".weight.scale"


def export_quantized(model: nn.Module, path: str | os.PathLike, *, scale_dtype: torch.dtype = torch.float32,
                     fold_batchnorm: bool = False) -> Path:
    """Write the quantized weights of ``model`` (prepared by :func:`quantize_model_`) to
    ``path``. Sizes: ``bits`` 5-8 take one byte a weight, 3-4 half a byte, 2 a quarter.
    ``scale_dtype=torch.float16`` halves the scales' size but makes the round trip inexact.
    ``fold_batchnorm`` folds BatchNorm into the preceding quantized convolutions (smaller
    file, same codes; the loaded model computes the same function up to float rounding)."""
    layers = quantized_layers(model)
    if not layers:
        raise FewShotKDError("export_quantized: the model has no quantized layers; call quantize_model_ first")
    modules = dict(model.named_modules())
    folds = {bn: conv for bn, conv in conv_bn_pairs(model).items() if conv in layers} if fold_batchnorm else {}
    bn_of = {conv: bn for bn, conv in folds.items()}
    tensors: dict[str, torch.Tensor] = {}
    meta_layers: dict[str, Any] = {}
    stored: dict[tuple[int, int], str] = {}
    for name, layer in layers.items():
        tie = (id(layer.weight), id(layer.weight_quant))
        if tie in stored:
            meta_layers[name] = {**meta_layers[stored[tie]], "tied_to": stored[tie]}
            continue
        stored[tie] = name
        codes = layer.weight_quant.integer_weight(layer.weight_by_output())
        step = layer.weight_quant.step.detach()
        if name in bn_of:
            folded = fold_into_codes(codes, step, modules[bn_of[name]], layer.weight_quant.qmax)
            if folded is None:
                del folds[bn_of.pop(name)]
            else:
                codes, step = folded
        tensors[name + _CODES] = pack_signed(codes, layer.weight_bits).cpu()
        tensors[name + _SCALE] = step.to(scale_dtype).cpu()
        q = layer.input_quant
        meta_layers[name] = {
            "weight_bits": layer.weight_bits,
            "container_bits": container_bits(layer.weight_bits),
            "shape": list(layer.weight_by_output().shape),
            **({"transposed": True} if isinstance(layer, QuantConv1D) else {}),
            "act_bits": None if q is None else q.bits,
            "act_symmetric": None if q is None else q.symmetric,
        }
    skip = {f"{name}.{key}" for name in layers for key in ("weight", "weight_quant.step", "weight_quant.initialized")}
    for bn, conv in folds.items():
        skip |= folded_bn_keys(bn, conv, modules[conv])
    for key, value in model.state_dict().items():
        if key not in skip:
            tensors[key] = value
    for bn, conv in folds.items():
        tensors[f"{bn}.bias"] = folded_bias(modules[conv], modules[bn])
    metadata = {"format": FORMAT, "layers": json.dumps(meta_layers, sort_keys=True),
                "scale_dtype": str(scale_dtype).removeprefix("torch.")}
    if folds:
        metadata["folded_batchnorm"] = json.dumps(folds, sort_keys=True)
    return save_tensors(path, tensors, metadata)


def _read(path: str | os.PathLike, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with reading(path, "quantized weights file", (SafetensorError, ValueError)), safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise FewShotKDError(f"{path} is not a fewshot_kd quantized file (format {metadata.get('format')!r}); "
                                 f"write it with export_quantized")
        if not isinstance(read_metadata_json(path, metadata, "layers"), dict):
            raise CorruptFileError(f"{path} has no per-layer metadata; write it again with export_quantized")
        return ({k: f.get_tensor(k) for k in f.keys()} if tensors else {}), metadata


def read_metadata_json(path: str | os.PathLike, metadata: dict[str, str], key: str, default: str = "null"):
    """One JSON value of a file's safetensors metadata; :class:`CorruptFileError` if it does not parse."""
    with reading(path, f"quantized weights file (metadata {key!r})", (ValueError,)):
        return json.loads(metadata.get(key, default))


def read_quantized(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The raw tensors and the per-layer metadata of a file written by :func:`export_quantized`."""
    tensors, metadata = _read(path)
    return tensors, json.loads(metadata["layers"])


def folded_batchnorm(path: str | os.PathLike) -> dict[str, str]:
    """``{batchnorm: conv}`` pairs folded into the file (empty if none were)."""
    return json.loads(_read(path, tensors=False)[1].get("folded_batchnorm", "{}"))


def _dequantize(tensors: dict[str, torch.Tensor], layers: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for name, info in layers.items():
        if "tied_to" in info:
            continue
        shape = info["shape"]
        numel = int(torch.Size(shape).numel())
        codes = unpack_signed(tensors[name + _CODES], info["weight_bits"], numel).reshape(shape)
        scale = tensors[name + _SCALE].float().reshape([-1] + [1] * (len(shape) - 1))
        weight = codes.float() * scale
        out[name + ".weight"] = weight.t().contiguous() if info.get("transposed") else weight
    for name, info in layers.items():
        if "tied_to" in info:
            out[name + ".weight"] = out[info["tied_to"] + ".weight"]
    return out


def dequantized_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{layer.weight: codes * scale}`` (float32) for every quantized layer in the file."""
    return _dequantize(*read_quantized(path))


def _float_state(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike,
                 modules: dict[str, nn.Module] | None) -> dict[str, torch.Tensor]:
    state = {k: v for k, v in tensors.items() if not k.endswith((_CODES, _SCALE))}
    state.update(_dequantize(tensors, json.loads(metadata["layers"])))
    for bn, conv in json.loads(metadata.get("folded_batchnorm", "{}")).items():
        if modules is not None and (bn not in modules or conv not in modules):
            raise FewShotKDError(f"load_quantized: {path} folds {bn!r} into {conv!r}, which the model lacks; "
                                 f"build the same architecture that was exported")
        state.update(identity_bn_state(bn, state[f"{bn}.bias"], 1e-5 if modules is None else modules[bn].eps))
        if modules is None or modules[conv].bias is not None:
            state[f"{conv}.bias"] = torch.zeros_like(state[f"{bn}.bias"])
    return state


def float_state(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The float state dict the file stands for: dequantized weights, and every folded
    BatchNorm as an identity plus its folded bias. ``model`` (the float skeleton) gives the
    BatchNorm eps and which convolutions have a bias; without it the state is for its shapes
    (every folded convolution gets a zero bias)."""
    tensors, metadata = _read(path)
    return _float_state(tensors, metadata, path, None if model is None else dict(model.named_modules()))


def load_quantized(
    path: str | os.PathLike,
    model: nn.Module | str | Callable[[], nn.Module],
    *,
    fake_quant: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """Load a file from :func:`export_quantized` into ``model`` (a float skeleton, a
    factory, or a registered model name built with ``create_model(name, **model_kwargs)``).

    By default returns the float model with the dequantized weights (bit-identical to the
    fake-quant weights). ``fake_quant=True`` returns it re-wrapped by ``quantize_model_``
    with the stored bit widths, steps and activation ranges (e.g. to continue QAT)."""
    if isinstance(model, str):
        from fewshot_kd.models.catalog import create_model

        model = create_model(model, **model_kwargs)
    elif not isinstance(model, nn.Module):
        model = model()
    tensors, metadata = _read(path)
    layers = json.loads(metadata["layers"])
    if quantized_layers(model):
        raise FewShotKDError("load_quantized: pass a float skeleton (no quantized layers); "
                             "use fake_quant=True to get the quant-aware model back")
    state = _float_state(tensors, metadata, path, dict(model.named_modules()))
    if fake_quant:
        quantize_model_(model, {n: i["weight_bits"] for n, i in layers.items()},
                        {n: i["act_bits"] for n, i in layers.items()},
                        act_symmetric=any(i["act_symmetric"] for i in layers.values()))
        for name, info in layers.items():
            state[f"{name}.weight_quant.step"] = tensors[info.get("tied_to", name) + _SCALE].float()
            state[f"{name}.weight_quant.initialized"] = torch.tensor(True)
    else:
        state = {k: v for k, v in state.items() if "_quant." not in k}
    target = model.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    reshaped = sorted(k for k in set(state) & set(target) if state[k].shape != target[k].shape)
    if missing or unexpected or reshaped:
        raise FewShotKDError(f"load_quantized: {path} does not fit the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}, other shapes {reshaped[:5]}; "
                             f"build the same architecture that was exported")
    model.load_state_dict(state)
    return model
