"""Wrap a plain callable (e.g. an onnxruntime model) as an ``nn.Module`` for measurement."""

import torch.nn as nn


class CallableModule(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, inputs):
        return self.fn(inputs)
