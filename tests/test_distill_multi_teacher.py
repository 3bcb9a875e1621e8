"""Multi-teacher soft targets and KD (seed 004)."""

from __future__ import annotations

import math

import pytest
import torch

from fewshot_kd.distill import kd_loss, multi_teacher_kd_loss, multi_teacher_soft_targets
from fewshot_kd.errors import ClassCountMismatchError, NonFiniteLossError

T1 = [[2.0, 0.0], [0.0, 0.0]]
T2 = [[0.0, 2.0], [1.0, 3.0]]


def _softmax(row, t):
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def test_weighted_probability_average_by_hand():
    got = multi_teacher_soft_targets([torch.tensor(T1), torch.tensor(T2)], weights=[3.0, 1.0], temperature=2.0)
    for n in range(2):
        p1, p2 = _softmax(T1[n], 2.0), _softmax(T2[n], 2.0)
        expected = [0.75 * a + 0.25 * b for a, b in zip(p1, p2)]
        assert got[n].tolist() == pytest.approx(expected, rel=1e-6)
    assert got.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])


def test_equal_weights_by_default_and_logit_averaging():
    t1, t2 = torch.tensor(T1), torch.tensor(T2)
    probs = multi_teacher_soft_targets([t1, t2], temperature=1.0)
    assert probs.tolist()[0] == pytest.approx([0.5, 0.5])  # softmax([2,0]) and softmax([0,2]) are mirrored
    logits_avg = multi_teacher_soft_targets([t1, t2], temperature=1.0, average="logits")
    assert logits_avg.tolist()[1] == pytest.approx(_softmax([0.5, 1.5], 1.0))


def test_kd_loss_by_hand_and_single_teacher_equals_kd():
    student = torch.tensor([[0.5, -0.5], [1.0, 0.0]])
    labels = torch.tensor([0, 1])
    t, alpha = 4.0, 0.7
    mix = multi_teacher_soft_targets([torch.tensor(T1), torch.tensor(T2)], temperature=t)
    kl = 0.0
    for n in range(2):
        p_s = _softmax(student[n].tolist(), t)
        kl += sum(q * math.log(q / p) for q, p in zip(mix[n].tolist(), p_s))
    ce = sum(-math.log(_softmax(student[n].tolist(), 1.0)[labels[n]]) for n in range(2)) / 2
    expected = alpha * t * t * kl / 2 + (1 - alpha) * ce
    got = multi_teacher_kd_loss(student, [torch.tensor(T1), torch.tensor(T2)], labels, temperature=t, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    single = multi_teacher_kd_loss(student, [torch.tensor(T1)], labels)
    assert single.item() == pytest.approx(kd_loss(student, torch.tensor(T1), labels).item(), rel=1e-6)


def test_zero_weight_teacher_is_ignored():
    student = torch.randn(3, 4)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    got = multi_teacher_kd_loss(student, [a, b], weights=[1.0, 0.0], alpha=1.0)
    assert got.item() == pytest.approx(kd_loss(student, a, alpha=1.0).item(), rel=1e-6)


def test_gradient_to_student_only():
    student = torch.randn(3, 4, requires_grad=True)
    teachers = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    multi_teacher_kd_loss(student, teachers, alpha=1.0).backward()
    assert student.grad is not None and all(t.grad is None for t in teachers)


def test_errors():
    with pytest.raises(ClassCountMismatchError, match="teacher 1"):
        multi_teacher_soft_targets([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(ClassCountMismatchError):
        multi_teacher_kd_loss(torch.zeros(2, 5), [torch.zeros(2, 3)], alpha=1.0)
    with pytest.raises(ValueError, match="sum to 0"):
        multi_teacher_soft_targets([torch.zeros(2, 3)], weights=[0.0])
    with pytest.raises(ValueError, match="2 teacher weights for 1 teacher"):
        multi_teacher_soft_targets([torch.zeros(2, 3)], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="non-empty"):
        multi_teacher_soft_targets([])
    with pytest.raises(NonFiniteLossError):
        multi_teacher_soft_targets([torch.tensor([[float("nan"), 0.0]])])
