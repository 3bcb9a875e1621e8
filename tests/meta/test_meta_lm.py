"""Causal-LM meta-training episodes: GPT-2 blocks as the learned layer choice, its Conv1D
projections as described layers, head and FFN gates that equal physical pruning, per-column
quantization, token episodes (K labelled + unlabelled sequences, query next tokens) and a
meta-loss whose gradient reaches the policy; a meta policy applied by adapt(). Tiny random GPT-2s."""

from __future__ import annotations

import copy
import math

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.data.tinyshakespeare import corpus_by_position  # noqa: E402
from fewshot_kd.distill.objective import UNLABELLED  # noqa: E402
from fewshot_kd.meta.descriptors import describe_model, model_structure  # noqa: E402
from fewshot_kd.meta.episodes import EpisodeSpec, make_episode  # noqa: E402
from fewshot_kd.meta.meta_policy import MetaPolicy  # noqa: E402
from fewshot_kd.meta.policy_net import PolicyNet  # noqa: E402
from fewshot_kd.meta.relax import channel_quantiles, gate_params, quantize_layer_weight  # noqa: E402
from fewshot_kd.meta.token_episodes import TokenRows, make_token_family, token_pools  # noqa: E402
from fewshot_kd.models._text_layers import encoder_layers, keep_layers_  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402
from fewshot_kd.prune.gpt2 import find_gpt2_layers  # noqa: E402
from fewshot_kd.quant import quantize_model_  # noqa: E402
from fewshot_kd.task_family import TaskFamily  # noqa: E402
from meta_fixtures import check_meta_loss_reaches  # noqa: E402

SPEC = EpisodeSpec(macs_range=(0.3, 0.5), bits=(8,))
TASK = TaskFamily(name="toy-lm", dataset="toy", teacher={"recipe": "toy"}, student={"derive": {}}, shots=(4,),
                  modality="lm", augment="none", target={"macs": None, "bits": 8})


