"""quantize_model_, per-layer bits, PTQ calibration and QAT through the fake quantizers."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fewshot_kd.errors import UnknownNameError, UnsupportedLayerError
from fewshot_kd.quant import (
    QuantConv2d,
    QuantLinear,
    calibrate_,
    dequantize_model_,
    qat_param_groups,
    qat_step,
    quantize_model_,
    quantized_layers,
    set_quantization_,
    step_parameters,
)


def tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )


def test_swaps_layers_and_keeps_state_dict_names():
    model = tiny_cnn()
    float_state = {k: v.clone() for k, v in model.state_dict().items()}
    weight_before = model[0].weight
    quantize_model_(model, weight_bits=8, act_bits=8)
    assert isinstance(model[0], QuantConv2d) and isinstance(model[3], QuantConv2d)
    assert isinstance(model[7], QuantLinear)
    assert model[0].weight is weight_before  # same Parameter: optimizers keep working
    state = model.state_dict()
    assert set(float_state) <= set(state)
    assert {"0.weight_quant.step", "0.input_quant.step", "0.input_quant.zero_point"} <= set(state)
    missing, unexpected = model.load_state_dict(float_state, strict=False)
    assert not unexpected and all("_quant." in k for k in missing)


def test_forward_is_the_float_op_on_quantized_tensors():
    model = quantize_model_(tiny_cnn(), weight_bits=4, act_bits=8)
    x = torch.rand(2, 3, 8, 8)
    calibrate_(model, x)
    conv = model[0]
    expected = F.conv2d(conv.input_quant(x), conv.quantized_weight(), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    # the input quantizer is asymmetric 8-bit over the observed range [0, max]
    assert conv.input_quant.step.item() == pytest.approx(x.max().item() / 255, rel=1e-5)
    assert conv.input_quant.zero_point.item() == 0


def test_per_layer_bits_dict_and_callable():
    model = quantize_model_(tiny_cnn(), weight_bits={"0": 4, "7": 2}, act_bits={"0": 8})
    layers = quantized_layers(model)
    assert set(layers) == {"0", "7"}
    assert isinstance(model[3], nn.Conv2d) and not isinstance(model[3], QuantConv2d)
    assert layers["0"].weight_bits == 4 and layers["7"].weight_bits == 2
    assert layers["0"].act_bits == 8 and layers["7"].act_bits is None
    codes = layers["7"].weight_quant.integer_weight(layers["7"].weight)
    assert set(codes.unique().tolist()) <= {-1, 0, 1}

    by_type = quantize_model_(tiny_cnn(), weight_bits=lambda name, m: 8 if isinstance(m, nn.Linear) else 3, act_bits=None)
    bits = {n: l.weight_bits for n, l in quantized_layers(by_type).items()}
    assert bits == {"0": 3, "3": 3, "7": 8}
    assert all(l.input_quant is None for l in quantized_layers(by_type).values())


def test_layers_and_exclude_restrict_the_swap():
    model = quantize_model_(tiny_cnn(), 8, 8, layers=["3"])
    assert set(quantized_layers(model)) == {"3"}
    model = quantize_model_(tiny_cnn(), 8, 8, exclude=["0", "7"])
    assert set(quantized_layers(model)) == {"3"}


def test_unsupported_layer_is_named():
    with pytest.raises(UnsupportedLayerError, match="'1' is a BatchNorm2d"):
        quantize_model_(tiny_cnn(), weight_bits={"1": 8})
    attention = nn.Sequential(nn.MultiheadAttention(8, 2))
    with pytest.raises(UnsupportedLayerError, match="0.out_proj"):
        quantize_model_(attention, layers=["0.out_proj"])
    assert quantized_layers(quantize_model_(nn.Sequential(nn.MultiheadAttention(8, 2)))) == {}
    with pytest.raises(UnknownNameError, match="no layer named 'nope'"):
        quantize_model_(tiny_cnn(), layers=["nope"])
    with pytest.raises(ValueError, match="from 2 to 8"):
        quantize_model_(tiny_cnn(), weight_bits=16)


def test_calibrate_minmax_sets_ranges_by_hand():
    model = quantize_model_(nn.Sequential(nn.Linear(3, 2)), weight_bits=8, act_bits=8)
    batches = [torch.tensor([[-1.0, 0.5, 2.0]]), (torch.tensor([[3.0, -0.5, 0.0]]), torch.tensor([1]))]
    report = calibrate_(model, batches)
    q = model[0].input_quant
    assert report["batches"] == 2 and report["simulated"] is True and report["integer_arithmetic"] is False
    assert report["layers"]["0"]["low"] == -1.0 and report["layers"]["0"]["high"] == 3.0
    assert q.step.item() == pytest.approx(4.0 / 255)
    assert q.zero_point.item() == 64


def test_calibrate_percentile_is_narrower_than_minmax():
    x = torch.randn(64, 32)
    x[0, 0] = 50.0  # one outlier
    ranges = {}
    for method in ("minmax", "percentile"):
        model = quantize_model_(nn.Sequential(nn.Linear(32, 4)), 8, 8)
        calibrate_(model, x, method=method, percentile=99.9)
        ranges[method] = model[0].input_quant.step.item() * 255
    assert ranges["minmax"] == pytest.approx(50.0 - x.min().item(), rel=1e-4)
    assert ranges["percentile"] < ranges["minmax"] / 3


def test_calibrate_needs_quant_layers_and_data():
    with pytest.raises(ValueError, match="quantize_model_"):
        calibrate_(tiny_cnn(), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="no batches"):
        calibrate_(quantize_model_(tiny_cnn()), [])


def test_qat_gradients_reach_weights_and_steps():
    model = quantize_model_(tiny_cnn(), weight_bits=4, act_bits=8)
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 4, (8,))
    calibrate_(model, x)
    model.train()
    F.cross_entropy(model(x), y).backward()
    for name, layer in quantized_layers(model).items():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0, name
        assert layer.weight_quant.step.grad is not None and layer.weight_quant.step.grad.abs().sum() > 0, name
        assert layer.input_quant.step.grad is not None and layer.input_quant.step.grad.abs() > 0, name


def test_qat_step_lowers_the_loss_and_groups_steps_without_decay():
    torch.manual_seed(0)
    model = quantize_model_(tiny_cnn(), weight_bits=4, act_bits=8)
    x = torch.rand(32, 3, 8, 8)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long()
    calibrate_(model, x)
    groups = qat_param_groups(model, lr=0.05, step_lr=0.001, weight_decay=1e-4)
    assert len(groups[1]["params"]) == len(step_parameters(model)) == 6
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["lr"] == 0.001
    optimizer = torch.optim.Adam(groups)
    steps_before = [p.detach().clone() for p in step_parameters(model)]
    losses = [qat_step(model, x, y, optimizer) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(steps_before, step_parameters(model)))


def test_dequantize_model_matches_weight_only_fake_quant():
    model = quantize_model_(tiny_cnn(), weight_bits=3, act_bits=8).eval()
    x = torch.rand(2, 3, 8, 8)
    set_quantization_(model, weights=True, activations=False)
    expected = model(x)
    dequantize_model_(model)
    assert not quantized_layers(model)
    assert type(model[0]) is nn.Conv2d
    torch.testing.assert_close(model(x), expected)
