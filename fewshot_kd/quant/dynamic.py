"""A real int8 path for Linear-heavy models (transformers) on CPU: PyTorch's dynamic
quantization. Linear weights are stored as int8 and multiplied with int8 kernels (fbgemm /
x86 / onednn); activations are quantized per batch at run time. Embeddings, LayerNorm and
softmax stay float, which the ``backend`` string says."""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError


class DynamicInt8Model(nn.Module):
    """``model`` with every ``nn.Linear`` replaced by torch's dynamic int8 Linear."""

    simulated = False
    integer_arithmetic = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        float_model = copy.deepcopy(model).eval().cpu()
        linears = sum(isinstance(m, nn.Linear) for m in float_model.modules())
        if linears == 0:
            raise UnsupportedLayerError(f"{type(model).__name__} has no nn.Linear layers for dynamic int8 quantization")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.ao.quantization.quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
        self.backend = f"torch dynamic int8 ({torch.backends.quantized.engine}: {linears} int8 Linear; rest float)"

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def to_dynamic_int8(model: nn.Module) -> DynamicInt8Model:
    """A CPU copy of ``model`` whose Linear layers compute in int8 (the original is untouched)."""
    return DynamicInt8Model(model)
