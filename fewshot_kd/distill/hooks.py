"""Feature capture with forward hooks (torchdistill's ForwardHookManager, as a context manager).

    with FeatureCapture(student, ["layer1", "layer2"]) as capture:
        logits = student(images)
    feats = capture.feature_list()  # outputs of layer1 and layer2, in the order given

Hooks are removed when the block exits (also on error). Captured tensors keep their
autograd graph unless ``detach=True``; run the teacher under ``torch.no_grad()``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fewshot_kd.distill.layer_map import check_layer_names


def _pick(value: Any, tuple_index: int | None) -> Any:
    if tuple_index is not None and hasattr(value, "to_tuple"):  # Hugging Face ModelOutput
        value = value.to_tuple()
    if tuple_index is not None and isinstance(value, (tuple, list)):
        if not value:
            return value
        return value[tuple_index]
    return value


class FeatureCapture:
    """Stores the output (and optionally the first input) of named submodules on every forward.

    ``tuple_index``: when a module returns a tuple or list (Hugging Face layers), keep this
    element (default 0, the hidden states); ``None`` keeps the whole tuple. A module called
    several times in one forward keeps its last call; ``calls`` counts them. Each forward
    overwrites the previous one's features.
    """

    def __init__(
        self,
        model: nn.Module,
        layer_names: Sequence[str],
        *,
        capture_inputs: bool = False,
        detach: bool = False,
        tuple_index: int | None = 0,
    ) -> None:
        if isinstance(layer_names, str):
            raise TypeError("layer_names must be a list of module names, not one string")
        self.layer_names = list(layer_names)
        if len(set(self.layer_names)) != len(self.layer_names):
            raise ValueError(f"layer names repeat: {self.layer_names}")
        check_layer_names(model, self.layer_names)
        self.model = model
        self.capture_inputs = capture_inputs
        self.detach = detach
        self.tuple_index = tuple_index
        self.outputs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self._handles: list[Any] = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "FeatureCapture":
        if self._handles:
            raise RuntimeError("this FeatureCapture is already active; leave the first `with` block first")
        modules = dict(self.model.named_modules())
        self.clear()
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
            for name in self.layer_names:
                self._handles.append(modules[name].register_forward_hook(self._hook(name), with_kwargs=True))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered (safe to call twice)."""
        while self._handles:
            self._handles.pop().remove()

    def clear(self) -> None:
        self.outputs.clear()
        self.inputs.clear()
        self.calls.clear()

    def _start_forward(self, module: nn.Module, args: Any) -> None:
        self.clear()

    def _keep(self, value: Any) -> Any:
        value = _pick(value, self.tuple_index)
        if self.detach and isinstance(value, torch.Tensor):
            return value.detach()
        return value

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            self.outputs[name] = self._keep(output)
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.capture_inputs:
                first = args[0] if args else next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
                self.inputs[name] = self._keep(first)

        return hook

    def __getitem__(self, name: str) -> Any:
        if name not in self.layer_names:
            raise KeyError(f"{name!r} is not captured; captured layers: {self.layer_names}")
        if name not in self.outputs:
            raise KeyError(f"layer {name!r} did not run during the last forward pass")
        return self.outputs[name]

    def feature_list(self) -> list[Any]:
        """Captured outputs in the order of ``layer_names``."""
        return [self[name] for name in self.layer_names]

    def input_list(self) -> list[Any]:
        """Captured inputs in the order of ``layer_names`` (needs ``capture_inputs=True``)."""
        if not self.capture_inputs:
            raise RuntimeError("inputs were not captured; create the FeatureCapture with capture_inputs=True")
        missing = [name for name in self.layer_names if name not in self.inputs]
        if missing:
            raise KeyError(f"layers {missing} did not run during the last forward pass")
        return [self.inputs[name] for name in self.layer_names]
