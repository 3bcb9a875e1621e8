"""Calling a model on example inputs, moving inputs between devices, reading its logits:
shared by measurement, pruning and training so every part feeds models the same way."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn as nn


def call_model(model: nn.Module, inputs: Any) -> Any:
    """Run ``model`` on ``inputs``.

    A ``tuple`` is unpacked into positional arguments and a plain ``dict`` into keyword
    arguments (as for Hugging Face models); anything else (a tensor, a ``list[str]``, a
    tokeniser's ``BatchEncoding``) is passed as the single argument. To pass a tuple or a
    dict as *one* argument, wrap it: ``(batch,)``.
    """
    if isinstance(inputs, tuple):
        return model(*inputs)
    if type(inputs) is dict:
        return model(**inputs)
    return model(inputs)


def batch_size_of(inputs: Any) -> int:
    """Number of examples in ``inputs``: the leading size of the first tensor found, or the
    length of a list of strings."""
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() == 0:
            raise ValueError("a 0-d tensor has no batch dimension; give inputs shaped [N, ...]")
        return int(inputs.shape[0])
    if isinstance(inputs, str):
        return 1
    if isinstance(inputs, Mapping) or callable(getattr(inputs, "values", None)):
        for value in inputs.values():
            try:
                return batch_size_of(value)
            except ValueError:
                continue
    elif isinstance(inputs, (list, tuple)):
        if isinstance(inputs, list) and all(isinstance(item, str) for item in inputs):
            return len(inputs)
        for item in inputs:
            try:
                return batch_size_of(item)
            except ValueError:
                continue
    raise ValueError(
        f"cannot tell the batch size of inputs of type {type(inputs).__name__}; "
        "pass batch_size= explicitly"
    )


def to_device(inputs: Any, device: torch.device) -> Any:
    """``inputs`` with every tensor moved to ``device``; strings and other values unchanged."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, (str, bytes)) or inputs is None:
        return inputs
    if type(inputs) is dict:
        return {key: to_device(value, device) for key, value in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(to_device(item, device) for item in inputs)
    if isinstance(inputs, list):
        return [to_device(item, device) for item in inputs]
    if hasattr(inputs, "to") and callable(inputs.to):  # e.g. transformers.BatchEncoding
        return inputs.to(device)
    return inputs


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor in a model output: a tensor, ``.logits``, ``["logits"]`` or the
    first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"cannot find logits in a model output of type {type(output).__name__}; "
        "return a tensor [N, num_classes] or an object with .logits"
    )


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters all require gradients (a frozen teacher's
    copy that is trained, pruned or traced by Torch-Pruning's dependency graph)."""
    import copy

    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def placed(model: nn.Module, device: str | torch.device | None) -> tuple[nn.Module, torch.device]:
    """``(model, device)`` to measure on. With ``device=None`` the model's own device; if the
    model lives elsewhere, a copy moved to ``device`` (the caller's model is left untouched)."""
    here = model_device(model)
    if device is None:
        return model, here
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device == here:
        return model, device
    import copy

    return copy.deepcopy(model).to(device), device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards, so a
    measurement never updates batch-norm statistics or applies dropout."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


class CallableModule(nn.Module):
    """A plain callable (e.g. an onnxruntime model) as a parameter-free ``nn.Module``, so it
    can be measured and evaluated like any model."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, inputs):
        return self.fn(inputs)
