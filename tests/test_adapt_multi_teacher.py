"""adapt(teachers=[...]) and ``--teacher A --teacher B``: two specialist digit teachers (classes
0-4 and 5-9) distilled into one 10-class student, the loss it trains with, and every class error."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from fewshot_kd import create_model, load_dataset
from fewshot_kd.adapt import adapt
from fewshot_kd.adapt.cli import main
from fewshot_kd.adapt.cli_args import shipped_policy
from fewshot_kd.adapt.policy import hand_set_for
from fewshot_kd.data.class_subset import class_subset
from fewshot_kd.distill import multi_teacher_kd_loss
from fewshot_kd.distill.objective import ObjectiveWeights, distillation_objective
from fewshot_kd.distill.teacher_union import TeacherUnion
from fewshot_kd.errors import BadInputError, ClassCountMismatchError
from fewshot_kd.prune.serialize import save_pruned
from fewshot_kd.training import TrainConfig, fit

LOW, HIGH = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
STEPS = 800  # measured (seeds 0 and 1, 5 shots): distilled 0.84 / 0.77, shots alone 0.67 / 0.69; union 0.88
NO_COMPRESSION = {"macs": None, "bits": None}


def _small_cnn(num_classes: int):
    return create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=num_classes)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def specialists(digits):
    """Two small CNNs, one trained on digits 0-4 only, one on 5-9 only (about 150 steps each)."""
    teachers = []
    for classes in (LOW, HIGH):
        torch.manual_seed(0)
        model = _small_cnn(5)
        fit(model, class_subset(digits.train, classes), TrainConfig(epochs=15, lr=5e-3), progress=False)
        teachers.append((model.eval(), classes))
    return teachers


def _adapt(digits, teachers, seed: int, alpha: float, steps: int = STEPS):
    torch.manual_seed(seed)
    policy = replace(hand_set_for(False), new_arch_steps=steps, alpha=alpha)
    return adapt(student=_small_cnn(10), teachers=teachers, data=digits, shots=5, target=NO_COMPRESSION,
                 policy=policy, seed=seed, progress=False)


@pytest.mark.slow
def test_two_specialists_teach_one_student_every_class_better_than_the_shots_alone(digits, specialists):
    distilled, alone = [], []
    for seed in (0, 1):
        result = _adapt(digits, specialists, seed, alpha=0.9)
        distilled.append(result.report["eval"]["test"]["student"]["accuracy"])
        alone.append(_adapt(digits, specialists, seed, alpha=0.0).report["eval"]["test"]["student"]["accuracy"])
    union = result.report["eval"]["test"]["teacher"]["accuracy"]
    mean = sum(distilled) / 2
    assert union > 0.8  # the two teachers together, over all ten classes (argmax of their mixture)
    assert mean > 0.65, distilled  # chance is 0.10
    assert mean - sum(alone) / 2 > 0.05, (distilled, alone)  # measured gap 0.12
    report = result.report
    assert report["student_kind"] == "new-architecture" and report["stages"]["distilled_layers"] == []
    mt = report["multi_teacher"]
    assert mt["loss"] == "multi_teacher_kd_loss" and mt["average"] == "probs" and mt["temperature"] == 4.0
    assert [t["classes"] for t in mt["teachers"]] == [list("01234"), list("56789")]
    assert all(t["params"] == sum(p.numel() for p in specialists[0][0].parameters()) for t in mt["teachers"])


def test_the_cached_target_is_the_mixture_and_the_objective_is_multi_teacher_kd(specialists, digits):
    union = TeacherUnion([m for m, _ in specialists], [c for _, c in specialists], 10, temperature=3.0)
    images, labels = digits.test.input_batch(slice(0, 16)), digits.test.labels[:16]
    with torch.no_grad():
        logits = union(images)
        placed = union.placed_logits(images)
    assert logits.shape == (16, 10) and torch.isfinite(logits).all()
    own = torch.softmax(specialists[0][0](images) / 3.0, -1)
    assert torch.allclose(torch.softmax(logits / 3.0, -1)[:, :5], own / 2, atol=1e-5)
    student = torch.randn(16, 10)
    ours, _ = distillation_objective(student, logits, labels, ObjectiveWeights(temperature=3.0, alpha=0.7))
    theirs = multi_teacher_kd_loss(student, placed, labels, temperature=3.0, alpha=0.7)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-4)


def test_classes_by_name_and_id_give_the_same_union(specialists, digits):
    by_name = [(specialists[0][0], [str(c) for c in LOW]), (specialists[1][0], HIGH)]
    result = _adapt(digits, by_name, seed=0, alpha=0.9, steps=2)
    assert result.report["multi_teacher"]["teachers"][0]["class_ids"] == LOW


@pytest.mark.parametrize("make, error, words", [
    (lambda a, b, wide: [(a, LOW), (wide, HIGH)], ClassCountMismatchError, "teacher 1 outputs 10 classes but is given 5"),
    (lambda a, b, wide: [(a, LOW), (b, [4, 5, 6, 7, 8])], ClassCountMismatchError, "given to teachers 0 and 1"),
    (lambda a, b, wide: [(a, LOW), (b, [5, 6, 7, 8, 8])], BadInputError, "lists a class twice"),
    (lambda a, b, wide: [(a, LOW)], ClassCountMismatchError, "come from no teacher"),
    (lambda a, b, wide: [(a, LOW), (b, [5, 6, 7, 8, 10])], ClassCountMismatchError, "is not a class of the data"),
    (lambda a, b, wide: [(a, LOW), (b, ["5", "6", "7", "8", "nine"])], ClassCountMismatchError, "'nine'"),
    (lambda a, b, wide: [a, b], BadInputError, r"teachers\[0\] must be \(nn.Module"),
    (lambda a, b, wide: [], BadInputError, "non-empty list"),
])
def test_every_class_mismatch_is_one_clear_error(specialists, digits, make, error, words):
    (a, _), (b, _) = specialists
    teachers = make(a, b, _small_cnn(10))
    with pytest.raises(error, match=words):
        adapt(student=_small_cnn(10), teachers=teachers, data=digits, shots=2, progress=False)


def test_several_teachers_need_a_student_module_a_hand_set_policy_and_no_teacher(specialists, digits):
    with pytest.raises(BadInputError, match="several teachers need a student module with one output per class"):
        adapt(teachers=specialists, data=digits, shots=2, progress=False)
    with pytest.raises(BadInputError, match="not both"):
        adapt(specialists[0][0], _small_cnn(10), teachers=specialists, data=digits, shots=2, progress=False)
    with pytest.raises(BadInputError, match="needs teacher=model"):
        adapt(student=_small_cnn(10), data=digits, shots=2, progress=False)
    with pytest.raises(BadInputError, match="meta-learned policy describes one teacher"):
        adapt(student=_small_cnn(10), teachers=specialists, data=digits, shots=2, progress=False,
              policy=shipped_policy("meta_default"))
    with pytest.raises(BadInputError, match="synthetic_inputs"):
        adapt(student=_small_cnn(10), teachers=specialists, data=digits, shots=2, progress=False,
              policy={"synthetic_inputs": 4})
    with pytest.raises(ClassCountMismatchError, match="the student outputs 5 classes"):
        adapt(student=_small_cnn(5), teachers=specialists, data=digits, shots=2, progress=False)


def _run(*argv: str) -> None:
    main([*argv, "--no-progress", "--device", "cpu"])


def test_the_command_line_with_two_teachers_end_to_end(specialists, tmp_path):
    files = [str(save_pruned(model, tmp_path / f"teacher_{k}.safetensors")) for k, (model, _) in enumerate(specialists)]
    out = tmp_path / "two"
    _run("--teacher", files[0], "--teacher-classes", "0,1,2,3,4", "--teacher", files[1], "--teacher-classes",
         "5,6,7,8,9", "--student", "small_cnn", "--data", "digits", "--shots", "2", "--steps", "3",
         "--target", "macs=none,bits=8", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["student_kind"] == "new-architecture" and report["policy"]["new_arch_steps"] == 3
    assert [t["class_ids"] for t in report["multi_teacher"]["teachers"]] == [LOW, HIGH]
    assert report["cli"]["teacher"] == files and report["cli"]["teacher_classes"] == ["0,1,2,3,4", "5,6,7,8,9"]
    assert (out / "student.int8.safetensors").is_file()


@pytest.mark.parametrize("extra, words", [
    (["--teacher-classes", "0,1,2,3,4"], "1 --teacher-classes for 2 --teacher"),
    (["--teacher-classes", "0,1,2,3,4", "--teacher-classes", "5,6,7,8,9"], "several --teacher need --student"),
    (["--student", "small_cnn"], "several --teacher need --teacher-classes"),
    (["--teacher-classes", "0,1,2,3,4", "--teacher-classes", "4,5,6,7,8", "--student", "small_cnn"],
     "given to teachers 0 and 1"),
])
def test_command_line_errors_for_several_teachers(specialists, tmp_path, extra, words):
    files = [str(save_pruned(model, tmp_path / f"teacher_{k}.safetensors")) for k, (model, _) in enumerate(specialists)]
    with pytest.raises(SystemExit, match=words):
        _run("--teacher", files[0], "--teacher", files[1], *extra, "--data", "digits", "--shots", "2", "--steps", "1",
             "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_one_teacher_with_a_named_student_on_the_command_line(specialists, tmp_path, digits):
    wide = _small_cnn(10)
    fit(wide, digits.train, TrainConfig(epochs=1, lr=5e-3), progress=False)
    teacher = str(save_pruned(wide.eval(), tmp_path / "teacher.safetensors"))
    out = tmp_path / "one"
    _run("--teacher", teacher, "--student", "tiny_cnn", "--data", "digits", "--shots", "2", "--steps", "2",
         "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["student_kind"] == "new-architecture" and report["policy"]["new_arch_steps"] == 2
    assert report["cli"]["teacher"] == teacher and "multi_teacher" not in report
