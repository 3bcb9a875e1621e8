"""Progressive grafting: which student blocks stand in for the teacher's, the hybrid network,
and adapt(schedule="graft")."""

import pytest
import torch

from fewshot_kd import Policy, adapt, create_model
from fewshot_kd.data.dataset import LabelledDataset
from fewshot_kd.distill.graft import GraftUnit, Hybrid, graft_units, stage_groups
from fewshot_kd.errors import FewShotKDError, UnsupportedLayerError
from fewshot_kd.prune import prune_


def _resnet_pair():
    torch.manual_seed(0)
    teacher = create_model("cifar_resnet20", num_classes=4).eval()
    student = create_model("cifar_resnet20", num_classes=4)
    student.load_state_dict(teacher.state_dict())
    prune_(student, torch.randn(1, 3, 32, 32), target_macs=0.5 * _macs(teacher))
    return teacher, student.eval()


def _macs(model):
    from fewshot_kd.measure import count_macs

    return count_macs(model, torch.randn(1, 3, 32, 32))


def test_a_derived_resnets_blocks_are_units_in_forward_order():
    teacher, student = _resnet_pair()
    units = graft_units(teacher, student, torch.randn(1, 3, 32, 32))
    assert [u.name for u in units] == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert all(u.teacher_span == (u.student_index,) for u in units)
    assert [len(g) for g in stage_groups(units, 3)] == [3, 3, 3]
    assert [len(g) for g in stage_groups(units, 4)] == [2, 2, 3, 2]
    assert len(stage_groups(units, 20)) == 9


def test_the_hybrid_is_the_teacher_until_grafted_and_the_student_after():
    teacher, student = _resnet_pair()
    x = torch.randn(6, 3, 32, 32)
    units = graft_units(teacher, student, x[:1])
    with torch.no_grad():
        assert torch.allclose(Hybrid(teacher, student, units).eval()(x), student(x), atol=1e-5)
        first = Hybrid(teacher, student, units[:1]).eval()
        assert not torch.allclose(first(x), teacher(x), atol=1e-3)  # a pruned block changed the output
        assert first.net.layer1[0] is student.layer1[0] and first.net.layer1[1] is not teacher.layer1[1]
    first.train()
    assert student.layer1[0].training and not first.net.bn1.training and not first.net.layer2[0].training
    assert all(not p.requires_grad for n, p in first.net.named_parameters() if not n.startswith("layer1.0."))
    assert all(p.requires_grad for p in student.layer1[0].parameters())
    assert all(p.requires_grad for p in teacher.parameters())  # the teacher itself is untouched


def test_a_truncated_text_students_layers_cover_the_teachers():
    pytest.importorskip("transformers")
    from fewshot_kd.models.text import truncate_layers

    torch.manual_seed(0)
    teacher = create_model("tiny_transformer", num_classes=2, num_layers=4, hidden_size=32, intermediate_size=64).eval()
    student = truncate_layers(teacher, "last 2").eval()
    example = teacher.tokenize(["a film", "the film was good"])
    units = graft_units(teacher, student, example, kept_layers=[2, 3])
    assert [u.teacher_span for u in units] == [(0, 1, 2), (3,)]
    assert [u.teacher_span for u in graft_units(teacher, truncate_layers(teacher, "first 2"), example, [0, 1])] == \
        [(0,), (1, 2, 3)]
    with torch.no_grad():
        assert torch.allclose(Hybrid(teacher, student, units).eval()(example), student(example), atol=1e-5)
        assert torch.allclose(Hybrid(teacher, student, units[1:]).eval()(example), teacher(example), atol=1e-5)
    with pytest.raises(UnsupportedLayerError, match="kept_layers"):
        graft_units(teacher, student, example)


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.3 + labels.view(-1, 1, 1, 1) * 0.4
    return LabelledDataset(x, labels, ("a", "b", "c", "d"), name="toy")


