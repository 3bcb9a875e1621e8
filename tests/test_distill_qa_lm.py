"""QA and causal-LM distillation objectives: hand computations, masking, unlabelled rows,
and the LM cross-entropy against GPT-2's own loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_kd.distill.lm_objective import lm_distillation_objective, next_token_targets, token_terms
from fewshot_kd.distill.objective import ObjectiveWeights
from fewshot_kd.distill.qa_objective import span_distillation_objective, span_terms

WEIGHTS = ObjectiveWeights(temperature=2.0, alpha=0.5)


def _kl(student, teacher, t):
    p = F.softmax(teacher / t, -1)
    return (p * (p.log() - F.log_softmax(student / t, -1))).sum(-1)


def test_span_terms_average_start_and_end_as_computed_by_hand():
    torch.manual_seed(0)
    s_start, s_end, t_start, t_end = (torch.randn(3, 7) for _ in range(4))
    starts, ends = torch.tensor([1, 2, -1]), torch.tensor([3, 2, -1])
    kl, ce = span_terms(s_start, s_end, t_start, t_end, starts, ends, 2.0)
    expect_kl = (_kl(s_start, t_start, 2.0).mean() + _kl(s_end, t_end, 2.0).mean()) / 2 * 4
    expect_ce = (F.cross_entropy(s_start[:2], starts[:2]) + F.cross_entropy(s_end[:2], ends[:2])) / 2
    assert kl.item() == pytest.approx(expect_kl.item(), rel=1e-5)
    assert ce.item() == pytest.approx(expect_ce.item(), rel=1e-5)
    loss, parts = span_distillation_objective(s_start, s_end, t_start, t_end, starts, ends, WEIGHTS)
    assert loss.item() == pytest.approx(0.5 * expect_kl.item() + 0.5 * expect_ce.item(), rel=1e-5)
    assert set(parts) == {"kd", "kl", "ce"}


def test_span_padding_is_ignored_and_only_the_student_gets_gradients():
    torch.manual_seed(1)
    student = torch.randn(2, 6, requires_grad=True)
    teacher = torch.randn(2, 6, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]])
    positions = torch.tensor([2, -1])
    loss, _ = span_distillation_objective(student, student, teacher, teacher, positions, positions, WEIGHTS, mask)
    loss.backward()
    assert teacher.grad is None and student.grad[mask == 0].abs().max() < 1e-6
    changed = student.detach().clone()
    changed[mask == 0] = 50.0
    again, _ = span_distillation_objective(changed, changed, teacher, teacher, positions, positions, WEIGHTS, mask)
    assert again.item() == pytest.approx(loss.item(), rel=1e-5)
    same, parts = span_distillation_objective(teacher, teacher, teacher, teacher, positions, positions,
                                              ObjectiveWeights(2.0, 1.0), mask)
    assert same.item() == pytest.approx(0.0, abs=1e-5) and parts["ce"].item() > 0


def test_next_token_targets_drop_padding():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert next_token_targets(ids, mask).tolist() == [[6, 7, -100], [9, -100, -100]]


def test_lm_cross_entropy_is_gpt2s_own_loss_and_kl_vanishes_on_the_teacher():
    pytest.importorskip("transformers")
    from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config

    torch.manual_seed(0)
    model = gpt2_lm(small_gpt2_config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    ids = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    loss, parts = lm_distillation_objective(out.logits, out.logits, ids, ObjectiveWeights(3.0, 0.25))
    assert parts["ce"].item() == pytest.approx(out.loss.item(), rel=1e-5)
    assert parts["kl"].item() == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(0.75 * out.loss.item(), rel=1e-5)


def test_lm_kl_is_the_mean_over_real_positions_at_temperature_squared():
    torch.manual_seed(2)
    student, teacher = torch.randn(2, 4, 11), torch.randn(2, 4, 11)
    ids = torch.randint(0, 11, (2, 4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    kl, ce = token_terms(student, teacher, next_token_targets(ids, mask), 2.0)
    counted = [(0, 0), (0, 1), (0, 2), (1, 0)]
    expect_kl = torch.stack([_kl(student[b, t], teacher[b, t], 2.0) for b, t in counted]).mean() * 4
    expect_ce = torch.stack([F.cross_entropy(student[b, t][None], ids[b, t + 1][None]) for b, t in counted]).mean()
    assert kl.item() == pytest.approx(expect_kl.item(), rel=1e-5)
    assert ce.item() == pytest.approx(expect_ce.item(), rel=1e-5)
