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


def test_adapt_method_merges_a_target_option_over_the_task_target(teacher, digits, tmp_path):
    from benchmarks.methods.base import MethodInput, get_method

    inp = MethodInput(teacher=teacher, shots=digits.train.few_shot(2, seed=0), k=2, seed=0, make_student=None,
                      example_inputs=digits.test.input_batch(slice(0, 1)), workdir=tmp_path, augment="crop",
                      target={"macs": 0.5, "bits": 8}, progress=False,
                      options={"steps": 5, "views_per_shot": 2, "target": {"size_ratio": 9}})
    out = get_method("adapt")(inp)
    assert out.notes["compression"]["bytes"] >= 9 and out.notes["policy"]["steps"] == 5
