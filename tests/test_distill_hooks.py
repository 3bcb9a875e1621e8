"""FeatureCapture: shapes, grads, no_grad, tuples, inputs, hook removal, BERT layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fewshot_kd.distill import FeatureCapture
from fewshot_kd.errors import UnknownNameError


def _cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 2)
    )


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class TupleLayer(nn.Module):
    def forward(self, x):
        return x * 2, x * 3


class WithTuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = TupleLayer()
        self.act = nn.ReLU()

    def forward(self, x):
        y, _ = self.block(x)
        return self.act(y) + self.act(-y)  # act runs twice


def test_captures_named_outputs_in_order_and_removes_hooks():
    model = _cnn()
    x = torch.rand(2, 3, 8, 8)
    with FeatureCapture(model, ["2", "0"]) as capture:
        assert _hook_count(model) == 3  # two layers + the reset hook on the model
        model(x)
        feats = capture.feature_list()
    assert [tuple(f.shape) for f in feats] == [(2, 8, 4, 4), (2, 4, 8, 8)]
    assert torch.allclose(feats[1], model[0](x))
    assert _hook_count(model) == 0 and not capture.active
    model(torch.rand(1, 3, 8, 8))
    assert capture["0"].shape[0] == 2  # nothing captured after exit


def test_student_keeps_graph_and_teacher_under_no_grad_does_not():
    model = _cnn()
    with FeatureCapture(model, ["0"]) as capture:
        model(torch.rand(2, 3, 8, 8))
        feature = capture["0"]
        assert feature.requires_grad
        feature.pow(2).mean().backward()
        assert model[0].weight.grad is not None
        with torch.no_grad():
            model(torch.rand(2, 3, 8, 8))
        assert not capture["0"].requires_grad
    with FeatureCapture(model, ["0"], detach=True) as capture:
        model(torch.rand(2, 3, 8, 8))
        assert not capture["0"].requires_grad


def test_each_forward_overwrites_and_inputs_are_captured():
    model = _cnn()
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    with FeatureCapture(model, ["2"], capture_inputs=True) as capture:
        model(a)
        model(b)
        (inp,) = capture.input_list()
        assert torch.allclose(inp, torch.relu(model[0](b)))
        assert capture.calls == {"2": 1}


def test_tuple_outputs_and_repeated_calls():
    model = WithTuple()
    x = torch.tensor([[1.0, -2.0]])
    with FeatureCapture(model, ["block", "act"]) as capture:
        model(x)
        assert torch.equal(capture["block"], x * 2)
        assert torch.equal(capture["act"], torch.relu(-x * 2))  # last of the two calls
        assert capture.calls["act"] == 2
    with FeatureCapture(model, ["block"], tuple_index=1) as capture:
        model(x)
        assert torch.equal(capture["block"], x * 3)
    with FeatureCapture(model, ["block"], tuple_index=None) as capture:
        model(x)
        assert isinstance(capture["block"], tuple) and len(capture["block"]) == 2


def test_hooks_removed_when_forward_raises():
    model = _cnn()
    with pytest.raises(RuntimeError):
        with FeatureCapture(model, ["0"]):
            model(torch.rand(2, 5, 8, 8))  # wrong channel count
    assert _hook_count(model) == 0


def test_errors():
    model = _cnn()
    with pytest.raises(UnknownNameError, match="no submodule '7'"):
        FeatureCapture(model, ["7"])
    with pytest.raises(TypeError, match="list of module names"):
        FeatureCapture(model, "0")
    capture = FeatureCapture(model, ["0", "4"])
    with capture:
        with pytest.raises(RuntimeError, match="already active"):
            capture.__enter__()
        with pytest.raises(KeyError, match="did not run"):
            capture.feature_list()
        with pytest.raises(RuntimeError, match="capture_inputs=True"):
            capture.input_list()


@pytest.mark.slow  # importing transformers' BERT takes several seconds on a busy 2-core machine
def test_bert_encoder_layers_match_hidden_states():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128
    )
    model = transformers.BertModel(config).eval()
    ids = torch.randint(0, 100, (2, 7))
    names = [f"encoder.layer.{i}" for i in range(4)]
    with torch.no_grad(), FeatureCapture(model, names, capture_inputs=True) as capture:
        out = model(input_ids=ids, output_hidden_states=True)
    for i, feature in enumerate(capture.feature_list()):
        assert feature.shape == (2, 7, 64)
        assert torch.allclose(feature, out.hidden_states[i + 1])
    assert torch.allclose(capture.input_list()[0], out.hidden_states[0])
