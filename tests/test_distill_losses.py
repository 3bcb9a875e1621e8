"""Logit KD against hand computations with explicit sums."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.distill import KDConfig, KDLoss, kd_loss, soft_target_kl
from fewshot_kd.errors import ClassCountMismatchError, NonFiniteLossError

STUDENT = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]
TEACHER = [[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
LABELS = [2, 0]


def _softmax(row, t):
    exps = [math.exp(v / t) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def _hand_kl(student, teacher, t):
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        p_s, p_t = _softmax(s_row, t), _softmax(t_row, t)
        total += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    return total / len(student)


def _hand_ce(student, labels):
    return sum(-math.log(_softmax(row, 1.0)[y]) for row, y in zip(student, labels)) / len(student)


def test_soft_target_kl_matches_explicit_sum():
    got = soft_target_kl(torch.tensor(STUDENT), torch.tensor(TEACHER), temperature=2.0)
    assert got.item() == pytest.approx(_hand_kl(STUDENT, TEACHER, 2.0), rel=1e-5)


def test_kd_loss_is_weighted_sum_with_t_squared():
    t, alpha = 4.0, 0.7
    expected = alpha * t * t * _hand_kl(STUDENT, TEACHER, t) + (1 - alpha) * _hand_ce(STUDENT, LABELS)
    got = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), temperature=t, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_t_squared_scaling_alpha_one_without_labels():
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    for temperature in (1.0, 3.0, 8.0):
        got = kd_loss(s, t, temperature=temperature, alpha=1.0)
        kl = soft_target_kl(s, t, temperature)
        assert got.item() == pytest.approx(temperature**2 * kl.item(), rel=1e-6)


def test_alpha_zero_is_plain_cross_entropy():
    got = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), alpha=0.0)
    assert got.item() == pytest.approx(_hand_ce(STUDENT, LABELS), rel=1e-6)


def test_identical_logits_give_zero_kl():
    s = torch.randn(5, 7)
    assert soft_target_kl(s, s.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_student_only():
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(TEACHER, requires_grad=True)
    kd_loss(student, teacher, torch.tensor(LABELS)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_kd_module_uses_seed_003_defaults():
    module = KDLoss()
    assert (module.config.temperature, module.config.alpha) == (4.0, 0.7)
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    assert module(s, t, y).item() == pytest.approx(kd_loss(s, t, y).item())


def test_class_count_mismatch():
    with pytest.raises(ClassCountMismatchError, match="3 classes but the teacher 4"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), alpha=1.0)


def test_batch_mismatch_and_bad_labels():
    with pytest.raises(ValueError, match="batch shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(3, 3), alpha=1.0)
    with pytest.raises(ValueError, match="needs labels"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), alpha=0.5)
    with pytest.raises(ClassCountMismatchError, match="labels range"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="do not match logits"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1, 2]))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1]), alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        KDConfig(alpha=-0.1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_raise(bad):
    s = torch.zeros(2, 3)
    s[1, 2] = bad
    with pytest.raises(NonFiniteLossError, match="student_logits"):
        kd_loss(s, torch.zeros(2, 3), alpha=1.0)
    with pytest.raises(NonFiniteLossError, match="teacher_logits"):
        kd_loss(torch.zeros(2, 3), s, alpha=1.0)
