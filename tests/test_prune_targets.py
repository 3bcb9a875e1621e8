"""MACs counting, ratio arithmetic and the budget search (fewshot_kd.prune.targets)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fewshot_kd.prune import PruneTargetError, count_macs, count_macs_params, n_keep, search_ratio
from fewshot_kd.prune.targets import layer_ratios, resolve_budget


def test_macs_of_conv_and_linear_are_counted_for_the_batch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    expected = 3 * 4 * 9 * 25 + 100 * 2
    assert count_macs(model, torch.rand(1, 3, 5, 5)) == expected
    assert count_macs(model, torch.rand(7, 3, 5, 5)) == 7 * expected
    assert count_macs_params(model, torch.rand(1, 3, 5, 5)) == (expected, 108 + 202)


def test_counting_restores_training_mode():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).train()
    count_macs(model, torch.rand(4, 3))
    assert model.training


def test_bert_macs_include_attention():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                     num_hidden_layers=2, vocab_size=100, max_position_embeddings=32)
    model = transformers.BertModel(config).eval()
    t, h, i = 16, 64, 128
    per_layer = t * (4 * h * h + 2 * h * i) + 2 * t * t * h  # projections, FFN, QK^T and AV
    expected = 2 * per_layer + h * h  # + the pooler on the first token
    assert count_macs(model, {"input_ids": torch.randint(0, 100, (1, t))}) == expected


@pytest.mark.parametrize(
    "total, ratio, round_to, kept",
    [(16, 0.5, None, 8), (16, 0.3, None, 11), (16, 0.3, 4, 8), (3, 0.9, None, 1), (6, 0.9, 4, 4), (10, 0.0, None, 10)],
)
def test_n_keep(total, ratio, round_to, kept):
    assert n_keep(total, ratio, round_to) == kept


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, "half", True])
def test_n_keep_rejects_bad_ratios(bad):
    with pytest.raises(ValueError, match="fraction"):
        n_keep(8, bad)


def test_budget_fraction_or_count():
    assert resolve_budget(0.25, 1000, "MACs") == 250
    assert resolve_budget(400, 1000, "MACs") == 400
    with pytest.raises(ValueError):
        resolve_budget(0, 1000, "MACs")


def test_search_finds_the_ratio_of_a_smooth_budget():
    calls = []

    def measure(r: float) -> int:
        calls.append(r)
        return int(10_000 * (1 - r) ** 2)

    ratio, value = search_ratio(measure, 2_500, tolerance=0.01)
    assert abs(value - 2_500) <= 25 and abs(ratio - 0.5) < 0.01
    assert len(calls) < 20


def test_search_reports_unreachable_and_coarse_budgets():
    with pytest.raises(PruneTargetError, match="cannot reach .* leaves 100"):
        search_ratio(lambda r: 1000 if r < 0.9 else 100, 10)
    step = lambda r: 1000 if r < 0.5 else 400  # noqa: E731 - jumps over the target
    with pytest.raises(PruneTargetError, match="closest below is 400"):
        search_ratio(step, 700, tolerance=0.01)


def test_search_brackets_below_a_max_ratio_where_the_pruner_skips_layers():
    # a pruner leaves a layer whole when the ratio would cut it to nothing (narrow layers, round_to)
    skips = lambda r: 1000 if r > 0.85 else int(1000 * (1 - r))  # noqa: E731
    ratio, value = search_ratio(skips, 300, tolerance=0.01)
    assert abs(value - 300) <= 3 and ratio < 0.85


def test_layer_ratios_resolve_names_containers_and_callables():
    model = nn.Sequential(nn.Linear(2, 4), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    ratios = layer_ratios(model, {"0": 0.5, "1": 0.25}, (nn.Linear,))
    assert ratios == {model[0]: 0.5, model[1]: 0.25}
    ratios = layer_ratios(model, lambda name, m: 0.1 if name.startswith("1.") else None, (nn.Linear,))
    assert ratios == {model[1][0]: 0.1, model[1][1]: 0.1}
    with pytest.raises(ValueError, match="per_layer"):
        layer_ratios(model, {"0": 1.0}, (nn.Linear,))
