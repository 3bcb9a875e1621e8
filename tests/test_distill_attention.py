"""Attention transfer (Zagoruyko & Komodakis) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.distill import (
    AttentionTransferConfig,
    AttentionTransferLoss,
    attention_map,
    attention_transfer_layer_loss,
    attention_transfer_loss,
)
from fewshot_kd.errors import NonFiniteLossError, UnsupportedLayerError

# one sample, two channels, 1x2 map: |f|^2 mean over channels = [(1 + 9) / 2, (4 + 0) / 2] = [5, 2]
FEATURE = torch.tensor([[[[1.0, 2.0]], [[-3.0, 0.0]]]])


def test_attention_map_by_hand():
    expected = [5 / math.sqrt(29), 2 / math.sqrt(29)]
    assert attention_map(FEATURE).tolist()[0] == pytest.approx(expected)
    # p = 1: mean |f| = [2, 1]
    assert attention_map(FEATURE, p=1).tolist()[0] == pytest.approx([2 / math.sqrt(5), 1 / math.sqrt(5)])


def test_layer_loss_is_l2_norm_of_map_difference():
    teacher = torch.tensor([[[[0.0, 1.0]]]])  # one channel; map [0, 1]
    a_s = [5 / math.sqrt(29), 2 / math.sqrt(29)]
    expected = math.sqrt(a_s[0] ** 2 + (a_s[1] - 1.0) ** 2)
    assert attention_transfer_layer_loss(FEATURE, teacher).item() == pytest.approx(expected, rel=1e-6)
    squared = ((a_s[0] - 0.0) ** 2 + (a_s[1] - 1.0) ** 2) / 2
    assert attention_transfer_layer_loss(FEATURE, teacher, squared=True).item() == pytest.approx(squared, rel=1e-6)


def test_channel_count_may_differ_and_scale_does_not_matter():
    student = torch.randn(3, 4, 5, 5)
    teacher = torch.cat([student, student], dim=1) * 7.0  # same map after normalisation
    assert attention_transfer_layer_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_different_resolutions_are_pooled_to_the_smaller():
    student = torch.rand(2, 3, 2, 2)
    teacher = student.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 4x4, constant 2x2 blocks
    assert attention_transfer_layer_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_transfer_layer_loss(teacher, student).item() == pytest.approx(0.0, abs=1e-6)
    different = torch.rand(2, 3, 4, 4)
    assert attention_transfer_layer_loss(student, different).item() > 1e-3


def test_layers_weighted_and_zero_weight_removes_layer():
    s = [torch.rand(2, 3, 4, 4), torch.rand(2, 5, 2, 2)]
    t = [torch.rand(2, 6, 4, 4), torch.rand(2, 2, 2, 2)]
    per_layer = [attention_transfer_layer_loss(a, b).item() for a, b in zip(s, t)]
    assert attention_transfer_loss(s, t).item() == pytest.approx(sum(per_layer) / 2, rel=1e-6)
    assert attention_transfer_loss(s, t, weights=[0.0, 3.0]).item() == pytest.approx(3 * per_layer[1] / 2, rel=1e-6)
    t_changed = [t[0] * 0 + torch.rand(2, 6, 4, 4), t[1]]
    assert attention_transfer_loss(s, t_changed, weights=[0.0, 1.0]).item() == pytest.approx(per_layer[1] / 2, rel=1e-6)
    module = AttentionTransferLoss(weights={"deep": 0.0}, names=["shallow", "deep"], config=AttentionTransferConfig())
    assert module(s, t).item() == pytest.approx(per_layer[0] / 2, rel=1e-6)


def test_gradient_to_student_only():
    student = torch.rand(2, 3, 4, 4, requires_grad=True)
    teacher = torch.rand(2, 3, 4, 4, requires_grad=True)
    attention_transfer_loss([student], [teacher]).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_errors():
    with pytest.raises(UnsupportedLayerError, match=r"\[N, C, H, W\]"):
        attention_transfer_layer_loss(torch.rand(2, 5, 8), torch.rand(2, 5, 8))
    with pytest.raises(ValueError, match="batch"):
        attention_transfer_layer_loss(torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4))
    with pytest.raises(NonFiniteLossError):
        attention_transfer_layer_loss(torch.full((1, 1, 2, 2), math.nan), torch.rand(1, 1, 2, 2))
    with pytest.raises(ValueError, match="layer weights"):
        attention_transfer_loss([torch.rand(1, 1, 2, 2)], [torch.rand(1, 1, 2, 2)], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="p must be positive"):
        AttentionTransferConfig(p=0)
