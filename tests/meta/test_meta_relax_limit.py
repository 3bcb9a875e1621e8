"""The relaxation at its limit is the deployed operation: gates at sharpness -> 0 keep the
channels ``prune_`` keeps, and the relaxed quantizer gives the exported integer codes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

from fewshot_kd.adapt.export import quantize_for_export_
from fewshot_kd.meta.descriptors import find_groups, model_structure
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_params, quantize_weight
from fewshot_kd.models.catalog import create_model
from fewshot_kd.prune import channel_scores, prune_
from fewshot_kd.quant import export_quantized, minmax_weight_steps, quantize_weight_ste, read_quantized
from fewshot_kd.quant._packing import unpack_signed

SHARP = 1e-4


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm affine parameters and statistics, so every channel matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = _randomized(create_model("cifar_resnet20", num_classes=10))
    x = torch.rand(4, 3, 32, 32)
    return model, x, find_groups(model, x[:1]), channel_scores(model, x[:1])


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(1)
    model = _randomized(create_model("small_cnn", in_channels=1, input_size=8, width=4))
    x = torch.rand(4, 1, 8, 8)
    structure = model_structure(model, x[:1])
    return model, x, structure.groups, structure.scores


def _gate(params, group, ranks, ratio):
    gated = gate_params(params, [group], torch.tensor([ratio]), [ranks], sharpness=SHARP)
    key = f"{group.gated[0][0]}.weight"
    return gated, (gated[key] / params[key]).reshape(group.channels, -1)[:, 0]


def _assert_same_outputs(gated: torch.Tensor, pruned: torch.Tensor) -> None:
    """Equal to 1e-5 of the outputs' scale (random weights give logits in the tens)."""
    scale = pruned.detach().abs().max().clamp_min(1.0)
    torch.testing.assert_close(gated.detach() / scale, pruned.detach() / scale, rtol=0, atol=1e-5)


def _kept_rows(original: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    """Indices of ``original``'s rows that survive in ``pruned`` (rows are matched exactly)."""
    flat = original.reshape(original.shape[0], -1)
    return [int((flat == row).all(1).nonzero()) for row in pruned.reshape(pruned.shape[0], -1)]


# ratios with r * n an integer, then two with r * n = 4.8 and 5.28 on 16 channels (ceil: 5, 6)
@pytest.mark.parametrize("ratios", [(0.25, 0.5, 0.75), (0.3, 0.33)])
@pytest.mark.parametrize("which", ["resnet", "cnn"])
def test_hard_gates_keep_the_channels_prune_keeps(which, ratios, request):
    model, x, groups, scores = request.getfixturevalue(which)
    params = dict(model.named_parameters())
    if ratios[0] == 0.3:
        groups = [g for g in groups if g.channels == 16][:2]
    elif which == "resnet":
        groups = groups[::3]  # one group per stage: 16, 32, 64 channels
    cases = [(g, ratios[i % len(ratios)]) for i, g in enumerate(groups)]
    assert cases
    for group, ratio in cases:
        ranks = channel_quantiles(params, [group], scores)[0]
        gated, gate = _gate(params, group, ranks, ratio)
        assert torch.all((gate == 0) | (gate == 1)), group.root
        pruned = copy.deepcopy(model)
        prune_(pruned, x[:1], ratio=0.0, per_layer={group.root: ratio})
        root = dict(pruned.named_modules())[group.root].weight
        kept = _kept_rows(params[f"{group.root}.weight"], root)
        assert sorted(kept) == gate.nonzero().flatten().tolist(), (group.root, ratio)
        assert group.channels - len(kept) == -int(-ratio * group.channels // 1)  # ceil(r n) removed
        _assert_same_outputs(functional_call(model, gated, (x,)), pruned(x))


def test_all_groups_at_once_match_prune(resnet):
    model, x, groups, scores = resnet
    params = dict(model.named_parameters())
    ratios = torch.tensor([(0.25, 0.5, 0.75)[i % 3] for i in range(len(groups))])
    gated = gate_params(params, groups, ratios, channel_quantiles(params, groups, scores), sharpness=SHARP)
    pruned = copy.deepcopy(model)
    prune_(pruned, x[:1], ratio=0.0, per_layer={g.root: float(r) for g, r in zip(groups, ratios)})
    _assert_same_outputs(functional_call(model, gated, (x,)), pruned(x))


def test_group_scores_differ_from_the_root_l1_ranking(resnet):
    """The coupled slices change the ranking, so the old root-only ranking was not prune_'s."""
    model, _, groups, scores = resnet
    params = dict(model.named_parameters())
    by_group = channel_quantiles(params, groups, scores)
    by_root = channel_quantiles(params, groups)
    assert any(((a < 8) != (b < 8)).any() for a, b in zip(by_group, by_root))


def _exported_codes(model, bits, tmp_path, per_layer_bits=None, fold=True):
    deployed = quantize_for_export_(copy.deepcopy(model), bits, per_layer_bits or {})
    tensors, layers = read_quantized(export_quantized(deployed, tmp_path / f"w{bits}.safetensors", fold_batchnorm=fold))
    codes = {name: unpack_signed(tensors[f"{name}.weight.codes"], info["weight_bits"],
                                 torch.Size(info["shape"]).numel()).reshape(info["shape"])
             for name, info in layers.items()}
    return codes, tensors


def _relaxed_codes(weight, quantized, bits):
    step = minmax_weight_steps(weight, bits).view([-1] + [1] * (weight.dim() - 1))
    return torch.round(quantized / step).to(torch.int32)


@pytest.mark.parametrize("bits", [8, 4])
def test_relaxed_quantizer_gives_the_exported_codes(resnet, bits, tmp_path):
    model = resnet[0]
    params = dict(model.named_parameters())
    codes, _ = _exported_codes(model, bits, tmp_path)
    _, scales = _exported_codes(model, bits, tmp_path, fold=False)
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert sorted(codes) == sorted(layers)
    for name in layers:
        w = params[f"{name}.weight"]
        torch.testing.assert_close(scales[f"{name}.weight.scale"], minmax_weight_steps(w, bits), rtol=0, atol=0)
        assert torch.equal(_relaxed_codes(w, quantize_weight(w, bits), bits), codes[name]), name


def test_mixed_bits_match_the_per_layer_export(resnet, tmp_path):
    model = resnet[0]
    params = dict(model.named_parameters())
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    p8 = torch.tensor([float(i % 2) for i in range(len(layers))])
    bits = {n: 8 if p else 4 for n, p in zip(layers, p8.tolist())}
    codes, _ = _exported_codes(model, 8, tmp_path, bits)
    relaxed = quantize_params(params, layers, p8)
    for name in layers:
        code = _relaxed_codes(params[f"{name}.weight"], relaxed[f"{name}.weight"], bits[name])
        assert torch.equal(code, codes[name]), name


def test_quantizer_has_a_straight_through_gradient_under_torch_func():
    w = torch.randn(6, 3, 3, 3)
    grad = torch.func.grad(lambda v: quantize_weight_ste(v, 4).pow(2).sum())(w)
    torch.testing.assert_close(grad, 2 * quantize_weight_ste(w, 4))
    w.requires_grad_(True)
    (g,) = torch.autograd.grad(quantize_weight_ste(w, 4).pow(2).sum(), w, create_graph=True)
    g.sum().backward()
    torch.testing.assert_close(w.grad, torch.full_like(w, 2.0))