def test_adapt_grafts_then_finishes_end_to_end():
    torch.manual_seed(0)
    teacher = create_model("cifar_resnet20", num_classes=4).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    policy = Policy(name="graft", steps=12, views_per_shot=2, schedule="graft", graft_stages=3, graft_share=0.5)
    result = adapt(teacher, None, shots=3, data=_images(40, 0), target={"macs": 0.5, "bits": 8}, policy=policy,
                   progress=False)
    graft = result.report["decisions"]["graft"]
    assert graft["stages"] == [[f"layer{s}.{b}" for b in range(3)] for s in (1, 2, 3)]
    assert graft["steps_per_stage"] == 2 and graft["end_to_end_steps"] == 6
    stages = [e["stage"] for e in result.history if "stage" in e and not e["stage"].startswith("qat")]
    assert stages == ["graft 1"] * 2 + ["graft 2"] * 2 + ["graft 3"] * 2 + ["end to end"] * 6
    steps = [e["step"] for e in result.history if e.get("stage") in {"graft 1", "graft 2", "graft 3", "end to end"}]
    assert steps == list(range(1, 13))
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())  # grafting trained copies only


def test_graft_needs_blocks_that_stand_in_for_the_teachers():
    teacher = create_model("small_cnn", num_classes=4, width=4).eval()
    with pytest.raises(UnsupportedLayerError, match="schedule='one_shot'"):
        adapt(teacher, None, shots=3, data=_images(40, 0), target={"macs": 0.5, "bits": 8},
              policy=Policy(steps=2, views_per_shot=1, schedule="graft"), progress=False)


@pytest.mark.parametrize("bad, match", [({"schedule": "slow"}, "schedule must be one of"),
                                        ({"graft_share": 1.0}, "strictly between"),
                                        ({"graft_share": 0}, "strictly between"),
                                        ({"graft_stages": 0}, "graft_stages must be at least 1")])
def test_bad_graft_settings_are_refused(bad, match):
    with pytest.raises(FewShotKDError, match=match):
        Policy(**bad)
    assert Policy.from_dict(Policy(schedule="graft").to_dict()).schedule == "graft"
    assert GraftUnit("layer1", 0, (0,)).name == "layer1.0"


def test_pruning_rounds_ramp_the_macs_down_to_the_one_shot_students():
    from fewshot_kd.adapt.stages.ramp import round_steps

    assert round_steps(10, 3) == [3, 3, 4] and round_steps(2, 3) == [0, 1, 1] and sum(round_steps(300, 4)) == 300
    torch.manual_seed(0)
    teacher = create_model("cifar_resnet20", num_classes=4).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    data, target = _images(40, 0), {"macs": 0.5, "bits": 8, "size_ratio": 6}
    fast = dict(steps=9, views_per_shot=2)
    once = adapt(teacher, None, shots=3, data=data, target=target, policy=Policy(**fast), progress=False)
    ramped = adapt(teacher, None, shots=3, data=data, target=target, policy=Policy(prune_rounds=3, **fast),
                   progress=False)
    ramp = ramped.report["decisions"]["ramp"]
    fractions = [r["macs_fraction"] for r in ramp["rounds"]]
    goal = once.report["decisions"]["macs_fraction"]
    assert fractions[0] > fractions[1] > fractions[2] and abs(fractions[2] - goal) < 0.05
    assert abs(fractions[0] - (1 - (1 - goal) / 3)) < 0.05
    assert [r["steps"] for r in ramp["rounds"]] == [3, 3, 3]
    assert ramped.report["decisions"]["macs_fraction"] == fractions[2]
    assert ramped.report["decisions"]["prune"]["channels"] == ramp["channels"] and ramp["channels"]
    assert ramped.report["compression"]["bytes"] >= 6  # the same file budget as the one-shot student
    assert [e["stage"] for e in ramped.history if e.get("stage", "").startswith("round")] == \
        ["round 1"] * 3 + ["round 2"] * 3 + ["round 3"] * 3
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    with pytest.raises(FewShotKDError, match="choose one"):
        adapt(teacher, None, shots=3, data=data, target=target, progress=False,
              policy=Policy(prune_rounds=2, schedule="graft", **fast))
