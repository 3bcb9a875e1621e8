"""Mixup / cutmix views and DeepInversion synthetic inputs in adapt()."""

import pytest
import torch

from fewshot_kd import Policy, adapt
from fewshot_kd.adapt.deep_inversion import invert_teacher
from fewshot_kd.augment import cutmix, mixup
from fewshot_kd.errors import FewShotKDError

FAST = Policy(steps=10, views_per_shot=2, flip=False)


def test_mixup_blends_each_image_with_a_partner():
    images = torch.stack([torch.full((1, 4, 4), float(i)) for i in range(6)])
    mixed = mixup(images, alpha=1.0, seed=3)
    assert mixed.shape == images.shape and not torch.equal(mixed, images)
    values = mixed.flatten(1)
    assert torch.allclose(values, values[:, :1].expand_as(values))  # a uniform blend per image
    assert float(values.min()) >= 0 and float(values.max()) <= 5


def test_cutmix_pastes_a_box_from_a_partner():
    images = torch.stack([torch.full((1, 8, 8), float(i)) for i in range(8)])
    mixed = cutmix(images, alpha=1.0, seed=0)
    for i in range(8):
        own = (mixed[i] == i).float().mean()
        assert set(mixed[i].unique().tolist()) <= set(range(8)) and len(mixed[i].unique()) <= 2  # own pixels + one partner
        assert own > 0 or mixed[i].unique().numel() == 1
    assert not torch.equal(mixed, images)
    assert torch.equal(cutmix(images, seed=0), mixed)  # seeded


def test_deep_inversion_matches_batchnorm_statistics_and_classes(teacher, digits):
    reference = digits.train.input_batch(slice(0, 50))
    before = [p.requires_grad for p in teacher.parameters()]
    made = invert_teacher(teacher, reference, num_classes=10, count=40, steps=60, seed=0, progress=False)
    assert made.inputs.shape == (40, *reference.shape[1:]) and made.classes.tolist() == [i % 10 for i in range(40)]
    assert made.bn_loss[1] < 0.5 * made.bn_loss[0]  # the statistics moved towards the running ones
    assert made.teacher_agreement >= 0.9  # the teacher sees the intended classes
    assert [p.requires_grad for p in teacher.parameters()] == before  # the teacher is left as it was
    assert float(made.inputs.min()) >= float(reference.min()) and float(made.inputs.max()) <= float(reference.max())


def test_deep_inversion_needs_batchnorm(digits):
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(FewShotKDError, match="BatchNorm"):
        invert_teacher(plain, digits.train.input_batch(slice(0, 4)), 10, 4, steps=1, progress=False)


def test_adapt_adds_mixed_and_synthetic_views(teacher, digits):
    policy = Policy(steps=10, views_per_shot=2, flip=False, mix_views=3, mix="mixup", synthetic_inputs=20, synthetic_steps=20)
    result = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8}, policy=policy, progress=False)
    stages = result.report["stages"]
    assert stages["mixed_views"] == 3 * 20 and stages["synthetic_inputs"] == 20
    assert stages["views"] == 2 * 20 + 60 + 20
    # the teacher sees the intended class in most synthetic images (measured 0.80; chance is 0.10)
    assert stages["synthetic_teacher_agreement"] >= 0.5


def test_bad_mix_settings_are_refused():
    with pytest.raises(FewShotKDError, match="mix"):
        Policy(mix="blend")
    with pytest.raises(FewShotKDError, match="mix_alpha"):
        Policy(mix_alpha=0)
