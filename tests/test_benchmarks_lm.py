"""The causal-LM suite's pieces: the suite and task files parse, each method runs adapt() on
a tiny GPT-2 and toy text, records aggregate to perplexity ratios, and the outputs are written."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the causal LMs need transformers")

from fewshot_kd.adapt.lm.policy import LMPolicy  # noqa: E402
from fewshot_kd.data.tinyshakespeare import corpus_by_position  # noqa: E402
from fewshot_kd.errors import FewShotKDError  # noqa: E402
from fewshot_kd.models.byte_tokenizer import ByteTokenizer  # noqa: E402
from fewshot_kd.models.causal_lm import gpt2_lm, small_gpt2_config  # noqa: E402
from fewshot_kd.task_family import find_task_family  # noqa: E402

from benchmarks.harness.lm_runner import (  # noqa: E402
    _record, aggregate_lm, is_lm_suite, teacher_reference, write_lm_outputs)
from benchmarks.harness.suite import load_suite  # noqa: E402
from benchmarks.methods.lm import LM_METHODS, LMMethodInput, get_lm_method, lm_options  # noqa: E402

POLICY = {"sequence_length": 32, "steps": 2, "batch_size": 4, "eval_window": 64, "eval_stride": 32,
          "generation_tokens": 4, "prompt_chars": 10}


def test_the_lm_suite_and_task_file_parse():
    suite = load_suite("lm")
    assert is_lm_suite(suite) and suite.shots == (20,) and suite.seeds == (0, 1, 2)
    assert {"teacher", "truncated_shots", "hinton_kd", "adapt"} <= set(suite.methods)
    task = find_task_family("tinyshakespeare-gpt2")
    assert task.modality == "lm" and task.teacher == {"recipe": "tinyshakespeare-gpt2"} and task.target["bits"] == 8
    assert lm_options("adapt", {}).unlabelled == 200 and lm_options("truncated_shots", {}).policy["alpha"] == 0.0
    with pytest.raises(FewShotKDError, match="unknown options"):
        lm_options("hinton_kd", {"epochs": 3})
    assert lm_options("adapt@first", {"target": {"layers": "first 3"}}).target_for(task.target)["layers"] == "first 3"


def test_every_lm_method_runs_and_its_records_aggregate(tmp_path):
    torch.manual_seed(0)
    teacher = gpt2_lm(small_gpt2_config(n_positions=64, n_embd=32, n_layer=2, n_head=2, dropout=0.0)).eval()
    teacher.tokenizer = ByteTokenizer()
    corpus = corpus_by_position("ROMEO: what light through yonder window breaks?\n" * 80, "toy")
    reference = teacher_reference(teacher, corpus, LMPolicy(**POLICY))
    assert reference["split"] == "validation" and len(reference["generations"]) == 3
    records = [_record("toy", "teacher", 2, 0, None, reference, 0.0)]
    for method in LM_METHODS.names():
        options = {**POLICY, **({"unlabelled": 3} if method == "adapt" else {}), **({"steps": 0} if method == "truncated" else {})}
        result = get_lm_method(method)(LMMethodInput(teacher, corpus, 2, 0, {"macs": None, "bits": 8},
                                                     tmp_path / method, options))
        records.append(_record("toy", method, 2, 0, result, reference, 1.0, corpus))
    adapt_record = next(r for r in records if r["method"] == "adapt")
    assert adapt_record["notes"]["unlabelled_sequences"] == 3 and adapt_record["compression_bytes"] > 3
    rows = aggregate_lm(records)
    assert {r["method"] for r in rows} == {"teacher", *LM_METHODS.names()}
    assert next(r for r in rows if r["method"] == "teacher")["ratio_to_teacher"] == (1.0, 0.0)
    invocation = {"command": "python -m benchmarks.run --suite lm", "commit": "abc", "dirty": False,
                  "machine": {"cpu_model": "cpu", "torch": torch.__version__}}
    result = write_lm_outputs(load_suite("lm"), tmp_path, records, {"toy": reference}, [invocation])
    text = (tmp_path / "results.md").read_text()
    assert "× teacher's perplexity" in text and "window 64, stride 32" in text and "Greedy generations" in text
    assert (tmp_path / "perplexity_by_method.png").is_file() and result["summary"] == rows
