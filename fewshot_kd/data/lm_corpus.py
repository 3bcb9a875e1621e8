"""Language-modelling text: one string per split, and few-shot draws of token sequences."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fewshot_kd.data.named_splits import NamedSplits
from fewshot_kd.errors import NotEnoughExamplesError


def split_by_position(text: str, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)) -> dict[str, str]:
    """``train`` / ``validation`` / ``test`` as consecutive character ranges of ``text``: the
    first ``int(fractions[0] * len)`` characters, the next ``int(fractions[1] * len)``, the rest."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}")
    first = int(fractions[0] * len(text))
    second = first + int(fractions[1] * len(text))
    return {"train": text[:first], "validation": text[first:second], "test": text[second:]}


@dataclass
class TextCorpus(NamedSplits[str]):
    """Named splits of running text (``train`` and ``test`` always), how they were cut and,
    when cut from one text, the character range ``[start, end)`` of each."""

    split_rule: str = ""
    boundaries: dict[str, tuple[int, int]] = field(default_factory=dict)


def few_shot_sequences(token_ids: torch.Tensor, k: int, length: int, seed: int = 0) -> torch.Tensor:
    """``[k, length]``: ``k`` of the non-overlapping ``length``-token chunks of ``token_ids``
    (cut from its start), chosen by a seeded permutation; the few-shot "documents" of an LM."""
    ids = torch.as_tensor(token_ids).flatten()
    if k < 1 or length < 2:
        raise ValueError(f"need k >= 1 sequences of length >= 2, got k={k}, length={length}")
    chunks = len(ids) // length
    if k > chunks:
        raise NotEnoughExamplesError(f"{k} sequences of {length} tokens asked, but the text holds {chunks}")
    chosen = torch.randperm(chunks, generator=torch.Generator().manual_seed(seed))[:k]
    return ids[: chunks * length].reshape(chunks, length)[chosen]
