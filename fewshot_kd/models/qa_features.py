"""Question + context pairs as model inputs: tokenised windows over long contexts (a doc
stride), each token's character span in its context, and gold start/end token positions.

Windows are made by a fast tokenizer (``truncation="only_second"``, overflowing tokens), as
the Hugging Face QA examples do; one question may give several windows (features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from fewshot_kd.errors import BadInputError

UNLABELLED = -1  # the start/end position of a question without gold answers (soft targets only)
MAX_LENGTH = 384
DOC_STRIDE = 128


@dataclass
class QAFeatures:
    """Tokenised windows: model inputs ``[F, L]``, ``context_offsets [F, L, 2]`` (the
    characters of the context a token covers; -1 for question, special and padding tokens),
    ``example_index [F]`` (the question each window belongs to) and gold token positions
    ``[F]`` (0, the ``[CLS]`` token, when the answer is not inside the window or there is
    none; :data:`UNLABELLED` for an unlabelled question)."""

    inputs: dict[str, torch.Tensor]
    context_offsets: torch.Tensor
    example_index: torch.Tensor
    start_positions: torch.Tensor
    end_positions: torch.Tensor

    def __len__(self) -> int:
        return len(self.example_index)

    def batch(self, index) -> dict[str, torch.Tensor]:
        """The model inputs of the windows at ``index`` (a slice or indices)."""
        return {name: tensor[index] for name, tensor in self.inputs.items()}


def _gold_positions(offsets: list, answer_start: int, answer_end: int) -> tuple[int, int]:
    """Token indices of the first and last context token of the answer, or ``(0, 0)``."""
    context = [i for i, span in enumerate(offsets) if span is not None]
    if not context or offsets[context[0]][0] > answer_start or offsets[context[-1]][1] < answer_end:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > answer_start)
    end = next(i for i in reversed(context) if offsets[i][0] < answer_end)
    return start, end


def qa_features(tokenizer: Any, examples: Sequence, max_length: int = MAX_LENGTH,
                doc_stride: int = DOC_STRIDE) -> QAFeatures:
    """Tokenise ``examples`` (objects with ``question``, ``context``, ``answers``) into
    windows of ``max_length`` tokens overlapping by ``doc_stride`` tokens; the first gold
    answer gives the start/end positions."""
    if not getattr(tokenizer, "is_fast", False):
        raise BadInputError("QA features need a fast tokenizer (offset mapping); load one with use_fast=True")
    if doc_stride >= max_length:
        raise BadInputError(f"doc_stride {doc_stride} must be below max_length {max_length}")
    encoded = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples],
                        truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
    offsets_all, starts, ends = [], [], []
    for feature, example_id in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence = encoded.sequence_ids(feature)
        spans = encoded["offset_mapping"][feature]
        offsets = [tuple(span) if sequence[i] == 1 else None for i, span in enumerate(spans)]
        offsets_all.append([span or (-1, -1) for span in offsets])
        example = examples[example_id]
        if example.answers is None:
            start = end = UNLABELLED
        elif not example.answers["text"]:
            start = end = 0
        else:
            answer_start = example.answers["answer_start"][0]
            start, end = _gold_positions(offsets, answer_start, answer_start + len(example.answers["text"][0]))
        starts.append(start)
        ends.append(end)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in encoded]
    return QAFeatures({n: torch.tensor(encoded[n], dtype=torch.long) for n in names},
                      torch.tensor(offsets_all, dtype=torch.long).reshape(len(starts), -1, 2),
                      torch.tensor(encoded["overflow_to_sample_mapping"], dtype=torch.long),
                      torch.tensor(starts, dtype=torch.long), torch.tensor(ends, dtype=torch.long))
