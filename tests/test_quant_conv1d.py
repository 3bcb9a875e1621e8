"""GPT-2's transformers ``Conv1D`` (weight ``[in, out]``) quantized per output column, exported
packed (transposed back on load) and a tied language-model head stored once."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="Conv1D is transformers' layer")

from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402
from fewshot_kd.quant import (QuantConv1D, dequantize_model_, dequantized_weights, export_quantized,  # noqa: E402
                              load_quantized, quantize_model_, quantized_layers, read_quantized)


def tiny_gpt2():
    torch.manual_seed(0)
    return gpt2_lm(small_gpt2_config(n_positions=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)).eval()


def test_conv1d_layers_are_swapped_and_quantized_per_output_column():
    model = tiny_gpt2()
    conv = model.transformer.h[0].mlp.c_fc
    x = torch.randn(3, 5, 32)
    quantize_model_(model, 8, None)
    layer = model.transformer.h[0].mlp.c_fc
    assert isinstance(layer, QuantConv1D) and layer.weight_quant.step.numel() == conv.nf == 128
    assert layer.weight is conv.weight  # the same Parameter, so optimizers keep working
    expected = x @ layer.quantized_weight().t() + layer.bias
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert (layer(x) - conv(x)).abs().max() < 0.05  # 8 bits: close to the float layer, not equal
    assert sum(isinstance(m, QuantConv1D) for m in quantized_layers(model).values()) == 8


def test_gpt2_int8_export_is_small_round_trips_and_stores_the_tied_head_once(tmp_path):
    model = tiny_gpt2()
    ids = torch.randint(0, 256, (2, 9))
    float_bytes = sum(p.numel() * 4 for p in model.parameters())
    quantize_model_(model, 8, None, embeddings=True)
    model.lm_head.weight_quant = model.transformer.wte.weight_quant  # tied head: one quantizer
    expected = model(input_ids=ids).logits
    path = export_quantized(model, tmp_path / "lm.int8.safetensors")
    tensors, layers = read_quantized(path)
    assert layers["lm_head"]["tied_to"] == "transformer.wte" and "lm_head.weight.codes" not in tensors
    assert layers["transformer.h.0.attn.c_attn"]["transposed"] and layers["transformer.h.0.attn.c_attn"]["shape"] == [96, 32]
    assert path.stat().st_size < 0.35 * float_bytes
    weights = dequantized_weights(path)
    assert weights["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)
    loaded = load_quantized(path, tiny_gpt2())
    assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-4)
    dequantize_model_(model)
    model.tie_weights()
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"
    assert model.lm_head.weight is model.transformer.wte.weight
    assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-4)
