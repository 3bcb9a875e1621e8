"""Policy options for speed: channels-last training and pruned channel counts rounded to a multiple."""

from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from fewshot_kd import Policy, adapt
from fewshot_kd.errors import FewShotKDError

FAST = Policy(steps=10, views_per_shot=2, flip=False, qat_steps=0)


def test_channels_last_trains_the_same_student_and_hands_it_back_contiguous(teacher, digits):
    results = [adapt(teacher, None, shots=2, data=digits, target={"macs": 0.5}, policy=replace(FAST, channels_last=cl),
                     progress=False, seed=1) for cl in (False, True)]
    plain, fast = (dict(r.student.state_dict()) for r in results)
    assert plain.keys() == fast.keys()
    for name, tensor in fast.items():
        assert tensor.is_contiguous(), name  # saved and exported in the default memory format
        # Only the kernels' rounding differs; Adam can turn a rounding-sized gradient on a near-zero
        # parameter into a step of up to lr (1e-3), so the absolute tolerance is one such step.
        torch.testing.assert_close(tensor, plain[name], rtol=1e-2, atol=1e-3)
    convs = [m for m in results[1].student.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous() for m in convs)


def test_round_to_keeps_pruned_channel_counts_at_multiples(teacher, digits):
    result = adapt(teacher, None, shots=2, data=digits, target={"macs": 0.4}, policy=replace(FAST, prune_round_to=4),
                   progress=False)
    channels = result.report["decisions"]["prune"]["channels"]
    pruned = {name: after for name, (before, after) in channels.items() if after != before}
    assert pruned and all(after % 4 == 0 for after in pruned.values()), channels
    assert result.report["decisions"]["macs_fraction"] <= 0.4 * 1.02


@pytest.mark.parametrize("value", [0, -8, 2.5, True])
def test_round_to_must_be_a_positive_int(value):
    with pytest.raises(FewShotKDError, match="prune_round_to must be a positive int"):
        Policy(prune_round_to=value)
