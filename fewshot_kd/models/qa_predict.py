"""Answer questions with an extractive QA model: tokenise into windows, run, decode."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from fewshot_kd.models.qa_decode import MAX_ANSWER_LENGTH, decode_answers
from fewshot_kd.models.qa_features import DOC_STRIDE, MAX_LENGTH, QAFeatures, qa_features


@torch.no_grad()
def span_logits(model: nn.Module, features: QAFeatures, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(start_logits, end_logits)`` ``[F, L]`` of every window, on the CPU, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    starts, ends = [], []
    try:
        for begin in range(0, len(features), batch_size):
            batch = features.batch(slice(begin, begin + batch_size))
            out = model(**{name: tensor.to(device) for name, tensor in batch.items()})
            starts.append(out.start_logits.float().cpu())
            ends.append(out.end_logits.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(starts), torch.cat(ends)


def predict_answers(model: nn.Module, tokenizer: Any, examples: Sequence, max_length: int = MAX_LENGTH,
                    doc_stride: int = DOC_STRIDE, max_answer_length: int = MAX_ANSWER_LENGTH,
                    allow_no_answer: bool = False, batch_size: int = 32) -> dict[str, str]:
    """``{question id: answer text}``, ready for :func:`~fewshot_kd.measure.squad_metrics.squad_scores`."""
    examples = list(examples)
    features = qa_features(tokenizer, examples, max_length, doc_stride)
    start, end = span_logits(model, features, batch_size)
    return decode_answers(examples, features.context_offsets, features.example_index, start, end,
                          max_answer_length, allow_no_answer)
