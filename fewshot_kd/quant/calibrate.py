"""Post-training quantization (PTQ): set activation ranges and weight steps from a few batches."""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.quant.modules import quantized_layers


def iter_inputs(batches: Any, batch_size: int = 64) -> Iterable[Any]:
    """Model inputs from ``batches``: a :class:`LabelledDataset` (cut into batches), a tensor
    (one batch), or an iterable of inputs or ``(inputs, labels)`` pairs (a DataLoader)."""
    if isinstance(batches, LabelledDataset):
        for start in range(0, len(batches), batch_size):
            yield batches.input_batch(slice(start, start + batch_size))
        return
    if isinstance(batches, torch.Tensor):
        yield batches
        return
    for batch in batches:
        yield batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 and not isinstance(batch[0], str) else batch


def _to_device(inputs: Any, device: torch.device) -> Any:
    return inputs.to(device) if isinstance(inputs, torch.Tensor) else inputs


@torch.no_grad()
def calibrate_(
    model: nn.Module,
    batches: Any,
    *,
    method: str = "minmax",
    percentile: float = 99.99,
    weight_init: str | None = "minmax",
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Run ``batches`` through a model prepared by :func:`quantize_model_` (in eval mode,
    float activations) and set every activation quantizer's step/zero point from the observed
    range (``method="minmax"`` or ``"percentile"``); re-initialise weight steps with
    ``weight_init`` (``None`` keeps them). Returns a report with the ranges per layer."""
    if method not in ("minmax", "percentile"):
        raise ValueError(f"calibration method must be 'minmax' or 'percentile', got {method!r}")
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    layers = quantized_layers(model)
    if not layers:
        raise ValueError("calibrate_: the model has no quantized layers; call quantize_model_(model, ...) first")
    device = next(model.parameters()).device
    if weight_init is not None:
        for layer in layers.values():
            layer.weight_quant.init_from_(layer.weight_by_output(), weight_init)
    act_quants = {n: l.input_quant for n, l in layers.items() if l.input_quant is not None}
    for q in act_quants.values():
        q.reset_observer_()
        q.observing, q.percentile = method, percentile
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for i, inputs in enumerate(iter_inputs(batches)):
            if max_batches is not None and i >= max_batches:
                break
            model(_to_device(inputs, device))
            seen += 1
    finally:
        for q in act_quants.values():
            q.observing = None
        model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate_: no batches were given; pass the few-shot examples (a LabelledDataset, tensor or loader)")
    report: dict[str, Any] = {"method": method, "batches": seen, "simulated": True, "integer_arithmetic": False, "layers": {}}
    for name, layer in layers.items():
        entry = {"weight_bits": layer.weight_bits, "act_bits": layer.act_bits}
        q = act_quants.get(name)
        if q is not None:
            if not torch.isfinite(q.observed_min):
                raise ValueError(f"calibrate_: layer {name!r} saw no data during calibration; is it used in forward()?")
            q.init_from_range_()
            entry.update(low=float(q.observed_min), high=float(q.observed_max),
                         act_step=float(q.step), zero_point=int(q.zero_point))
        report["layers"][name] = entry
    return report
