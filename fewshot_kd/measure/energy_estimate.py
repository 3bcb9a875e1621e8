"""Energy per inference estimated from op counts and bytes moved, with a published per-operation table.

Source: M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (45 nm, 0.9 V). The 32-bit SRAM and DRAM access
figures are the per-32-bit-word values Han et al. tabulate from it ("Learning both weights and
connections for efficient neural networks", NeurIPS 2015, table 1): 5 pJ and 640 pJ.

Assumptions (each in the result's ``details``):

* a multiply-accumulate (MAC) is one multiply plus one add at the weight precision: int8 for
  weights of 8 bits or fewer (sub-8-bit weights run on 8-bit units), fp16 for 16, fp32 for 32;
* activations are 8-bit when the weights are 8 bits or fewer, else the weights' width;
* every weight is read once from DRAM per batch (so per inference its cost is divided by the
  batch size), at the energy of a 32-bit read scaled by bits / 32;
* every MAC layer (convolution, linear, embedding) reads its input and writes its output once
  in on-chip SRAM (8 KB), at the energy of a 32-bit access scaled by bits / 32;
* biases, norms, activations functions, control and leakage are left out.

So it ranks models by arithmetic and data movement; it is not a prediction for a particular chip.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.measure.macs import count_macs
from fewshot_kd.measure.size import count_params
from fewshot_kd.model_io import batch_size_of, call_model, eval_mode, model_device, to_device

SOURCE = "Horowitz, ISSCC 2014 (45 nm); 32-bit SRAM/DRAM per-word figures as tabulated by Han et al., NeurIPS 2015"
METHOD = "estimated-horowitz2014"
PICOJOULES = {
    "int8_add": 0.03, "int32_add": 0.1, "int8_mult": 0.2, "int32_mult": 3.1,
    "fp16_add": 0.4, "fp16_mult": 1.1, "fp32_add": 0.9, "fp32_mult": 3.7,
    "sram_read_32bit_8kb": 5.0, "dram_read_32bit": 640.0,
}
"""Energy per operation in picojoules (45 nm)."""
ASSUMPTIONS = ("MAC = mult + add at the weight precision (int8 units for <= 8-bit weights); "
               "activations 8-bit for <= 8-bit weights; weights read once from DRAM per batch; "
               "each MAC layer's input and output pass once through 8 KB SRAM; bias, norms, control and leakage left out")
_MAC_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)


def mac_picojoules(bits: int) -> float:
    """Energy of one multiply-accumulate at a weight width of ``bits``."""
    if bits <= 8:
        return PICOJOULES["int8_mult"] + PICOJOULES["int8_add"]
    if bits <= 16:
        return PICOJOULES["fp16_mult"] + PICOJOULES["fp16_add"]
    return PICOJOULES["fp32_mult"] + PICOJOULES["fp32_add"]


def weight_bits_of(model: nn.Module) -> int:
    """The width the model's weights are stored in: that of its fake-quantized layers, 8 for torch's
    quantized modules, else 16 or 32 by the parameters' dtype."""
    fake = [m.weight_bits for m in model.modules() if isinstance(getattr(m, "weight_bits", None), int)]
    if fake:
        return max(fake)
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        return 8
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    return 16 if floats and floats[0] in (torch.float16, torch.bfloat16) else 32


def activation_elements(model: nn.Module, example_inputs: Any) -> int:
    """Input plus output elements of every MAC layer in one forward pass of ``example_inputs``."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        tensors = [t for t in (*inputs, output) if isinstance(t, torch.Tensor)]
        total += sum(t.numel() for t in tensors)

    layers = [m for m in model.modules() if isinstance(m, _MAC_LAYERS) or _is_torch_quantized_layer(m)]
    handles = [m.register_forward_hook(count) for m in layers]
    try:
        with eval_mode(model), torch.no_grad():
            call_model(model, to_device(example_inputs, model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return total


def estimate_joules(model: nn.Module, example_inputs: Any, weight_bits: int | None = None) -> tuple[float, dict]:
    """Joules per inference (one example) of ``model`` on a batch like ``example_inputs``, and the
    counts and assumptions behind it (see the module docstring)."""
    bits = int(weight_bits) if weight_bits is not None else weight_bits_of(model)
    act_bits = 8 if bits <= 8 else bits
    batch = batch_size_of(example_inputs)
    macs = count_macs(model, example_inputs) / batch
    weights = count_params(model)
    activations = activation_elements(model, example_inputs) / batch
    picojoules = {
        "arithmetic": macs * mac_picojoules(bits),
        "weights_dram": weights * bits / 32 * PICOJOULES["dram_read_32bit"] / batch,
        "activations_sram": activations * act_bits / 32 * PICOJOULES["sram_read_32bit_8kb"],
    }
    details = {"source": SOURCE, "assumptions": ASSUMPTIONS, "weight_bits": bits, "activation_bits": act_bits,
               "batch_size": batch, "macs": macs, "weights": weights, "activation_elements": activations,
               "joules_by_part": {k: v * 1e-12 for k, v in picojoules.items()}}
    return sum(picojoules.values()) * 1e-12, details


def _is_torch_quantized_layer(module: nn.Module) -> bool:
    kind = type(module)
    return kind.__module__.startswith("torch.ao.nn.quantized") and ("Conv" in kind.__name__ or "Linear" in kind.__name__)
