import copy

import pytest
import torch
import torch.nn as nn

from fewshot_kd import Policy, adapt, create_model
from fewshot_kd.adapt.reconstruct import pruned_readers, reconstruct_, solve_layer_
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.prune import prune_


@pytest.mark.parametrize("layer", [
    nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=False),
    nn.Conv2d(4, 3, (3, 1), padding=(1, 0), dilation=(2, 1), bias=True),
    nn.Linear(6, 5),
])
def test_solve_recovers_a_reachable_layer_exactly(layer):
    """With ridge 0 and a target another layer of the same shape produced, the solve finds it."""
    source = copy.deepcopy(layer)
    for p in source.parameters():
        p.data.normal_()
    x = torch.randn(16, 4, 9, 9) if isinstance(layer, nn.Conv2d) else torch.randn(64, 6)
    with torch.no_grad():
        target = source(x)
    errors = solve_layer_(layer, x, target, ridge=0.0, max_rows=10**6, generator=torch.Generator().manual_seed(0))
    assert errors["before"] > 0.1 and errors["after"] < 1e-8
    torch.testing.assert_close(layer.weight, source.weight, rtol=1e-4, atol=1e-4)


def test_pruned_resnet_readers_are_the_second_convs_and_get_closer_to_the_teacher():
    torch.manual_seed(0)
    teacher = create_model("cifar_resnet20", num_classes=10).eval()
    x = torch.rand(48, 3, 32, 32)
    with torch.no_grad():  # give the BatchNorms real statistics so the features are not degenerate
        teacher.train()(x)
    teacher.eval()
    student = copy.deepcopy(teacher)
    prune_(student, x[:1], ratio=0.5, importance="l1")
    names = pruned_readers(teacher, student)
    assert names and all(n.endswith("conv2") for n in names)
    held_out = torch.rand(32, 3, 32, 32)
    with torch.no_grad():
        before = (student(held_out) - teacher(held_out)).pow(2).mean()
        done = reconstruct_(student, teacher, x, ridge=1e-3)
        after = (student(held_out) - teacher(held_out)).pow(2).mean()
    assert set(done.layers) == set(names) and done.images == 48
    assert all(e["after"] <= e["before"] for e in done.layers.values())
    assert after < before


def test_unpruned_student_is_left_alone(teacher):
    student = copy.deepcopy(teacher)
    assert pruned_readers(teacher, student) == []
    assert reconstruct_(student, teacher, torch.rand(4, 1, 8, 8)).layers == {}


class _SharedReader(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, hidden), nn.Linear(hidden, 3), nn.Linear(hidden, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(h) + self.b(2 * h) + self.c(h)  # b runs twice, c once


def test_a_layer_run_twice_per_forward_is_skipped():
    teacher, student = _SharedReader(4), _SharedReader(2)
    assert pruned_readers(teacher, student) == ["b", "c"]
    done = reconstruct_(student, teacher, torch.randn(32, 6))
    assert list(done.layers) == ["c"]


def test_adapt_reports_the_repair_when_asked_and_skips_it_by_default(teacher, digits):
    fast = dict(steps=5, views_per_shot=2, flip=False)
    on = adapt(teacher, None, shots=5, data=digits, target={"macs": 0.5}, policy=Policy(**fast, reconstruct_inputs=256),
               progress=False)
    repaired = on.report["stages"]["reconstruction"]
    assert repaired["layers"] and repaired["images"] == 100  # 5 shots x 10 classes x 2 views < 256
    off = adapt(teacher, None, shots=5, data=digits, target={"macs": 0.5}, policy=Policy(**fast), progress=False)
    assert "reconstruction" not in off.report["stages"]


def test_policy_rejects_bad_reconstruction_settings():
    with pytest.raises(FewShotKDError, match="reconstruct_inputs"):
        Policy(reconstruct_inputs=-1)
    with pytest.raises(FewShotKDError, match="reconstruct_ridge"):
        Policy(reconstruct_ridge=-0.1)
