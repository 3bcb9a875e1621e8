import pytest
import torch
import torch.nn as nn

from fewshot_kd.errors import UnsupportedLayerError
from fewshot_kd.measure import saved_size_bytes
from fewshot_kd.quant import to_dynamic_int8


def test_dynamic_int8_runs_integer_linear_and_stays_close():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    int8 = to_dynamic_int8(model)
    assert int8.integer_arithmetic and not int8.simulated
    kinds = {type(m).__module__ for m in int8.modules()}
    assert any("quantized.dynamic" in k for k in kinds)
    x = torch.randn(32, 64)
    with torch.no_grad():
        ref, out = model(x), int8(x)
    assert (ref - out).abs().max() < 0.05 * ref.abs().max()
    assert isinstance(model[0], nn.Linear)  # the original is untouched
    assert saved_size_bytes(int8, format="torch") < 0.5 * saved_size_bytes(model, format="torch")


def test_model_without_linear_is_rejected():
    with pytest.raises(UnsupportedLayerError, match="no nn.Linear"):
        to_dynamic_int8(nn.Sequential(nn.Conv2d(1, 1, 3)))
