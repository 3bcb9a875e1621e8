"""Hint losses, per-layer weights and learnable feature adaptors."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.distill import FeatureAdaptor, HintLoss, feature_mse, hint_loss, resolve_layer_weights
from fewshot_kd.errors import NonFiniteLossError, UnsupportedLayerError

S1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
T1 = torch.tensor([[0.0, 2.0], [3.0, 6.0]])  # squared errors 1, 0, 0, 4 -> MSE 1.25
S2 = torch.zeros(2, 1, 2, 2)
T2 = torch.full((2, 1, 2, 2), 0.5)  # MSE 0.25


def test_hint_loss_by_hand_with_weights():
    assert hint_loss([S1, S2], [T1, T2]).item() == pytest.approx((1.25 + 0.25) / 2)
    assert hint_loss([S1, S2], [T1, T2], weights=[2.0, 1.0]).item() == pytest.approx((2 * 1.25 + 0.25) / 2)
    assert hint_loss([S1, S2], [T1, T2], weights={1: 4.0}).item() == pytest.approx((1.25 + 4 * 0.25) / 2)
    named = hint_loss([S1, S2], [T1, T2], weights={"b": 0.0}, names=["a", "b"])
    assert named.item() == pytest.approx(1.25 / 2)


def test_zero_weight_removes_layer_and_its_gradient():
    s2 = S2.clone().requires_grad_(True)
    base = hint_loss([S1, s2], [T1, T2], weights=[1.0, 0.0])
    other = hint_loss([S1, S2], [T1, T2 + 100.0], weights=[1.0, 0.0])
    assert base.item() == pytest.approx(other.item())
    base.backward()
    assert torch.count_nonzero(s2.grad) == 0


def test_normalised_mse_by_hand():
    assert feature_mse(torch.tensor([[3.0, 4.0]]), torch.tensor([[6.0, 8.0]]), normalize=True).item() == pytest.approx(0.0, abs=1e-7)
    # [1, 0] vs [0, 1] after normalising: squared errors 1 and 1 -> mean 1
    assert feature_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), normalize=True).item() == pytest.approx(1.0)


def test_gradient_to_student_only():
    student = S1.clone().requires_grad_(True)
    teacher = T1.clone().requires_grad_(True)
    hint_loss([student], [teacher]).backward()
    assert student.grad is not None and teacher.grad is None
    # d/ds mean((s - t)^2) = 2 (s - t) / 4
    assert torch.allclose(student.grad, (S1 - T1) / 2)


def test_shape_mismatch_without_adaptor_names_hintloss():
    with pytest.raises(ValueError, match="HintLoss"):
        hint_loss([torch.zeros(2, 3)], [torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="1 student features but 2 teacher"):
        hint_loss([S1], [T1, T1])
    with pytest.raises(TypeError, match="list of tensors"):
        hint_loss(S1, T1)


def test_weight_validation():
    assert resolve_layer_weights(None, 3) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="2 layer weights for 3 layers"):
        resolve_layer_weights([1.0, 1.0], 3)
    with pytest.raises(ValueError, match="non-negative"):
        resolve_layer_weights([1.0, -0.5], 2)
    with pytest.raises(ValueError, match="non-negative"):
        resolve_layer_weights([1.0, math.nan], 2)
    with pytest.raises(KeyError, match="not a layer index"):
        resolve_layer_weights({5: 1.0}, 2)
    with pytest.raises(KeyError, match="not one of the layers"):
        resolve_layer_weights({"c": 1.0}, 2, names=["a", "b"])
    with pytest.raises(TypeError):
        resolve_layer_weights("1,2", 2)


def test_non_finite_feature_raises():
    with pytest.raises(NonFiniteLossError, match="teacher feature"):
        hint_loss([S1], [torch.tensor([[0.0, math.inf], [0.0, 0.0]])])


def test_conv_adaptor_with_pooling_by_hand():
    adaptor = FeatureAdaptor((2, 4, 4), (3, 2, 2))
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    with torch.no_grad():
        adaptor.proj.weight.copy_(weight.view(3, 2, 1, 1))
        adaptor.proj.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    x = torch.arange(32, dtype=torch.float32).view(1, 2, 4, 4)
    out = adaptor(x)
    assert out.shape == (1, 3, 2, 2)
    pooled = x.view(1, 2, 2, 2, 2, 2).mean(dim=(3, 5))  # 2x2 block means
    expected = torch.einsum("oc,nchw->nohw", weight, pooled) + torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(out, expected)


def test_conv_adaptor_upsamples_and_identity_when_shapes_match():
    adaptor = FeatureAdaptor((2, 2, 2), (4, 4, 4))
    assert adaptor(torch.ones(3, 2, 2, 2)).shape == (3, 4, 4, 4)
    constant = torch.full((1, 2, 2, 2), 2.0)
    out = adaptor(constant)  # interpolating a constant map keeps it constant
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out), atol=1e-6)
    same = FeatureAdaptor((8, 4, 4), (8, 4, 4))
    assert sum(p.numel() for p in same.parameters()) == 0
    x = torch.randn(2, 8, 4, 4)
    assert same(x) is x


def test_linear_adaptors_for_tokens_and_vectors():
    tokens = FeatureAdaptor((5, 16), (5, 32))
    assert isinstance(tokens.proj, torch.nn.Linear) and tokens(torch.randn(2, 5, 16)).shape == (2, 5, 32)
    vectors = FeatureAdaptor.from_tensors(torch.randn(2, 16), torch.randn(2, 8))
    assert vectors(torch.randn(4, 16)).shape == (4, 8)


def test_adaptor_errors():
    with pytest.raises(UnsupportedLayerError, match="different ranks"):
        FeatureAdaptor((8, 4, 4), (8, 16))
    with pytest.raises(UnsupportedLayerError, match="tokens"):
        FeatureAdaptor((5, 16), (6, 16))
    with pytest.raises(UnsupportedLayerError, match="not supported"):
        FeatureAdaptor((1, 2, 3, 4), (1, 2, 3, 4))
    with pytest.raises(ValueError, match="built for student features"):
        FeatureAdaptor((16,), (8,))(torch.randn(2, 4))


def test_hint_loss_module_gradients_reach_student_and_adaptor_not_teacher():
    student = torch.randn(4, 3, 4, 4, requires_grad=True)
    teacher = torch.randn(4, 6, 2, 2, requires_grad=True)
    loss_fn = HintLoss.from_features([student], [teacher])
    loss_fn([student], [teacher]).backward()
    assert student.grad is not None and teacher.grad is None
    assert loss_fn.adaptors[0].proj.weight.grad.abs().sum() > 0


def test_hint_loss_module_learns_the_adaptor():
    mixing = torch.randn(3, 5)
    student = torch.randn(32, 3)
    teacher = student @ mixing  # reachable exactly by the Linear adaptor
    loss_fn = HintLoss.from_features([student], [teacher])
    first = loss_fn([student], [teacher]).item()
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.1)
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_fn([student], [teacher])
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first


def test_hint_loss_module_weights_and_layer_count():
    loss_fn = HintLoss([(2,), (3,)], [(2,), (3,)], weights={"b": 0.0}, names=["a", "b"])
    s = [torch.zeros(1, 2), torch.zeros(1, 3)]
    t = [torch.ones(1, 2), torch.ones(1, 3) * 5]
    assert loss_fn(s, t).item() == pytest.approx(1.0 / 2)
    with pytest.raises(ValueError, match="built for 2 layers"):
        loss_fn(s[:1], t[:1])
