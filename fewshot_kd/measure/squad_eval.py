"""Score an extractive QA model on a fixed subset of questions: official SQuAD EM and F1.

The subset is the first ``n`` questions of a permutation seeded with :data:`EVAL_SEED` (the
same questions for every model, seed and run), so teacher and students are compared on one set.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from fewshot_kd.errors import BadInputError
from fewshot_kd.measure.squad_metrics import squad_scores
from fewshot_kd.models.qa_predict import predict_answers

EVAL_SEED = 0


def evaluation_indices(size: int, count: int | None) -> torch.Tensor:
    """The rows, in increasing order, of the fixed evaluation subset of ``count`` among ``size``
    questions: the first ``count`` of a permutation seeded with :data:`EVAL_SEED` (every row for
    ``None`` or a count of at least ``size``)."""
    if count is None or count >= size:
        return torch.arange(size)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BadInputError(f"the evaluation subset needs a whole number of questions >= 1, got {count!r}")
    return torch.randperm(size, generator=torch.Generator().manual_seed(EVAL_SEED))[:count].sort().values


def evaluation_questions(split, count: int | None):
    """The fixed evaluation subset of ``split`` (a ``QADataset``): :func:`evaluation_indices`,
    in their original order; all of it for ``None`` or a count of at least its size."""
    if count is None or count >= len(split):
        return split
    return split.subset(evaluation_indices(len(split), count), f"{split.name}[eval {count}]")


def squad_evaluation(model: nn.Module, tokenizer: Any, examples, max_length: int, doc_stride: int,
                     allow_no_answer: bool = False) -> dict:
    """``exact_match`` and ``f1`` (percent) of ``model`` on ``examples``, with the counts and the
    windowing used."""
    examples = list(examples)
    predictions = predict_answers(model, tokenizer, examples, max_length, doc_stride, allow_no_answer=allow_no_answer)
    scores = squad_scores(predictions, examples)
    return {**scores, "max_length": max_length, "doc_stride": doc_stride}
