"""``hf:squad`` / ``hf:squad_v2`` / ``hf:wikitext``: hub rows become QA examples and LM text
(the hub is stood in for by in-memory ``datasets`` tables; nothing is downloaded)."""

from __future__ import annotations

import pytest

datasets = pytest.importorskip("datasets")

from fewshot_kd import load_dataset  # noqa: E402
from fewshot_kd.data import online_qa_lm  # noqa: E402


def _tables(splits: dict[str, list[dict]]):
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def test_hub_squad_rows_become_examples_with_v2_unanswerables(monkeypatch):
    answered = {"id": "a", "title": "T", "context": "Denver won.", "question": "Who won?",
                "answers": {"text": ["Denver"], "answer_start": [0]}}
    unanswerable = {**answered, "id": "b", "answers": {"text": [], "answer_start": []}}
    calls = []

    def fake_hub(repo, config, download):
        calls.append((repo, config, download))
        return _tables({"train": [answered], "validation": [answered, unanswerable]})

    monkeypatch.setattr(online_qa_lm, "_load_hub", fake_hub)
    splits = load_dataset("hf:squad_v2", download=True)
    assert calls == [("rajpurkar/squad_v2", None, True)]
    assert [e.id for e in splits.train] == ["a"] and [e.id for e in splits.test] == ["a", "b"]
    assert splits.test[1].is_labelled and splits.test[1].answer_texts == []
    assert splits.articles == {"train": ["T"], "test": ["T"]}


def test_hub_wikitext_joins_each_splits_lines(monkeypatch):
    lines = {split: [{"text": f" = {split} = \n"}, {"text": ""}, {"text": " words here \n"}]
             for split in ("train", "validation", "test")}
    monkeypatch.setattr(online_qa_lm, "_load_hub", lambda repo, config, download: _tables(lines))
    corpus = load_dataset("hf:wikitext")
    assert corpus.train == " = train = \n words here \n" and corpus["validation"].startswith(" = validation")
