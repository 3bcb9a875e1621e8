import pytest
import torch

from fewshot_kd import Policy, Target, adapt, create_model, load_student
from fewshot_kd.quant import dequantized_weights
from fewshot_kd.quant.export import folded_batchnorm
from fewshot_kd.errors import ClassCountMismatchError, FewShotKDError, NonFiniteLossError, NotEnoughExamplesError

FAST = Policy(steps=15, qat_steps=5, new_arch_steps=15, views_per_shot=2, flip=False, prune_importance="l1")


def test_derived_student_is_pruned_quantized_and_measured(teacher, digits, tmp_path):
    result = adapt(teacher, None, shots=5, data=digits, target={"macs": 0.5, "bits": 8}, policy=FAST,
                   export_dir=tmp_path, progress=False)
    r = result.report
    assert r["student_kind"] == "derived" and r["shots"] == 5
    assert r["student"]["macs"] <= 0.5 * r["teacher"]["macs"] * 1.05
    assert r["student"]["params"] < r["teacher"]["params"]
    assert result.artifact.is_file() and result.artifact.parent == tmp_path
    assert r["student"]["bytes"] == result.artifact.stat().st_size + (tmp_path / "student.arch.json").stat().st_size
    assert r["compression"]["bytes"] > 4  # int8 and half the MACs: well over 4x smaller than fp32
    assert set(r["eval"]) == {"test"} and 0.0 <= r["eval"]["test"]["student"]["accuracy"] <= 1.0
    assert all(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) or not hasattr(m, "weight_quant")
               for m in result.student.modules())  # a plain module came back
    stored = dequantized_weights(result.artifact)  # int8 codes x per-channel scales, from the file
    state = result.student.state_dict()
    folded = set(folded_batchnorm(result.artifact).values())  # these convs carry their BatchNorm
    assert folded and all(torch.equal(stored[k], state[k]) for k in stored if k.rsplit(".", 1)[0] not in folded)
    loaded = load_student(tmp_path)  # rebuilt from the registry and the two files
    x = digits.test.input_batch(slice(0, 64))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.student.eval()(x), rtol=1e-4, atol=1e-4)
    assert r["decisions"]["layers"] and r["adapt_seconds"] > 0
    result.save_report(tmp_path / "report.json")


def test_load_student_says_what_the_folder_lacks(tmp_path):
    with pytest.raises(FewShotKDError, match="student.arch.json is missing"):
        load_student(tmp_path)


def test_new_architecture_student(teacher, digits):
    student = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=10)
    result = adapt(teacher, student, shots=5, data=digits, target={"macs": None, "bits": None}, policy=FAST,
                   progress=False)
    assert result.report["student_kind"] == "new-architecture" and result.artifact is None
    assert result.report["student"]["weights"] == "fp32"


def test_bad_inputs_give_clear_errors(teacher, digits, tmp_path):
    with pytest.raises(NotEnoughExamplesError, match="shots"):
        adapt(teacher, None, shots=10_000, data=digits, policy=FAST, progress=False)
    wrong = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=3)
    with pytest.raises(ClassCountMismatchError, match="3 classes"):
        adapt(teacher, wrong, shots=2, data=digits, policy=FAST, progress=False)
    with pytest.raises(FewShotKDError, match="empty"):
        adapt(teacher, None, shots=1, data=(torch.zeros(0, 1, 8, 8), torch.zeros(0)), policy=FAST, progress=False)
    with pytest.raises(FewShotKDError, match="fraction"):
        adapt(teacher, None, shots=1, data=digits, target={"macs": 2.0}, policy=FAST, progress=False)
    small = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=10)
    with pytest.raises(FewShotKDError, match="over the target"):  # a given student is checked, not pruned
        adapt(teacher, small, shots=2, data=digits, target={"macs": None, "bits": 8, "size_bytes": 10}, policy=FAST,
              export_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_nan_loss_is_reported(teacher, digits):
    class NaNTeacher(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = teacher

        def forward(self, x):
            return self.inner(x) * float("nan")

    with pytest.raises(NonFiniteLossError):
        adapt(NaNTeacher(), create_model("small_cnn", in_channels=1, input_size=8, width=4), shots=2, data=digits,
              target={"macs": None, "bits": None}, policy=FAST, progress=False)


def test_policy_round_trips_through_json(tmp_path):
    policy = Policy(temperature=3.0, layer_weights=(1.0, 0.5))
    assert Policy.load(policy.save(tmp_path / "p.json")) == policy
    with pytest.raises(FewShotKDError, match="unknown keys"):
        Policy.from_dict({"temprature": 3})
    assert Target.parse({"macs": 0.25}).macs == 0.25