def _teacher(seed: int = 0):
    torch.manual_seed(seed)
    teacher = gpt2_lm(small_gpt2_config(n_positions=64, n_embd=32, n_layer=4, n_head=4, dropout=0.0)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@pytest.fixture(scope="module")
def family():
    sequences = torch.randint(0, 256, (40, 16), generator=torch.Generator().manual_seed(0))
    return make_token_family(TASK, _teacher(), sequences, token_pools(TASK, 40, 16), unlabelled=6, query_sequences=3)


def test_gpt2_blocks_are_found_and_kept_like_an_encoders():
    model = _teacher()
    assert encoder_layers(model) is model.transformer.h
    kept = [model.transformer.h[i] for i in (1, 3)]
    keep_layers_(model, [1, 3])
    assert list(model.transformer.h) == kept and model.config.n_layer == 2
    assert model(input_ids=torch.zeros(1, 5, dtype=torch.long)).logits.shape == (1, 5, 256)


def test_the_conv1d_projections_are_the_described_layers_and_heads_gate_the_value_columns(family):
    structure = family.structure
    names = [f"lm.transformer.h.{b}.{p}" for b in range(4) for p in ("attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                                     "mlp.c_proj")]
    assert structure.layers == names and structure.transposed == frozenset(names)  # the tied head is the embedding
    heads, ffn = structure.groups[:2]
    assert (heads.root, heads.channels, heads.block, heads.offset) == ("lm.transformer.h.0.attn", 4, 8, 64)
    assert heads.gated == (("lm.transformer.h.0.attn.c_attn", -1),) and heads.transposed and ffn.transposed
    assert heads.layers == (0, 1) and ffn.layers == (2, 3)  # a head's q/k/v columns and c_proj rows; c_fc, c_proj
    description = describe_model(family.student, family.example, family.train[:4], [], structure=structure)
    assert len(description.blocks) == 4 and description.layer_features.shape == (16, 12)
    assert torch.allclose(description.layer_features[0, 2:4], torch.tensor([math.log2(96), math.log2(32)]) / 10)


@pytest.mark.parametrize("group", [0, 1])
def test_gating_a_gpt2_group_off_equals_pruning_it_physically(family, group):
    model = TokenRows(copy.deepcopy(family.teacher))
    params = dict(model.named_parameters())
    structure = model_structure(model, family.example)
    g = structure.groups[group]
    ratio = torch.tensor([0.5])
    gated = gate_params(params, [g], ratio, channel_quantiles(params, [g], structure.scores), sharpness=1e-3)
    ids = family.train[:2]
    soft = torch.func.functional_call(model, gated, (ids,))
    pruned = copy.deepcopy(model)
    layer = find_gpt2_layers(pruned)[0]
    ranks = structure.scores[g.root].argsort()
    keep = sorted(ranks[g.channels // 2:].tolist())
    layer.prune_heads_(keep) if group == 0 else layer.prune_ffn_(keep)
    assert torch.allclose(soft, pruned(ids), atol=1e-4)
    assert not torch.allclose(soft, model(ids), atol=1e-3)  # the gates did remove something


def test_a_conv1d_weight_quantizes_per_output_column_as_the_deployed_quantizer():
    model = _teacher()
    conv = model.transformer.h[0].attn.c_attn
    weight = conv.weight.detach().clone()
    quantize_model_(model, weight_bits=8, act_bits=None)
    ours = quantize_layer_weight(weight, 8, transposed=True)
    assert torch.allclose(ours, model.transformer.h[0].attn.c_attn.quantized_weight().t(), atol=1e-6)
    assert not torch.allclose(ours, quantize_layer_weight(weight, 8))  # per input row differs


def test_a_token_episode_holds_labelled_and_unlabelled_sequences_and_query_next_tokens(family):
    episode = make_episode([family], 3, SPEC, seed=0)
    again = make_episode([family], 3, SPEC, seed=0)
    assert episode.shots == 4 and episode.classes == () and episode.target_bits == 8
    assert episode.support_x.shape == (10, 16) and torch.equal(episode.support_x, again.support_x)
    labels = episode.support_y.reshape(10, 15)
    assert torch.equal(labels[:4], episode.support_x[:4, 1:]) and bool((labels[4:] == UNLABELLED).all())
    assert episode.query_x.shape == (3, 16) and torch.equal(episode.query_y, episode.query_x[:, 1:].reshape(-1))
    rows = {tuple(r) for r in torch.cat([episode.support_x, episode.query_x]).tolist()}
    assert len(rows) == 13  # distinct chunks of the pool
    assert family.keep_blocks == 2 and family.lr == 1e-3 and family.split_record()["episodes"]["split"] == "train"


def test_the_meta_loss_is_the_query_next_token_cross_entropy_and_reaches_the_policy(family):
    check_meta_loss_reaches(make_episode([family], 1, SPEC, seed=0), ("global_head", "block_head", "layer_head"))


@pytest.fixture(scope="module")
def corpus():
    lines = [f"{name}: to be or not to be, {verb} is the question.\n"
             for name in ("HAMLET", "OPHELIA", "KING") for verb in ("that", "this", "what", "which")]
    return corpus_by_position("".join(lines * 20), "toy")


POLICY = {"sequence_length": 32, "steps": 10, "batch_size": 4, "eval_window": 64, "eval_stride": 32,
          "generations": 1, "generation_tokens": 5, "prompt_chars": 12}


@pytest.mark.parametrize("layers", [None, [1, 3]])
def test_adapt_applies_a_meta_policy_to_a_language_model(corpus, tmp_path, layers):
    from fewshot_kd import adapt

    from fewshot_kd.adapt.lm.policy import LMPolicy

    meta = MetaPolicy(PolicyNet(hidden=8))
    meta.save(tmp_path / "meta")
    loaded, base = LMPolicy.with_meta(str(tmp_path / "meta"))  # the folder meta_train prints works as policy=
    assert isinstance(loaded, MetaPolicy) and base == LMPolicy()
    result = adapt(_teacher(), shots=4, data=corpus, target={"macs": None, "bits": 8, "layers": layers},
                   policy={**POLICY, "meta_policy": str(tmp_path / "meta")}, unlabelled=4, export_dir=tmp_path / "out",
                   progress=False)
    decided = result.report["decisions"]["meta_policy"]
    kept = decided["kept_layers"]
    assert kept == (layers or kept) and len(kept) == 2 and result.report["decisions"]["kept_blocks"] == kept
    assert len(result.student.transformer.h) == 2 and decided["budget_macs"] == 0.5
    policy = result.report["policy"]
    assert (policy["temperature"], policy["alpha"], policy["steps"], policy["lr"]) == (
        decided["temperature"], decided["alpha"], decided["steps"], decided["lr"])
    assert 1 <= decided["steps"] <= 10 and len(result.history) == decided["steps"]


def test_the_spread_prior_makes_an_untrained_policy_keep_every_other_block(family, tmp_path):
    from fewshot_kd.meta.config import MetaTrainConfig
    from fewshot_kd.meta.layer_choice import depth_prior
    from fewshot_kd.meta.train import block_prior

    assert depth_prior(6, torch.zeros(1), "spread").tolist() == [3.0, 0.0, 4.0, 1.0, 5.0, 2.0]
    assert depth_prior(4, torch.zeros(1)).tolist() == [0.0, 1.0, 2.0, 3.0]
    episode = make_episode([family], 0, SPEC, seed=0)
    net = PolicyNet(hidden=8, block_prior="spread")
    torch.nn.init.zeros_(net.block_head.weight)
    assert net(episode.description, episode.task, episode.budget_macs, 8, keep_blocks=2).kept_blocks == [0, 2]
    MetaPolicy(net).save(tmp_path / "meta")
    assert MetaPolicy.load(tmp_path / "meta").net.block_prior == "spread"
    assert [block_prior(MetaTrainConfig(tasks=(t,))) for t in ("tinyshakespeare-gpt2", "squad-minilm", "digits")] == [
        "spread", "spread", "last"]
    with pytest.raises(ValueError, match="unknown block prior"):
        PolicyNet(block_prior="middle")
