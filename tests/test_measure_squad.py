"""SQuAD exact match and F1 against answers worked by hand with the official scripts' rules."""

from __future__ import annotations

import pytest

from fewshot_kd.data.qa_examples import QAExample
from fewshot_kd.measure.squad_metrics import (
    exact_match_score,
    f1_score,
    normalize_answer,
    question_scores,
    squad_scores,
)


@pytest.mark.parametrize("text,normal", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("An apple a day", "apple day"),
    ("Theatre and athena", "theatre and athena"),  # articles only as whole words
    ("U.S. rock-and-roll", "us rockandroll"),  # punctuation dropped, not turned into spaces
    ("  Denver\tBroncos \n", "denver broncos"),
    ("the", ""),
])
def test_normalisation_follows_the_official_steps(text, normal):
    assert normalize_answer(text) == normal


def test_token_f1_worked_by_hand():
    assert f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P 1, R 2/3
    assert f1_score("cat cat cat", "cat") == pytest.approx(0.5)  # shared counts once: P 1/3, R 1
    assert f1_score("Denver", "Carolina Panthers") == 0.0
    assert f1_score("", "Broncos") == 0.0
    assert exact_match_score("the Denver Broncos.", "Denver Broncos") == 1.0


def test_a_prediction_scores_its_best_over_the_gold_answers():
    assert question_scores("Denver Broncos", ["Denver Broncos", "Broncos"]) == (1.0, 1.0)
    em, f1 = question_scores("the Broncos team", ["Denver Broncos", "Broncos"])
    assert em == 0.0 and f1 == pytest.approx(2 / 3)  # vs "Broncos": P 1/2, R 1


def test_unanswerable_questions_need_an_empty_prediction():
    assert question_scores("", []) == (1.0, 1.0)
    assert question_scores("The.", []) == (1.0, 1.0)  # normalises to nothing
    assert question_scores("Broncos", []) == (0.0, 0.0)


def _example(qid: str, answers: list[str]) -> QAExample:
    context = " ".join(answers) or "nothing here"
    starts = [context.index(a) for a in answers]
    return QAExample(qid, context, "q?", {"text": answers, "answer_start": starts})


def test_scores_are_percentages_over_questions_and_a_missing_prediction_scores_zero():
    examples = [_example("a", ["Denver Broncos"]), _example("b", ["cat sat down"]), _example("c", ["x"])]
    scores = squad_scores({"a": "Denver Broncos", "b": "the cat sat"}, examples)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert scores["num_questions"] == 3 and scores["missing_predictions"] == 1
    assert "no_answer_f1" not in scores


def test_v2_style_data_reports_answerable_and_unanswerable_parts():
    examples = [_example("a", ["Denver Broncos"]), _example("b", []), _example("c", [])]
    scores = squad_scores({"a": "Broncos", "b": "", "c": "Denver"}, examples)
    assert scores["has_answer_count"] == 1 and scores["no_answer_count"] == 2
    assert scores["no_answer_exact_match"] == pytest.approx(50.0)
    assert scores["has_answer_f1"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)
    with pytest.raises(ValueError):
        squad_scores({}, [])
