"""Token positions as rows of the one distillation objective: the bank's flattened batch gives
the LM objective's value, unlabelled sequences get soft targets only, and a large vocabulary
runs the teacher per batch instead of caching its logits."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.distill.lm_bank import NextTokenLogits, TokenBank  # noqa: E402
from fewshot_kd.distill.lm_objective import lm_distillation_objective  # noqa: E402
from fewshot_kd.distill.objective import UNLABELLED, ObjectiveWeights, distillation_objective  # noqa: E402
from fewshot_kd.models.causal_lm import every_other_layer, gpt2_lm, small_gpt2_config  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    teacher = gpt2_lm(small_gpt2_config(n_positions=32, n_embd=32, n_layer=2, n_head=2, dropout=0.0)).eval()
    return teacher, every_other_layer(teacher)


def test_a_bank_batch_through_the_classification_objective_is_the_lm_objective(pair):
    teacher, student = pair
    ids = torch.randint(0, 256, (3, 12))
    bank = TokenBank.build(teacher, ids, torch.ones(3, dtype=torch.bool))
    inputs, labels, teacher_rows, features = bank.batch(torch.tensor([0, 2]))
    assert teacher_rows.shape == (2 * 11, 256) and labels.shape == (22,) and features == []
    weights = ObjectiveWeights(2.0, 0.3)
    rows = NextTokenLogits(student)(inputs)
    flat, _ = distillation_objective(rows, teacher_rows, labels, weights)
    direct, parts = lm_distillation_objective(student(input_ids=inputs).logits, teacher(input_ids=inputs).logits,
                                              inputs, weights)
    assert torch.allclose(flat, direct, atol=1e-5) and set(parts) == {"kd", "kl", "ce"}


def test_unlabelled_sequences_get_soft_targets_only_and_large_vocabularies_are_not_cached(pair):
    teacher, _ = pair
    ids = torch.randint(0, 256, (4, 6))
    bank = TokenBank.build(teacher, ids, torch.tensor([True, False, True, False]), cache_bytes=10)
    assert bank.teacher_logits is None and bank.teacher is teacher
    _, labels, teacher_rows, _ = bank.batch(torch.tensor([0, 1]))
    assert (labels[:5] == ids[0, 1:]).all() and (labels[5:] == UNLABELLED).all()
    cached = TokenBank.build(teacher, ids, torch.ones(4, dtype=torch.bool))
    assert torch.allclose(cached.batch(torch.tensor([0, 1]))[2], teacher_rows, atol=1e-5)
