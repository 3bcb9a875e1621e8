"""The meta-learned policy as adapt() sees it: decisions within budget, files that round-trip,
and one call signature with the hand-set policy."""

from __future__ import annotations

import json

import pytest
import torch

import fewshot_kd
from fewshot_kd.adapt import HAND_SET, Target
from fewshot_kd.errors import FewShotKDError
from fewshot_kd.meta import MetaPolicy, PolicyNet
from fewshot_kd.meta.meta_policy import allocate_bits
from fewshot_kd.models.catalog import create_model

FAST = {"steps": 20, "views_per_shot": 2}


@pytest.fixture(scope="module")
def digits():
    return fewshot_kd.load_dataset("digits")


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_model("small_cnn", in_channels=1, input_size=8, width=4).eval()


def _random_policy(seed: int = 1) -> MetaPolicy:
    torch.manual_seed(seed)
    net = PolicyNet()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return MetaPolicy(net, base=HAND_SET.__class__(**{**HAND_SET.to_dict(), **FAST}))


def test_untrained_policy_is_the_hand_set_recipe(digits, teacher):
    policy, info = MetaPolicy(PolicyNet()).decide(teacher, digits.train.few_shot(5), Target.parse({"macs": 0.5, "bits": 8}))
    assert policy.temperature == pytest.approx(HAND_SET.temperature, abs=1e-3)
    assert policy.alpha == pytest.approx(HAND_SET.alpha, abs=1e-3)
    assert policy.feature_weight == pytest.approx(HAND_SET.feature_weight, abs=1e-3)
    assert len(set(policy.per_layer_prune.values())) == 1  # uniform before meta-training
    assert info["predicted_macs_fraction"] == pytest.approx(0.5, abs=1e-3)


def test_adapt_with_a_meta_policy_meets_the_budget(digits, teacher, tmp_path):
    from fewshot_kd.adapt.api import _policy

    meta = _random_policy()
    meta.save(tmp_path)
    assert isinstance(_policy(str(tmp_path), False), MetaPolicy)  # a policy folder is read as a meta policy
    result = fewshot_kd.adapt(teacher, None, shots=5, data=digits, target={"macs": 0.5, "bits": 6},
                              policy=meta, progress=False)
    report = result.report
    assert report["policy"]["name"] == "meta-learned"
    assert len(set(report["policy"]["per_layer_prune"].values())) > 1  # per-layer, not uniform
    assert report["decisions"]["macs_fraction"] == pytest.approx(0.5, abs=0.02)
    bits = [entry["bits"] for entry in report["decisions"]["layers"].values()]
    assert set(bits) <= {4, 8}
    modules = dict(result.student.named_modules())
    weights = {n: modules[n].weight.numel() for n in report["decisions"]["layers"]}
    average = sum(report["decisions"]["layers"][n]["bits"] * w for n, w in weights.items()) / sum(weights.values())
    assert average <= 6.0 + 1e-6
    assert report["meta_policy"]["trained_on"] == []


def test_saved_policy_round_trips_to_identical_decisions(digits, teacher, tmp_path):
    meta = _random_policy(3)
    meta.save(tmp_path)
    shots, target = digits.train.few_shot(5), Target.parse({"macs": 0.6, "bits": 8})
    a, _ = meta.decide(teacher, shots, target)
    loaded = MetaPolicy.load(tmp_path)
    assert loaded.base == meta.base != HAND_SET  # the base recipe comes back, not the default
    b, _ = loaded.decide(teacher, shots, target)
    assert a.to_dict() == b.to_dict()


def test_bit_allocation_respects_the_average():
    bits = allocate_bits([0.9, 0.1, 0.8, 0.2], [100, 100, 300, 500], average=6.0)
    assert sum(b * p for b, p in zip(bits, [100, 100, 300, 500])) / 1000 <= 6.0
    assert bits[2] == 8 and bits[3] == 4
    assert allocate_bits([0.1, 0.1], [1, 1], average=8) == [8, 8]


def test_a_file_that_is_not_a_meta_policy_is_refused(tmp_path):
    (tmp_path / "policy.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(FewShotKDError, match="not a meta-learned policy"):
        MetaPolicy.load(tmp_path)
    with pytest.raises(FewShotKDError, match="meta_train"):
        MetaPolicy.load(tmp_path / "missing")


def test_the_learned_stop_fraction_sets_the_steps_adapt_runs(digits, teacher, tmp_path):
    meta = _random_policy(5)
    with torch.no_grad():
        meta.net.stop_head.bias.fill_(0.0)  # stop fraction 0.25 + 0.75 / 2
    policy, info = meta.decide(teacher, digits.train.few_shot(5), Target.parse({"macs": 0.5, "bits": 8}))
    assert 0.25 <= info["stop_fraction"] <= 1.0
    assert policy.steps == max(1, -(-round(info["stop_fraction"] * FAST["steps"], 6) // 1)) < FAST["steps"]
    assert policy.new_arch_steps < HAND_SET.new_arch_steps


def test_a_policy_file_from_before_the_stop_head_runs_every_step(digits, teacher, tmp_path):
    from safetensors.torch import load_file, save_file

    meta = _random_policy(6)
    with torch.no_grad():
        meta.net.stop_head.bias.fill_(-3.0)
    meta.save(tmp_path)
    state = load_file(tmp_path / "policy.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("stop_head.")}, tmp_path / "policy.safetensors")
    loaded = MetaPolicy.load(tmp_path)
    assert not loaded.learned_stop
    policy, info = loaded.decide(teacher, digits.train.few_shot(5), Target.parse({"macs": 0.5, "bits": 8}))
    assert policy.steps == FAST["steps"] and info["stop_fraction"] is None
    save_file({**state, "extra.weight": torch.zeros(1)}, tmp_path / "policy.safetensors")
    with pytest.raises(FewShotKDError, match="(?i)unexpected"):
        MetaPolicy.load(tmp_path)
