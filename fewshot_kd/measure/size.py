"""Model size: parameter count and the bytes of the file a state dict really takes on disk."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError

SIZE_FORMATS = ("safetensors", "torch")
Sizeable = Union[nn.Module, Mapping, str, os.PathLike]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements; a tensor shared by several modules counts once.

    Weights of torch's quantized modules (stored packed, outside ``parameters()``) are
    counted too, as elements; they are never trainable.
    """
    seen: set = set()
    total = 0
    for param in model.parameters():  # already skips repeated Parameter objects
        if trainable_only and not param.requires_grad:
            continue
        key = _storage_key(param)
        if key not in seen:
            seen.add(key)
            total += param.numel()
    if not trainable_only:
        packed = list(_packed_weights(model))  # held alive so that id-based keys stay unique
        for tensor in packed:
            key = _storage_key(tensor)
            if key not in seen:
                seen.add(key)
                total += tensor.numel()
    return total


def saved_size_bytes(obj: Sizeable, format: str = "safetensors") -> int:
    """Bytes of the real file holding ``obj``.

    A path is stat-ed (a folder: the sum of its files). A model or state dict is written to
    a temporary folder, with ``format="safetensors"`` (shared tensors stored once) or
    ``"torch"`` (``torch.save``; needed for quantized tensors), and that file is stat-ed.
    """
    if isinstance(obj, (str, os.PathLike)):
        return _path_size(Path(obj))
    if format not in SIZE_FORMATS:
        raise ValueError(f"unknown size format {format!r}; use one of {SIZE_FORMATS}")
    state = obj.state_dict() if isinstance(obj, nn.Module) else obj
    if not isinstance(state, Mapping):
        raise TypeError(
            f"saved_size_bytes takes a model, a state dict or a path, got {type(obj).__name__}"
        )
    with tempfile.TemporaryDirectory(prefix="fewshot_kd_size_") as folder:
        path = Path(folder) / f"model.{'safetensors' if format == 'safetensors' else 'pt'}"
        if format == "safetensors":
            from safetensors.torch import save_file

            save_file(_safetensors_ready(state), str(path))
        else:
            torch.save(dict(state), path)
        return path.stat().st_size


def _path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    raise FileNotFoundError(f"cannot measure the size of {path}: no such file or folder")


def _safetensors_ready(state: Mapping) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors, each storage written once (tied weights keep their first name)."""
    kept: dict[str, torch.Tensor] = {}
    views: set = set()
    storages: set = set()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or value.is_quantized:
            what = "a quantized tensor" if isinstance(value, torch.Tensor) else type(value).__name__
            raise UnsupportedLayerError(
                f"state entry {name!r} is {what}, which safetensors cannot store; "
                "measure with saved_size_bytes(..., format='torch')"
            )
        key = _storage_key(value)
        if key in views:  # the very same view under another name (tied weights)
            continue
        views.add(key)
        tensor = value.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in storages:
            tensor = tensor.clone()  # an overlapping view of a storage already written
        storages.add(tensor.untyped_storage().data_ptr())
        kept[name] = tensor
    return kept


def _storage_key(tensor: torch.Tensor):
    if tensor.device.type == "meta" or tensor.is_quantized:
        return ("id", id(tensor))
    return (
        tensor.device,
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


def _packed_weights(model: nn.Module):
    """Weight and bias tensors that torch's quantized modules keep behind methods."""
    for module in model.modules():
        for attr in ("weight", "bias"):
            getter = getattr(type(module), attr, None)
            if callable(getter):
                try:
                    tensor = getattr(module, attr)()
                except Exception:  # not a packed-weight accessor after all
                    continue
                registered = any(tensor is p for p in module.parameters(recurse=False))
                if isinstance(tensor, torch.Tensor) and not registered:
                    yield tensor
