import pytest
import torch

from fewshot_kd import Policy, adapt, create_model
from fewshot_kd.distill.objective import ObjectiveWeights, distillation_objective
from fewshot_kd.distill.views import UNLABELLED, add_unlabelled
from fewshot_kd.distill import kd_loss, soft_target_kl
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError

FAST = Policy(steps=40, new_arch_steps=40, views_per_shot=2, flip=False)


def test_unlabelled_inputs_exclude_the_shots_and_are_seeded(digits):
    pool = digits.train
    shots = set(pool.few_shot_indices(5, seed=3).tolist())
    assert pool.few_shot(5, seed=3).labels.tolist() == pool.labels[pool.few_shot_indices(5, seed=3)].tolist()
    a, b = pool.unlabelled_inputs(100, 5, seed=3), pool.unlabelled_inputs(100, 5, seed=3)
    assert torch.equal(a, b) and a.shape[0] == 100
    shot_rows = pool.input_batch(sorted(shots))
    # no unlabelled row is one of the shots (rows compared exactly)
    assert not (a[:, None] == shot_rows[None]).flatten(2).all(-1).any()
    with pytest.raises(NotEnoughExamplesError, match="remain"):
        pool.unlabelled_inputs(len(pool), 5, seed=3)


def bank_kd_loss(logits, teacher_logits, labels, temperature, alpha):
    return distillation_objective(logits, teacher_logits, labels, ObjectiveWeights(temperature, alpha))[0]


def test_bank_kd_loss_masks_cross_entropy_on_unlabelled_rows():
    torch.manual_seed(0)
    logits, teacher_logits = torch.randn(6, 4), torch.randn(6, 4)
    labels = torch.tensor([0, 1, UNLABELLED, UNLABELLED, 2, UNLABELLED])
    known = labels != UNLABELLED
    expected = 0.7 * 16 * soft_target_kl(logits, teacher_logits, 4.0) + 0.3 * torch.nn.functional.cross_entropy(
        logits[known], labels[known])
    assert torch.allclose(bank_kd_loss(logits, teacher_logits, labels, 4.0, 0.7), expected)
    full = torch.tensor([0, 1, 2, 3, 2, 1])
    assert torch.allclose(bank_kd_loss(logits, teacher_logits, full, 4.0, 0.7), kd_loss(logits, teacher_logits, full, 4.0, 0.7))
    only_unlabelled = torch.full((6,), UNLABELLED)
    assert torch.allclose(bank_kd_loss(logits, teacher_logits, only_unlabelled, 4.0, 0.7),
                          0.7 * 16 * soft_target_kl(logits, teacher_logits, 4.0))


def test_add_unlabelled_appends_views_with_the_unlabelled_mark():
    inputs, labels = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    merged, merged_labels = add_unlabelled(inputs, labels, torch.ones(3, 1, 8, 8), 2, None, True, 0.1, seed=0)
    assert merged.shape[0] == 4 + 6 and (merged_labels[4:] == UNLABELLED).all()
    texts, text_labels = add_unlabelled(["a b"], torch.tensor([0]), ["c d e"], 1, None, False, 0.1, seed=0)
    assert texts == ["a b", "c d e"] and text_labels.tolist() == [0, UNLABELLED]
    with pytest.raises(FewShotKDError, match="kind"):
        add_unlabelled(inputs, labels, ["text"], 1, None, False, 0.1, seed=0)


def test_unlabelled_pool_helps_a_new_architecture_student(teacher, digits):
    """The same shots and steps; soft targets on 600 unlabelled digits must lift accuracy."""
    accuracies = {}
    for unlabelled in (None, 600):
        torch.manual_seed(0)
        student = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=10)
        result = adapt(teacher, student, shots=1, data=digits, target={"macs": None, "bits": None},
                       policy=FAST.__class__(**{**FAST.to_dict(), "new_arch_steps": 150}), progress=False,
                       unlabelled=unlabelled)
        accuracies[unlabelled] = result.report["eval"]["test"]["student"]["accuracy"]
        if unlabelled:
            assert result.report["stages"]["unlabelled_inputs"] == 600
            assert result.report["stages"]["views"] == 10 * 2 + 600
    assert accuracies[600] > accuracies[None] + 0.05, accuracies


def test_unlabelled_argument_forms_and_errors(teacher, digits):
    images = digits.train.unlabelled_inputs(50, 2, seed=0)
    for form in (images, digits.test):
        r = adapt(teacher, None, shots=2, data=digits, policy=Policy(steps=2, views_per_shot=1), progress=False,
                  unlabelled=form)
        assert r.report["stages"]["unlabelled_inputs"] == len(form)
    with pytest.raises(FewShotKDError, match="empty"):
        adapt(teacher, None, shots=2, data=digits, policy=FAST, progress=False, unlabelled=images[:0])
    with pytest.raises(FewShotKDError, match="unlabelled must be"):
        adapt(teacher, None, shots=2, data=digits, policy=FAST, progress=False, unlabelled={"x": 1})
