"""adapt() on a causal LM and running text: the student is half the teacher's depth (pruned
further to a MACs target), distilled on K sequences plus unlabelled ones, exported int8 and
read back; the report states perplexity (window, stride), sizes and greedy generations."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd import adapt  # noqa: E402
from fewshot_kd.adapt import load_student  # noqa: E402
from fewshot_kd.adapt.lm.report import LMAdaptResult  # noqa: E402
from fewshot_kd.data.tinyshakespeare import corpus_by_position  # noqa: E402
from fewshot_kd.errors import BadInputError, NotEnoughExamplesError  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402

POLICY = {"sequence_length": 32, "steps": 6, "batch_size": 4, "eval_window": 64, "eval_stride": 32,
          "generation_tokens": 5, "prompt_chars": 12}


@pytest.fixture(scope="module")
def corpus():
    lines = [f"{name}: to be or not to be, {verb} is the question.\n"
             for name in ("HAMLET", "OPHELIA", "KING") for verb in ("that", "this", "what", "which")]
    return corpus_by_position("".join(lines * 20), "toy")


@pytest.fixture(scope="module")
def lm_teacher():
    torch.manual_seed(0)
    return gpt2_lm(small_gpt2_config(n_positions=64, n_embd=32, n_layer=4, n_head=4, dropout=0.0)).eval()


def test_adapt_takes_the_language_model_path_and_reports_perplexity(lm_teacher, corpus, tmp_path):
    result = adapt(lm_teacher, shots=4, data=corpus, target={"macs": None, "bits": 8}, policy=POLICY, unlabelled=6,
                   export_dir=tmp_path, progress=False)
    assert isinstance(result, LMAdaptResult)
    r = result.report
    assert r["task"] == "causal_lm" and r["shots"] == 4 and r["shot_tokens"] == 128 and r["unlabelled_sequences"] == 6
    assert r["decisions"]["kept_blocks"] == [0, 2] and len(result.student.transformer.h) == 2
    p = r["perplexity"]
    assert p["split"] == "validation" and (p["window"], p["stride"]) == (64, 32) and p["tokens"] > 0
    assert p["teacher"] > 1 and p["student"] > 1 and abs(p["ratio"] - p["student"] / p["teacher"]) < 1e-9
    g = r["generations"]
    assert len(g["prompts"]) == len(g["teacher"]) == len(g["student"]) == 3 and g["decoding"] == "greedy"
    assert r["student"]["bytes"] < r["teacher"]["bytes"] / 4 and r["compression"]["bytes"] > 4
    assert r["student"]["macs"] < r["teacher"]["macs"] and len(result.history) == 6
    assert result.artifact.name == "student.int8.safetensors"
    loaded = load_student(tmp_path)
    ids = torch.randint(0, 256, (2, 20))
    assert torch.allclose(loaded(input_ids=ids).logits, result.student(input_ids=ids).logits, atol=1e-4)
    assert result.student.lm_head.weight is result.student.transformer.wte.weight  # re-tied after dequantizing
    assert "perplexity" in result.table().columns[0]._cells[3]


def test_a_macs_target_below_half_depth_prunes_heads_and_ffn_neurons(lm_teacher, corpus, tmp_path):
    result = adapt(lm_teacher, shots=2, data=corpus, target={"macs": 0.3, "bits": None},
                   policy={**POLICY, "steps": 2, "generations": 1}, export_dir=tmp_path, progress=False)
    d = result.report["decisions"]
    assert d["macs_fraction"] <= 0.3 and d["prune_ratio"] > 0
    assert max(d["heads"]) < 4 and max(d["ffn"]) < 128
    assert result.artifact.name == "student.safetensors"
    loaded = load_student(tmp_path)
    assert [layer.attn.num_heads for layer in loaded.transformer.h] == d["heads"]
    ids = torch.randint(0, 256, (1, 16))
    assert torch.allclose(loaded(input_ids=ids).logits, result.student(input_ids=ids).logits, atol=1e-5)


def test_shots_alone_cross_entropy_and_a_given_student(lm_teacher, corpus):
    given = gpt2_lm(small_gpt2_config(n_positions=64, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    result = adapt(lm_teacher, given, shots=2, data=corpus, target={"bits": None},
                   policy={**POLICY, "alpha": 0.0, "steps": 2, "generations": 0}, progress=False)
    assert result.report["student_kind"] == "given" and result.report["generations"]["prompts"] == []
    assert result.student is given


def test_bad_language_model_inputs_raise_clear_errors(lm_teacher, corpus, teacher):
    with pytest.raises(BadInputError, match="causal language-model teacher"):
        adapt(teacher, shots=2, data=corpus, progress=False)
    with pytest.raises(BadInputError, match="running text"):
        adapt(lm_teacher, shots=2, data="digits", progress=False)
    with pytest.raises(NotEnoughExamplesError):
        adapt(lm_teacher, shots=2, data=corpus, policy=POLICY, unlabelled=10**6, progress=False)
    with pytest.raises(BadInputError, match="reads at most 64 tokens"):
        adapt(lm_teacher, shots=2, data=corpus, policy={"sequence_length": 128}, progress=False)
    with pytest.raises(BadInputError, match="integer=True"):
        adapt(lm_teacher, shots=2, data=corpus, integer=True, progress=False)
    with pytest.raises(Exception, match="unknown keys"):
        adapt(lm_teacher, shots=2, data=corpus, policy={"views_per_shot": 2}, progress=False)
