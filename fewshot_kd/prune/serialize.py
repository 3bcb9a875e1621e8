"""Save and reload pruned models without pickled code.

A pruned model is one safetensors file: the weights, plus in its metadata a JSON
description of the architecture: the base model's registry name and keyword arguments
(``model.arch`` of the model zoo, ``create_model(**arch)`` rebuilds it) and, for every
Conv/Linear/BatchNorm/LayerNorm/GroupNorm/Embedding/PReLU, its shape arguments, plus the
head counts of attention modules and the ``recorded_attributes`` a module names (the
input width of a pruned option-A shortcut). :func:`load_pruned` rebuilds the base model from the
registry, resizes the recorded modules in place (their types are kept), sets the recorded
attributes and loads the weights with ``strict=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from safetensors import safe_open

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.files import load_tensors, save_tensors

FORMAT = "fewshot_kd.pruned/1"
#: keyword arguments dropped from ``arch``: the weights come from the file.
_DROPPED_KWARGS = ("pretrained", "data_root", "weights", "checkpoint")
#: integer attributes recorded on any module that has them (attention bookkeeping).
_ATTRIBUTES = ("num_attention_heads", "attention_head_size", "all_head_size", "num_heads",
               "head_dim", "embed_dim", "num_key_value_heads")

_SHAPE_ARGS: list[tuple[type, tuple[str, ...]]] = [
    (nn.modules.conv._ConvNd, ("in_channels", "out_channels", "groups")),
    (nn.Linear, ("in_features", "out_features")),
    (nn.modules.batchnorm._BatchNorm, ("num_features",)),
    (nn.GroupNorm, ("num_groups", "num_channels")),
    (nn.LayerNorm, ("normalized_shape",)),
    (nn.Embedding, ("num_embeddings", "embedding_dim")),
    (nn.PReLU, ("num_parameters",)),
]

Builder = Callable[..., nn.Module]


def _shape_args(module: nn.Module) -> dict[str, Any] | None:
    for kind, names in _SHAPE_ARGS:
        if isinstance(module, kind):
            args = {n: getattr(module, n) for n in names}
            return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
    return None


def _layer_type(module: nn.Module) -> str:
    """The torch.nn class a layer is (a quant-aware ``QuantConv2d`` is recorded as ``Conv2d``)."""
    return next((c.__name__ for c in type(module).__mro__ if c.__module__.startswith("torch.nn")),
                type(module).__name__)


def describe_architecture(model: nn.Module, arch: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able description that :func:`load_pruned` rebuilds ``model`` from."""
    if "name" not in arch or not isinstance(arch["name"], str):
        raise ValueError(f"arch must hold the registry 'name' and the keyword arguments, got {dict(arch)!r}")
    kwargs = {k: v for k, v in arch.items() if k != "name" and k not in _DROPPED_KWARGS}
    modules, attributes = {}, {}
    for name, module in model.named_modules():
        args = _shape_args(module)
        if args is not None:
            modules[name] = {"type": _layer_type(module), **args}
        names = _ATTRIBUTES + tuple(getattr(module, "recorded_attributes", ()))
        attrs = {a: getattr(module, a) for a in names if isinstance(getattr(module, a, None), int)}
        if attrs:
            attributes[name] = attrs
    description = {"format": FORMAT, "arch": {"name": arch["name"], **kwargs}, "modules": modules,
                   "attributes": attributes}
    try:
        json.dumps(description)
    except TypeError as error:
        raise ValueError(f"arch keyword arguments must be JSON values (numbers, strings, lists): {error}") from None
    return description


def _arch_of(model: nn.Module, arch: Mapping[str, Any] | None) -> Mapping[str, Any]:
    arch = arch if arch is not None else getattr(model, "arch", None)
    if not isinstance(arch, Mapping):
        raise ValueError(
            "save_pruned needs the base architecture: pass arch={'name': <registry name>, **kwargs} "
            "(models from fewshot_kd.create_model carry it as model.arch)"
        )
    return arch


