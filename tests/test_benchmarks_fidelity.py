"""The fidelity benchmark's bookkeeping: rank correlations, and a policy's decisions meet the budget."""

import pytest
import torch

from benchmarks.fidelity.policies import draw_policies, policy_decisions
from benchmarks.fidelity.report import correlations, record_invocation


def _cells(losses, accuracies, part="new"):
    deployed = [{"family": "f", "part": "deployed", "policy_index": i, "accuracy": a, "seconds": 1.0}
                for i, a in enumerate(accuracies)]
    scored = [{"family": "f", "part": part, "policy_index": i, "meta_loss": m, "seconds": 1.0}
              for i, m in enumerate(losses)]
    return deployed + scored


def test_lower_meta_loss_for_better_policies_is_a_correlation_of_one():
    (row,) = correlations(_cells([0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6]))
    assert row["spearman"] == 1.0 and row["loop"] == "new"
    (row,) = correlations(_cells([0.4, 0.3, 0.2, 0.1], [0.9, 0.8, 0.7, 0.6]))
    assert row["spearman"] == -1.0


def test_a_diverged_meta_loss_ranks_last():
    (row,) = correlations(_cells([0.1, 0.2, float("nan"), 0.3], [0.9, 0.8, 0.5, 0.7]))
    assert row["spearman"] == 1.0 and row["diverged"] == 1


def test_a_deployed_rerun_is_ranked_by_its_accuracy(tmp_path):
    cells = _cells([0.1] * 4, [0.9, 0.8, 0.7, 0.6])[:4] + [
        {"family": "f", "part": "deployed@1", "policy_index": i, "accuracy": a, "seconds": 1.0}
        for i, a in enumerate([0.85, 0.8, 0.75, 0.5])]
    (row,) = correlations(cells)
    assert row["loop"] == "deployed@1" and row["spearman"] == 1.0
    assert len(record_invocation(tmp_path, {"command": "a"})) == 1
    assert [i["command"] for i in record_invocation(tmp_path, {"command": "b"})] == ["a", "b"]


def test_policy_decisions_meet_the_macs_budget():
    from fewshot_kd import create_model
    from fewshot_kd.meta.descriptors import describe_model, model_structure

    model = create_model("small_cnn", in_channels=1, input_size=8, width=4, num_classes=10)
    x = torch.rand(4, 1, 8, 8)
    desc = describe_model(model, x[:1], x, [], structure=model_structure(model, x[:1]))
    policies = draw_policies(3, [g.root for g in desc.groups])
    assert policies[0].name == "hand-set" and policies[1] != policies[2]
    decisions = policy_decisions(policies[1].to_flat_dict(), desc, 0.5, base_lr=1e-3)
    assert float(decisions.macs_fraction) == pytest.approx(0.5, abs=1e-3)
    assert float(decisions.inner_lr_scale) == pytest.approx(policies[1].lr / 1e-3)
