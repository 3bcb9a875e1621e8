"""adapt() with a file-size target: the derived student is pruned further until its file fits."""

import pytest

from fewshot_kd import Policy, Target, adapt
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.measure import saved_size_bytes

FAST = Policy(steps=10, views_per_shot=2, flip=False)


def test_size_ratio_prunes_past_the_macs_target_until_the_file_fits(teacher, digits, tmp_path):
    plain = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8}, policy=FAST, progress=False)
    ratio = 1.3 * plain.report["compression"]["bytes"]  # 30 % smaller than macs=0.5 alone gives
    result = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8, "size_ratio": ratio},
                   policy=FAST, export_dir=tmp_path, progress=False)
    r = result.report
    budget = int(saved_size_bytes(teacher) / ratio)
    assert r["student"]["bytes"] <= budget and r["compression"]["bytes"] >= ratio
    assert r["student"]["bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())  # measured on the files
    assert r["student"]["macs"] < plain.report["student"]["macs"]
    fit = r["decisions"]["size_fit"]
    assert fit["size_bytes"] == budget and fit["attempts"][0]["bytes"] > budget >= fit["attempts"][-1]["bytes"]
    assert fit["attempts"][-1]["bytes"] == r["student"]["bytes"]  # the trial export predicts the real one
    assert fit["attempts"][-1]["bytes"] > 0.8 * budget  # not pruned far past what was needed


def test_a_met_size_target_changes_nothing(teacher, digits):
    result = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8, "size_ratio": 1.5},
                   policy=FAST, progress=False)
    fit = result.report["decisions"]["size_fit"]
    assert len(fit["attempts"]) == 1 and fit["attempts"][0]["bytes"] == result.report["student"]["bytes"]
    assert result.report["decisions"]["macs_fraction"] <= 0.5


def test_budget_of_bytes_and_ratio_takes_the_smaller():
    assert Target(size_bytes=1000, size_ratio=4).size_budget(8000) == 1000
    assert Target(size_bytes=5000, size_ratio=4).size_budget(8000) == 2000
    assert Target().size_budget(8000) is None
    with pytest.raises(FewShotKDError, match="size_ratio"):
        Target(size_ratio=0.5)
    with pytest.raises(FewShotKDError, match="size_bytes"):
        Target(size_bytes=0)


def test_unreachable_size_is_a_clear_error(teacher, digits, tmp_path):
    with pytest.raises(FewShotKDError, match="could not fit|size"):
        adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5, "bits": 8, "size_bytes": 10}, policy=FAST,
              export_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_uniform_width_student_that_does_not_fit_is_pointed_to_mixed_bits():
    from fewshot_kd.adapt.size_fit import _mixed_hint

    assert "Policy(mixed_bits=(4, 5))" in _mixed_hint(5)
    assert _mixed_hint(4) == "" and _mixed_hint(None) == ""


def test_adapt_method_merges_a_target_option_over_the_task_target(teacher, digits, tmp_path):
    from benchmarks.methods.base import MethodInput, get_method

    inp = MethodInput(teacher=teacher, shots=digits.train.few_shot(2, seed=0), k=2, seed=0, make_student=None,
                      example_inputs=digits.test.input_batch(slice(0, 1)), workdir=tmp_path, augment="crop",
                      target={"macs": 0.5, "bits": 8}, progress=False,
                      options={"steps": 5, "views_per_shot": 2, "target": {"size_ratio": 9}})
    out = get_method("adapt")(inp)
    assert out.notes["compression"]["bytes"] >= 9 and out.notes["policy"]["steps"] == 5


def test_uneven_layer_ratios_meet_macs_and_size_together(teacher, digits):
    """Per-layer ratios (a meta-learned or random-search policy) move channel counts in coarse
    steps: the scaled ratios take the closest fit below the MACs budget instead of failing, and
    the size fit keeps the MACs bound (within derive's 2 % tolerance) while it prunes further."""
    from fewshot_kd.adapt.export import exported_bytes
    from fewshot_kd.adapt.size_fit import derive_to_size
    from fewshot_kd.meta.descriptors import find_groups
    from fewshot_kd.model_io import trainable_copy

    groups = [g.root for g in find_groups(trainable_copy(teacher), digits.test.input_batch(slice(0, 1)))]
    shots = digits.train.few_shot(2, seed=0)
    for ratio in (6, 8):
        target = Target(macs=0.35, bits=5, size_ratio=ratio)
        budget = target.size_budget(saved_size_bytes(teacher))
        for skew in ([0.1, 0.9, 0.3], [0.9, 0.1, 0.5], [0.05, 0.05, 0.95]):
            policy = Policy(per_layer_prune={g: skew[i % len(skew)] for i, g in enumerate(groups)}, flip=False)
            student, decisions = derive_to_size(teacher, shots, target, policy)
            assert decisions["macs_fraction"] <= 0.35 * 1.02
            assert exported_bytes(student, 5, {}) <= budget
