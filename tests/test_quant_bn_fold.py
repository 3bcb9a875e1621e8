import torch
import torch.nn as nn

from fewshot_kd.quant import export_quantized, load_quantized, quantize_model_, quantized_layers
from fewshot_kd.quant.bn_fold import conv_bn_pairs
from fewshot_kd.quant.export import folded_batchnorm, read_quantized


def bn_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    for bn in (model[1], model[4]):  # trained-looking statistics, some negative scales
        bn.weight.data = torch.randn(bn.num_features)
        bn.bias.data = torch.randn(bn.num_features)
        bn.running_mean = torch.randn(bn.num_features)
        bn.running_var = torch.rand(bn.num_features) + 0.1
    return model.eval()


class TwoReaders(nn.Module):
    """The conv output feeds the BatchNorm and the residual sum: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_pairs_are_convs_read_only_by_their_batchnorm():
    assert conv_bn_pairs(bn_cnn()) == {"1": "0", "4": "3"}
    assert conv_bn_pairs(TwoReaders()) == {}
    assert conv_bn_pairs(nn.Sequential(nn.Linear(2, 2))) == {}


def test_folded_file_is_smaller_and_loads_to_the_same_function(tmp_path):
    model = quantize_model_(bn_cnn(), weight_bits=8, act_bits=None).eval()
    assert (model[1].weight < 0).any()
    x = torch.rand(4, 3, 8, 8)
    plain = export_quantized(model, tmp_path / "plain.safetensors")
    folded = export_quantized(model, tmp_path / "folded.safetensors", fold_batchnorm=True)
    assert folded.stat().st_size < plain.stat().st_size
    assert folded_batchnorm(folded) == {"1": "0", "4": "3"} and folded_batchnorm(plain) == {}
    tensors, _ = read_quantized(folded)
    assert "1.running_var" not in tensors and "0.bias" not in tensors and "1.bias" in tensors
    # same integer codes up to the sign the BatchNorm scale carries
    plain_codes, _ = read_quantized(plain)
    assert torch.equal(tensors["3.weight.codes"].abs(), plain_codes["3.weight.codes"].abs())
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(load_quantized(folded, bn_cnn)(x), expected, rtol=1e-4, atol=1e-5)
        again = load_quantized(folded, bn_cnn(), fake_quant=True).eval()
        assert set(quantized_layers(again)) == {"0", "3", "8"}
        torch.testing.assert_close(again(x), expected, rtol=1e-4, atol=1e-5)


def test_a_batchnorm_with_a_zero_scale_stays_unfolded(tmp_path):
    float_model = bn_cnn()
    float_model[4].weight.data[0] = 0.0
    model = quantize_model_(float_model, weight_bits=8, act_bits=None).eval()
    path = export_quantized(model, tmp_path / "m.safetensors", fold_batchnorm=True)
    assert folded_batchnorm(path) == {"1": "0"}
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_quantized(path, bn_cnn)(x), model(x), rtol=1e-4, atol=1e-5)
