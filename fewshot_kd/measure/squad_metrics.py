"""Exact match and token F1 as the official SQuAD evaluation scripts compute them.

Answers are normalised as in ``evaluate-v1.1.py`` (lower case, punctuation removed, the
articles a / an / the removed, whitespace collapsed); a prediction scores the best it gets
against any gold answer. A question with no gold answer (``squad_v2``) scores 1 for EM and F1
exactly when the normalised prediction is empty, as in ``evaluate-v2.0.py``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, Mapping, Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles, collapse whitespace (official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised answers (v1.1: 0 when nothing is shared)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """``(EM, F1)`` of one prediction: the best over ``golds``; no golds means "no answer"."""
    if not golds:
        empty = float(normalize_answer(prediction) == "")
        return empty, empty
    return max(exact_match_score(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)


def squad_scores(predictions: Mapping[str, str], examples: Iterable) -> dict[str, float]:
    """``exact_match`` and ``f1`` in percent over ``examples`` (objects with ``id`` and
    ``answer_texts``), plus counts; a question without a prediction scores 0, as officially.
    With unanswerable questions present, ``has_answer_*`` / ``no_answer_*`` are added."""
    totals = {"has": [0.0, 0.0, 0], "no": [0.0, 0.0, 0]}
    missing = 0
    for example in examples:
        golds = example.answer_texts
        if example.id not in predictions:
            missing += 1
            em = f1 = 0.0
        else:
            em, f1 = question_scores(predictions[example.id], golds)
        bucket = totals["has" if golds else "no"]
        bucket[0] += em
        bucket[1] += f1
        bucket[2] += 1
    count = totals["has"][2] + totals["no"][2]
    if count == 0:
        raise ValueError("cannot score zero questions")
    scores = {"exact_match": 100.0 * (totals["has"][0] + totals["no"][0]) / count,
              "f1": 100.0 * (totals["has"][1] + totals["no"][1]) / count,
              "num_questions": count, "missing_predictions": missing}
    if totals["no"][2]:
        for key, (em, f1, n) in totals.items():
            if n:
                scores.update({f"{key}_answer_exact_match": 100.0 * em / n, f"{key}_answer_f1": 100.0 * f1 / n,
                               f"{key}_answer_count": n})
    return scores
