"""From start/end logits to answer text: the best span of every window, then of every question.

A span is ``start <= end`` over context tokens, at most ``max_answer_length`` tokens long;
its score is ``start_logit + end_logit`` and its text the context characters from the start
token's first to the end token's last character. With ``allow_no_answer`` (``squad_v2``) a
question gets ``""`` when its ``[CLS]`` score (the lowest over its windows) beats its best
span by more than ``null_threshold``.
"""

from __future__ import annotations

from typing import Sequence

import torch

MAX_ANSWER_LENGTH = 30
CHUNK = 64  # windows scored at once ([chunk, L, L] scores)


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, context_offsets: torch.Tensor,
               max_answer_length: int = MAX_ANSWER_LENGTH) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(score, start, end)`` of the best valid span of each window ``[F]``; a window with
    no context token scores ``-inf``."""
    scores, starts, ends = [], [], []
    length = start_logits.shape[-1]
    i = torch.arange(length)
    allowed_gap = (i[None, :] >= i[:, None]) & (i[None, :] - i[:, None] < max_answer_length)
    for begin in range(0, len(start_logits), CHUNK):
        s, e = start_logits[begin:begin + CHUNK].float(), end_logits[begin:begin + CHUNK].float()
        in_context = context_offsets[begin:begin + CHUNK, :, 0] >= 0
        valid = allowed_gap & in_context[:, :, None] & in_context[:, None, :]
        pair = (s[:, :, None] + e[:, None, :]).masked_fill(~valid, float("-inf"))
        best, flat = pair.flatten(1).max(dim=1)
        scores.append(best)
        starts.append(flat // length)
        ends.append(flat % length)
    return torch.cat(scores), torch.cat(starts), torch.cat(ends)


def decode_answers(examples: Sequence, context_offsets: torch.Tensor, example_index: torch.Tensor,
                   start_logits: torch.Tensor, end_logits: torch.Tensor,
                   max_answer_length: int = MAX_ANSWER_LENGTH, allow_no_answer: bool = False,
                   null_threshold: float = 0.0) -> dict[str, str]:
    """``{question id: answer text}`` for ``examples`` from their windows' logits."""
    scores, starts, ends = best_spans(start_logits, end_logits, context_offsets, max_answer_length)
    null_scores = (start_logits[:, 0] + end_logits[:, 0]).float()
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for feature, owner in enumerate(example_index.tolist()):
        null[owner] = min(null.get(owner, float("inf")), float(null_scores[feature]))
        score = float(scores[feature])
        if score == float("-inf") or (owner in best and best[owner][0] >= score):
            continue
        first = int(context_offsets[feature, starts[feature], 0])
        last = int(context_offsets[feature, ends[feature], 1])
        best[owner] = (score, examples[owner].context[first:last])
    answers = {}
    for owner, example in enumerate(examples):
        score, text = best.get(owner, (float("-inf"), ""))
        if allow_no_answer and null.get(owner, float("-inf")) - score > null_threshold:
            text = ""
        answers[example.id] = text
    return answers
