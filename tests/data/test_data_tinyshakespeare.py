"""Language-modelling text: the positional split, few-shot token sequences, and the real Tiny
Shakespeare file (skipped without it)."""

from __future__ import annotations

import gzip

import pytest
import torch

from fewshot_kd import load_dataset
from fewshot_kd.data.lm_corpus import few_shot_sequences, split_by_position
from fewshot_kd.data.tinyshakespeare import TINYSHAKESPEARE_FILE, corpus_by_position
from fewshot_kd.errors import DataNotFoundError, NotEnoughExamplesError

TINYSHAKESPEARE_CHARS = 1_115_394  # quoted from the data folder's README


def test_the_positional_split_keeps_the_text_in_order():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    parts = split_by_position(text, (0.9, 0.05, 0.05))
    assert [len(p) for p in parts.values()] == [900, 50, 50]
    assert "".join(parts.values()) == text
    corpus = corpus_by_position(text, "letters")
    assert corpus.boundaries == {"train": (0, 900), "validation": (900, 950), "test": (950, 1000)}
    assert corpus.train == text[:900] and corpus["validation"] == text[900:950] and "90%" in corpus.split_rule
    with pytest.raises(ValueError):
        split_by_position(text, (0.9, 0.2, 0.1))


def test_few_shot_sequences_are_distinct_aligned_chunks():
    ids = torch.arange(100)
    picked = few_shot_sequences(ids, k=4, length=10, seed=3)
    assert picked.shape == (4, 10)
    assert all(int(row[0]) % 10 == 0 and torch.equal(row, torch.arange(row[0], row[0] + 10)) for row in picked)
    assert len({int(row[0]) for row in picked}) == 4
    assert torch.equal(few_shot_sequences(ids, 4, 10, seed=3), picked)
    with pytest.raises(NotEnoughExamplesError):
        few_shot_sequences(ids, k=11, length=10)


def test_a_missing_file_raises_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset("tinyshakespeare", data_root=tmp_path)
    assert str(tmp_path / TINYSHAKESPEARE_FILE) in str(caught.value)


@pytest.mark.shared_data
def test_the_real_text_splits_90_5_5(shared_data_files):
    root = shared_data_files(TINYSHAKESPEARE_FILE)
    corpus = load_dataset("tinyshakespeare", data_root=root)
    lengths = {split: len(text) for split, text in corpus.splits.items()}
    assert sum(lengths.values()) == TINYSHAKESPEARE_CHARS
    assert lengths["train"] == int(0.9 * TINYSHAKESPEARE_CHARS)
    assert lengths["validation"] == int(0.05 * TINYSHAKESPEARE_CHARS)
    with gzip.open(root / TINYSHAKESPEARE_FILE, "rb") as file:
        raw = file.read().decode("ascii")
    assert "".join(corpus.splits.values()) == raw and corpus.train.startswith("First Citizen:")
