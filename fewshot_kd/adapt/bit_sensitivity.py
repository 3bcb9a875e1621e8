"""How much each layer's weight quantization moves the model's output, measured on the shots."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

QUANTIZABLE = (nn.Conv2d, nn.Linear, nn.Embedding)
"""The layers adapt()'s export quantizes (:func:`fewshot_kd.adapt.export.weight_bits`)."""

MEASURE = "KL(float output || output with this layer alone at the width), mean over the shots"
"""What :func:`layer_sensitivity` reports, as the report names it."""


def quantizable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> every conv / linear / embedding layer, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QUANTIZABLE)}


def _probabilities(model: nn.Module, inputs) -> torch.Tensor:
    out = model(inputs)
    return F.log_softmax(getattr(out, "logits", out).float(), dim=-1)


@torch.no_grad()
def layer_sensitivity(model: nn.Module, inputs, widths: tuple[int, ...],
                      layers: list[str] | None = None) -> dict[str, dict[int, float]]:
    """``{layer: {bits: KL}}``: the mean KL divergence from ``model``'s float output on ``inputs``
    to its output when that layer alone has its weights rounded to ``bits`` (per output channel,
    symmetric, min-max steps: the codes adapt()'s export writes before QAT). A direct measurement,
    not a Hessian proxy: one forward pass per layer and width. ``layers``: default every
    quantizable one. The model is left as it was (mode and weights)."""
    from fewshot_kd.quant.fake import quantize_weight_ste

    was_training = model.training
    model.eval()
    try:
        reference = _probabilities(model, inputs)
        found = quantizable_layers(model)
        out: dict[str, dict[int, float]] = {}
        for name in layers if layers is not None else list(found):
            weight = found[name].weight
            original = weight.detach().clone()
            out[name] = {}
            for bits in widths:
                weight.copy_(quantize_weight_ste(original, bits))
                try:
                    moved = _probabilities(model, inputs)
                finally:
                    weight.copy_(original)
                kl = F.kl_div(moved, reference, log_target=True, reduction="batchmean")
                out[name][bits] = max(0.0, float(kl))
        return out
    finally:
        model.train(was_training)
