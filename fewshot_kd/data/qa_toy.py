"""A tiny, deterministic extractive-QA set for tests and examples: 4 articles of 8 questions
("When did <name> find the key?"), split by article like SQuAD."""

from __future__ import annotations

from fewshot_kd.data.qa_examples import QADataset, QAExample, QASplits
from fewshot_kd.data.squad import split_by_article

NAMES = ("Alice", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana")
TITLES = ("Rivers", "Mountains", "Cities", "Songs")


def toy_questions() -> QADataset:
    """32 labelled questions, each answered by a year inside its one-sentence context."""
    examples = []
    for a, title in enumerate(TITLES):
        for q, name in enumerate(NAMES):
            context = f"In the {title.lower()} story, {name} found the key near the old bridge in year {1900 + q}."
            answer = f"{1900 + q}"
            examples.append(QAExample(f"{a}-{q}", context, f"When did {name} find the key?",
                                      {"text": [answer], "answer_start": [context.index(answer)]}, title))
    return QADataset(examples, "toy_qa")


def toy_qa_splits() -> QASplits:
    """:func:`toy_questions` split by article: 2 articles train, 2 test."""
    return split_by_article(toy_questions(), name="toy_qa")
