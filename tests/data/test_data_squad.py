"""SQuAD loading: rows to examples, the article-level split, few-shot draws, and the real
dev file (skipped without it)."""

from __future__ import annotations

import gzip
import json

import pytest

from fewshot_kd import load_dataset
from fewshot_kd.data.qa_examples import QADataset, qa_example_from_row
from fewshot_kd.data.squad import SQUAD_FILE, read_qa_jsonl, split_by_article
from fewshot_kd.errors import DataNotFoundError, FewShotKDError, NotEnoughExamplesError

# numbers below are quoted from the data folder's README
SQUAD_QUESTIONS, SQUAD_ARTICLES, SQUAD_ANSWERS = 10_570, 48, 34_726


def _row(i: int, title: str) -> dict:
    context = f"Paragraph {i} of {title} says the answer is {i * 7}."
    answer = str(i * 7)
    return {"id": f"q{i}", "title": title, "context": context, "question": f"What is the answer {i}?",
            "answers": {"text": [answer], "answer_start": [context.index(answer)]}}


@pytest.fixture
def small_squad(tmp_path):
    rows = [_row(i, f"Article_{i % 6}") for i in range(30)]
    path = tmp_path / "qa.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.writelines(json.dumps(r) + "\n" for r in rows)
    return read_qa_jsonl(path, "small")


def test_rows_become_examples_and_misplaced_answers_are_refused():
    example = qa_example_from_row(_row(3, "A"))
    assert example.answer_texts == ["21"] and example.context[example.answers["answer_start"][0]:].startswith("21")
    assert example.is_labelled and not example.unlabelled().is_labelled
    bad = _row(3, "A")
    bad["answers"]["answer_start"] = [0]
    with pytest.raises(FewShotKDError, match="not at character 0"):
        qa_example_from_row(bad)


def test_the_article_split_puts_every_article_wholly_on_one_side(small_squad):
    splits = split_by_article(small_squad, teacher_fraction=0.5, seed=0)
    train, test = set(splits.articles["train"]), set(splits.articles["test"])
    assert len(train) == len(test) == 3 and not train & test and train | test == set(small_squad.titles)
    assert {e.title for e in splits.train} == train and {e.title for e in splits.test} == test
    assert len(splits.train) + len(splits.test) == len(small_squad)
    assert "seed 0" in splits.split_rule
    again = split_by_article(small_squad, teacher_fraction=0.5, seed=0)
    assert again.articles == splits.articles
    others = [split_by_article(small_squad, 0.5, seed).articles["train"] for seed in range(1, 6)]
    assert any(set(o) != train for o in others)
    assert len(split_by_article(small_squad, teacher_fraction=0.2).articles["train"]) == 1


def test_few_shot_questions_and_unlabelled_ones_do_not_overlap(small_squad):
    shots = small_squad.few_shot(8, seed=1)
    assert len(shots) == 8 and len({e.id for e in shots}) == 8 and all(e.is_labelled for e in shots)
    assert [e.id for e in small_squad.few_shot(8, seed=1)] == [e.id for e in shots]
    pool = small_squad.unlabelled(10, shots=8, seed=1)
    assert len(pool) == 10 and not any(e.is_labelled for e in pool)
    assert not {e.id for e in pool} & {e.id for e in shots}
    with pytest.raises(NotEnoughExamplesError):
        small_squad.few_shot(31)
    with pytest.raises(NotEnoughExamplesError):
        small_squad.unlabelled(23, shots=8)


def test_a_missing_file_raises_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset("squad", data_root=tmp_path)
    assert str(tmp_path / SQUAD_FILE) in str(caught.value) and "hf:squad" in str(caught.value)


@pytest.mark.shared_data
def test_the_real_dev_file_splits_by_article(shared_data_files):
    root = shared_data_files(SQUAD_FILE)
    splits = load_dataset("squad", data_root=root)
    assert isinstance(splits.train, QADataset)
    assert len(splits.train) + len(splits.test) == SQUAD_QUESTIONS
    train, test = set(splits.articles["train"]), set(splits.articles["test"])
    assert len(train) == len(test) == SQUAD_ARTICLES // 2 and not train & test
    everything = list(splits.train) + list(splits.test)
    assert len({e.id for e in everything}) == SQUAD_QUESTIONS
    assert sum(len(e.answer_texts) for e in everything) == SQUAD_ANSWERS
    assert load_dataset("squad", data_root=root).articles == splits.articles
