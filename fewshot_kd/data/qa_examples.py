"""Extractive question answering data: questions over contexts with character-level answers.

An example's ``answers`` is ``{"text": [...], "answer_start": [...]}`` (the Hugging Face
``squad`` layout): several gold answers for one question, empty lists for a question the
context does not answer (``squad_v2`` style), or ``None`` for an unlabelled question.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Mapping, Sequence

import torch

from fewshot_kd.data.named_splits import NamedSplits
from fewshot_kd.errors import FewShotKDError, NotEnoughExamplesError


@dataclass(frozen=True)
class QAExample:
    """One question over one context."""

    id: str
    context: str
    question: str
    answers: Mapping[str, Sequence] | None
    title: str = ""

    @property
    def is_labelled(self) -> bool:
        return self.answers is not None

    @property
    def answer_texts(self) -> list[str]:
        return list(self.answers["text"]) if self.answers else []

    def unlabelled(self) -> "QAExample":
        return replace(self, answers=None)


def qa_example_from_row(row: Mapping) -> QAExample:
    """A :class:`QAExample` from a ``squad``-layout row; answers must lie where they say."""
    answers = row.get("answers")
    if answers is not None:
        answers = {"text": [str(t) for t in answers["text"]], "answer_start": [int(s) for s in answers["answer_start"]]}
        for text, start in zip(answers["text"], answers["answer_start"]):
            if row["context"][start:start + len(text)] != text:
                raise FewShotKDError(
                    f"question {row['id']}: answer {text!r} is not at character {start} of its context")
    return QAExample(str(row["id"]), row["context"], row["question"], answers, str(row.get("title", "")))


@dataclass
class QADataset:
    """Questions held in memory, in a fixed order."""

    examples: list[QAExample]
    name: str = "qa"

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> QAExample:
        return self.examples[index]

    def __iter__(self) -> Iterator[QAExample]:
        return iter(self.examples)

    @property
    def titles(self) -> list[str]:
        """The articles the questions come from, in order of first appearance."""
        return list(dict.fromkeys(e.title for e in self.examples))

    def subset(self, indices, name: str | None = None) -> "QADataset":
        return QADataset([self.examples[i] for i in torch.as_tensor(indices).tolist()], name or self.name)

    def few_shot_indices(self, k: int, seed: int = 0) -> torch.Tensor:
        """``k`` distinct question indices drawn by a seeded permutation."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"shots must be a positive integer, got {k!r}")
        if k > len(self):
            raise NotEnoughExamplesError(f"{self.name}: {k} questions asked, but it holds {len(self)}")
        return torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:k]

    def few_shot(self, k: int, seed: int = 0) -> "QADataset":
        """``k`` labelled questions (few-shot QA counts questions, not classes)."""
        return self.subset(self.few_shot_indices(k, seed), f"{self.name}[{k}-shot,seed={seed}]")

    def unlabelled(self, n: int, shots: int, seed: int = 0) -> "QADataset":
        """``n`` questions (with their contexts) not among ``few_shot(shots, seed)``, answers dropped."""
        taken = set(self.few_shot_indices(shots, seed).tolist())
        rest = [i for i in range(len(self)) if i not in taken]
        if not isinstance(n, int) or n < 1 or n > len(rest):
            raise NotEnoughExamplesError(f"{self.name}: {n!r} unlabelled questions asked; {len(rest)} remain")
        order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed + 7919))[:n]
        chosen = [self.examples[rest[i]].unlabelled() for i in order.tolist()]
        return QADataset(chosen, f"{self.name}[unlabelled {n}]")


@dataclass
class QASplits(NamedSplits[QADataset]):
    """Named QA splits (``train`` and ``test`` always), which articles each one holds and the
    rule that put them there."""

    articles: dict[str, list[str]] = field(default_factory=dict)
    split_rule: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.articles:
            self.articles = {split: data.titles for split, data in self.splits.items()}
