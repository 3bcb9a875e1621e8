"""Cut a classifier down to some of its classes: the rows of its last ``nn.Linear`` kept, in
the order given. A teacher of every class becomes the teacher of an N-way task drawn from them."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from fewshot_kd.errors import BadInputError, UnsupportedLayerError


def output_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's last ``nn.Linear`` (its classifier), by name."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UnsupportedLayerError(f"{type(model).__name__} has no nn.Linear classifier to cut to a class subset")
    return linears[-1]


@torch.no_grad()
def keep_classes_(model: nn.Module, classes: Sequence[int]) -> nn.Module:
    """In place: the classifier outputs the logits of ``classes`` only (class ``classes[i]``
    becomes output ``i``). Its ``arch`` (when it has one) records the new class count."""
    name, head = output_layer(model)
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c < head.out_features for c in classes):
        raise BadInputError(f"classes must be distinct ids in 0..{head.out_features - 1} (the outputs of {name}), "
                            f"got {classes[:8]}{' ...' if len(classes) > 8 else ''}")
    rows = torch.tensor(classes, device=head.weight.device)
    head.weight = nn.Parameter(head.weight[rows].clone(), requires_grad=head.weight.requires_grad)
    if head.bias is not None:
        head.bias = nn.Parameter(head.bias[rows].clone(), requires_grad=head.bias.requires_grad)
    head.out_features = len(classes)
    arch = getattr(model, "arch", None)
    if isinstance(arch, dict) and "num_classes" in arch:
        arch["num_classes"] = len(classes)
    return model