def _unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share memory with an earlier one (tied weights); return the aliases."""
    seen: dict[tuple, str] = {}
    unique, aliases = {}, {}
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and ident in seen:
            aliases[key] = seen[ident]
        else:
            seen[ident] = key
            unique[key] = tensor
    return unique, aliases


def save_pruned(model: nn.Module, path: str | os.PathLike, arch: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (pruned or not) to one safetensors file with its architecture
    description in the metadata; ``arch`` defaults to ``model.arch``. No code is pickled."""
    description = describe_architecture(model, _arch_of(model, arch))
    state, aliases = _unique_tensors(dict(model.state_dict()))
    description["aliases"] = aliases
    return save_tensors(path, state, metadata={"format": FORMAT, "architecture": json.dumps(description)})


def read_architecture(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture description stored in a file written by :func:`save_pruned`."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT or "architecture" not in metadata:
        raise ValueError(f"{path} was not written by save_pruned (no {FORMAT!r} metadata)")
    return json.loads(metadata["architecture"])


def _resize_(module: nn.Module, name: str, args: dict[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """Give ``module`` the recorded shape: set its shape attributes and replace each of its
    parameters/buffers whose stored shape differs by an empty tensor of the stored shape."""
    for attr, value in args.items():
        if attr != "type":
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
    _match_tensors_(module, name, state)


def _match_tensors_(module: nn.Module, name: str, state: Mapping[str, torch.Tensor]) -> None:
    prefix = f"{name}." if name else ""
    for pname, param in list(module.named_parameters(recurse=False)):
        stored = state.get(prefix + pname)
        if stored is not None and stored.shape != param.shape:
            new = torch.empty(stored.shape, dtype=param.dtype, device=param.device)
            setattr(module, pname, nn.Parameter(new, requires_grad=param.requires_grad))
    for bname, buf in list(module._buffers.items()):
        stored = state.get(prefix + bname)
        if stored is not None and (buf is None or stored.shape != buf.shape):  # None: set only once pruned
            like = stored if buf is None else buf
            module._buffers[bname] = torch.empty(stored.shape, dtype=like.dtype, device=like.device)


def _default_builder(name: str, **kwargs: Any) -> nn.Module:
    from fewshot_kd.models.catalog import create_model

    return create_model(name, **kwargs)


def build_skeleton(description: Mapping[str, Any], state: Mapping[str, torch.Tensor], build: Builder | None = None,
                   source: str = "the file") -> nn.Module:
    """The model a description (from :func:`describe_architecture`) records, built by
    ``build(name, **kwargs)`` (default :func:`fewshot_kd.create_model`), its recorded modules
    resized to the shapes of ``state`` and its recorded attributes set; weights not loaded."""
    arch = dict(description["arch"])
    model = (build or _default_builder)(arch.pop("name"), **arch)
    modules = dict(model.named_modules())
    for name, args in description["modules"].items():
        if name not in modules:
            raise ValueError(f"{source}: the rebuilt model has no module {name!r}; was it saved from another architecture?")
        if _layer_type(modules[name]) != args["type"]:
            raise ValueError(f"{source}: {name!r} is a {_layer_type(modules[name])} here but was a {args['type']}")
        _resize_(modules[name], name, args, state)
    for name, attrs in description.get("attributes", {}).items():
        for attr, value in attrs.items():
            setattr(modules[name], attr, value)
        _match_tensors_(modules[name], name, state)  # buffers a pruned module gained (an option-A gather index)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise UnsupportedLayerError(f"{source}: cannot rebuild the shapes of {wrong[:5]} (module types not recorded)")
    return model


def load_pruned(path: str | os.PathLike, build: Builder | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by :func:`save_pruned`: ``build(name, **kwargs)`` (default
    :func:`fewshot_kd.create_model`) makes the base model, recorded modules are resized,
    recorded attributes set, and the weights loaded strictly. Returned in eval mode."""
    description = read_architecture(path)
    state = load_tensors(path, device="cpu")
    for key, target in description.get("aliases", {}).items():
        state[key] = state[target]
    model = build_skeleton(description, state, build, source=str(path))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
