"""Relaxed pruning and bit widths: the gates, the MACs model and the budget projection."""

from __future__ import annotations

import copy

import pytest
import torch

from fewshot_kd.measure import count_macs
from fewshot_kd.meta.descriptors import describe_model, model_structure
from fewshot_kd.meta.relax import channel_quantiles, gate_params, project_ratios, quantize_weight
from fewshot_kd.models.catalog import create_model
from fewshot_kd.prune import prune_


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = create_model("small_cnn", in_channels=1, input_size=8, width=4).eval()
    x = torch.rand(16, 1, 8, 8)
    structure = model_structure(model, x[:1])
    return model, x, describe_model(model, x[:1], x, structure=structure), structure


def test_gates_switch_off_the_least_important_channels(cnn):
    model, _, desc, structure = cnn
    params = dict(model.named_parameters())
    group = desc.groups[1]
    ranks = channel_quantiles(params, [group], structure.scores)[0]
    ratios = torch.tensor([0.5])
    gated = gate_params(params, [group], ratios, [ranks], sharpness=0.05)
    module, _ = group.gated[0]
    gate = gated[f"{module}.weight"] / params[f"{module}.weight"]
    off = gate < 0.5
    assert int(off.sum()) == group.channels // 2
    scores = structure.scores[group.root]
    assert torch.all(scores[off] < scores[~off].min())  # exactly the lowest-scoring channels
    untouched = gate_params(params, [group], torch.tensor([0.0]), [ranks], sharpness=0.05)
    torch.testing.assert_close(untouched[f"{module}.weight"], params[f"{module}.weight"], rtol=1e-3, atol=1e-4)


def test_gate_has_a_gradient_with_respect_to_the_ratio(cnn):
    model, _, desc, _ = cnn
    params = dict(model.named_parameters())
    ratio = torch.tensor([0.4], requires_grad=True)
    gated = gate_params(params, desc.groups[:1], ratio, channel_quantiles(params, desc.groups[:1]))
    module, _ = desc.groups[0].gated[0]
    gated[f"{module}.weight"].sum().backward()
    assert ratio.grad is not None and ratio.grad.abs() > 0


def test_macs_model_matches_physical_pruning(cnn):
    model, x, desc, _ = cnn
    ratios = torch.tensor([0.25, 0.5, 0.5, 0.75, 0.5][: len(desc.groups)])
    pruned = copy.deepcopy(model)
    for p in pruned.parameters():
        p.requires_grad_(True)
    prune_(pruned, x[:1], ratio=0.0, per_layer={g.root: float(r) for g, r in zip(desc.groups, ratios)})
    measured = count_macs(pruned, x[:1]) / count_macs(model, x[:1])
    assert float(desc.macs_fraction(ratios)) == pytest.approx(measured, abs=0.03)


def test_projection_meets_the_budget_and_passes_implicit_gradients(cnn):
    _, _, desc, _ = cnn
    prefs = torch.tensor([0.3, -0.2, 0.1, 0.5, -1.0][: len(desc.groups)], requires_grad=True)
    ratios = project_ratios(prefs, desc.macs_fraction, 0.5)
    assert desc.macs_fraction(ratios).item() == pytest.approx(0.5, abs=1e-3)
    # moving one preference shifts budget between groups: total MACs stay on target
    (ratios[0] - ratios[1]).backward()
    eps = 1e-3
    bumped = prefs.detach().clone()
    bumped[0] += eps
    r2 = project_ratios(bumped, desc.macs_fraction, 0.5)
    numeric = ((r2[0] - r2[1]) - (ratios[0] - ratios[1]).detach()) / eps
    assert prefs.grad[0].item() == pytest.approx(numeric.item(), rel=0.05, abs=1e-3)


def test_fake_quantization_error_is_within_half_a_step():
    w = torch.randn(8, 3, 3, 3)
    for bits in (4, 8):
        q = quantize_weight(w, bits)
        qmax = 2 ** (bits - 1) - 1
        step = (w.reshape(8, -1).abs().amax(1) / qmax).view(8, 1, 1, 1)
        assert torch.all((q - w).abs() <= step / 2 + 1e-6)
        codes = q / step  # every value is an integer multiple of its channel's step, within the grid
        torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-4)
        assert torch.all(codes.round().abs().amax((1, 2, 3)) == qmax)  # max |w_c| maps onto the grid's end
    w.requires_grad_(True)
    quantize_weight(w, 4).sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w))  # straight-through
