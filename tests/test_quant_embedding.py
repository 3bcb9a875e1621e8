import pytest
import torch
import torch.nn as nn

from fewshot_kd.quant import (QuantEmbedding, dequantize_model_, dequantized_weights, export_quantized, load_quantized,
                              quantize_model_, quantized_layers)


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(500, 16, padding_idx=0)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        return self.head(self.embed(ids).mean(1))


@pytest.fixture
def bag():
    torch.manual_seed(0)
    return Bag()


def test_embeddings_stay_float_unless_asked(bag):
    quantize_model_(bag, 8, None)
    assert set(quantized_layers(bag)) == {"head"}


def test_quant_embedding_rows_and_no_input_quantizer(bag):
    ids = torch.randint(0, 500, (4, 7))
    float_out = bag.embed(ids)
    quantize_model_(bag, 4, 8, embeddings=True)
    layer = bag.embed
    assert isinstance(layer, QuantEmbedding) and layer.input_quant is None and layer.weight_quant.step.numel() == 500
    q = layer(ids)
    assert torch.equal(q, nn.functional.embedding(ids, layer.quantized_weight(), 0))
    assert not torch.equal(q, float_out) and (q - float_out).abs().max() < 0.5  # 4-bit rows: close, not exact
    codes = layer.weight_quant.integer_weight(layer.weight)
    assert codes.min() >= -8 and codes.max() <= 7


def test_quantized_embedding_exports_small_and_round_trips(bag, tmp_path):
    ids = torch.randint(0, 500, (4, 7))
    quantize_model_(bag, 8, None, embeddings=True)
    expected = bag(ids)
    path = export_quantized(bag, tmp_path / "bag.int8.safetensors")
    assert path.stat().st_size < 0.4 * (500 * 16 * 4)  # int8 codes + one fp32 step per row, not fp32 rows
    assert "embed.weight" in dequantized_weights(path)
    loaded = load_quantized(path, Bag())
    assert torch.allclose(loaded(ids), expected, atol=1e-6)
    again = load_quantized(path, Bag(), fake_quant=True)
    assert isinstance(again.embed, QuantEmbedding) and torch.allclose(again(ids), expected, atol=1e-6)
    dequantize_model_(bag)
    assert type(bag.embed) is nn.Embedding and torch.allclose(bag(ids), expected, atol=1e-6)
