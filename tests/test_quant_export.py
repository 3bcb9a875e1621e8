"""Packed quantized-weights file: bit packing, file size, exact round trip."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import torch.nn as nn

from fewshot_kd.errors import FewShotKDError
from fewshot_kd.files import save_tensors
from fewshot_kd.quant import (
    calibrate_,
    dequantized_weights,
    export_quantized,
    load_quantized,
    quantize_model_,
    quantized_layers,
)
from fewshot_kd.quant._packing import pack_signed, unpack_signed


def weight_heavy_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )


def test_int4_packing_round_trips_all_16_values():
    values = torch.arange(-8, 8)
    packed = pack_signed(values, 4)
    assert packed.dtype == torch.uint8 and packed.numel() == 8
    assert torch.equal(unpack_signed(packed, 4, 16), values.int())
    # by hand: low nibble first, two's complement: (1, -1) -> 0x1 | 0xF << 4
    assert pack_signed(torch.tensor([1, -1]), 4).tolist() == [0xF1]
    odd = torch.tensor([-8, 7, 3])  # an odd count is padded
    assert pack_signed(odd, 4).numel() == 2
    assert torch.equal(unpack_signed(pack_signed(odd, 4), 4, 3), odd.int())


def test_int2_and_int8_packing_round_trip():
    two = torch.tensor([-2, -1, 0, 1, 1, 0])
    packed = pack_signed(two, 2)
    assert packed.numel() == 2
    assert torch.equal(unpack_signed(packed, 2, 6), two.int())
    eight = torch.arange(-128, 128)
    assert pack_signed(eight, 8).dtype == torch.int8
    assert torch.equal(unpack_signed(pack_signed(eight, 8), 8, 256), eight.int())
    with pytest.raises(ValueError, match="outside the 4-bit range"):
        pack_signed(torch.tensor([8]), 4)


def _data_bytes(path) -> tuple[int, int]:
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    return header_len, len(raw) - 8 - header_len


@pytest.mark.parametrize("bits", [8, 4, 3, 2])
def test_file_size_reflects_the_bits(tmp_path, bits):
    model = quantize_model_(weight_heavy_cnn(), weight_bits=bits, act_bits=None)
    path = export_quantized(model, tmp_path / "m.safetensors")
    header_len, data = _data_bytes(path)
    per_byte = {8: 1, 4: 2, 3: 2, 2: 4}[bits]
    layers = quantized_layers(model)
    weight_bytes = sum(-(-l.weight.numel() // per_byte) for l in layers.values())
    scale_bytes = sum(4 * l.weight.shape[0] for l in layers.values())
    other = {k: v for k, v in model.state_dict().items()
             if not any(k == f"{n}.weight" or k.startswith(f"{n}.weight_quant.") for n in layers)}
    other_bytes = sum(v.numel() * v.element_size() for v in other.values())
    assert data == weight_bytes + scale_bytes + other_bytes
    assert header_len < 4096
    assert path.stat().st_size == 8 + header_len + data


def test_int4_file_is_about_half_the_int8_file(tmp_path):
    sizes = {}
    for bits in (8, 4):
        model = quantize_model_(weight_heavy_cnn(), weight_bits=bits, act_bits=None)
        sizes[bits] = export_quantized(model, tmp_path / f"w{bits}.safetensors").stat().st_size
    float_size = save_tensors(tmp_path / "f.safetensors", weight_heavy_cnn().state_dict()).stat().st_size
    assert 0.5 <= sizes[4] / sizes[8] < 0.6
    assert sizes[8] < float_size / 3


@pytest.mark.parametrize("bits", [8, 4, 3])
def test_round_trip_equals_fake_quant_weights_exactly(tmp_path, bits):
    model = quantize_model_(weight_heavy_cnn(), weight_bits=bits, act_bits=8).eval()
    x = torch.rand(4, 3, 8, 8)
    calibrate_(model, x)
    path = export_quantized(model, tmp_path / "m.safetensors")
    loaded = load_quantized(path, weight_heavy_cnn).eval()
    assert not quantized_layers(loaded)
    for name, layer in quantized_layers(model).items():
        assert torch.equal(loaded.get_submodule(name).weight, layer.quantized_weight()), name
    assert torch.equal(loaded[0].bias, model[0].bias)
    assert torch.equal(loaded[4].running_var, model[4].running_var)
    assert torch.equal(dequantized_weights(path)["3.weight"], model[3].quantized_weight())
    # re-wrapped: same bits, steps and activation ranges, hence the same outputs
    again = load_quantized(path, weight_heavy_cnn(), fake_quant=True).eval()
    assert {n: l.weight_bits for n, l in quantized_layers(again).items()} == {"0": bits, "3": bits, "8": bits}
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_metadata_is_json_and_loader_rejects_other_files(tmp_path):
    from safetensors import safe_open

    path = export_quantized(quantize_model_(weight_heavy_cnn(), weight_bits={"3": 4}, act_bits=None), tmp_path / "m.st")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    layers = json.loads(meta["layers"])
    assert layers == {"3": {"weight_bits": 4, "container_bits": 4, "shape": [64, 32, 3, 3],
                            "act_bits": None, "act_symmetric": None}}
    other = save_tensors(tmp_path / "plain.safetensors", {"a": torch.zeros(2)})
    with pytest.raises(FewShotKDError, match="not a fewshot_kd quantized file"):
        load_quantized(other, weight_heavy_cnn)
    with pytest.raises(FewShotKDError, match="does not fit the model"):
        load_quantized(path, lambda: nn.Sequential(nn.Linear(2, 2)))


def test_load_by_registered_model_name(tmp_path):
    from fewshot_kd.models.catalog import create_model

    model = quantize_model_(create_model("cifar_resnet20"), weight_bits=4, act_bits=None)
    path = export_quantized(model, tmp_path / "r20.w4.safetensors")
    loaded = load_quantized(path, "cifar_resnet20")
    assert torch.equal(loaded.layer2[0].conv1.weight, model.layer2[0].conv1.quantized_weight())
    assert torch.equal(loaded.linear.weight, model.linear.quantized_weight())
